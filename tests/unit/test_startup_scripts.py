"""Startup scripts are pure text: test what each one must (and must never) contain."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from components import startup_scripts as ss


def _bash_syntax_ok(script: str) -> None:
    proc = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr


# -- Airbyte ---------------------------------------------------------------------------------

def test_airbyte_installs_with_abctl_not_docker_compose():
    script = ss.render_airbyte()
    assert "curl -LsfS https://get.airbyte.com | bash -" in script
    assert re.search(r"^\s*abctl local install --no-browser --port 8000$", script, re.M)
    assert "--low-resource-mode" not in script
    assert "docker compose" not in script and "run-ab-platform" not in script
    _bash_syntax_ok(script)


def test_airbyte_low_resource_mode_flag_and_state_on_data_disk():
    script = ss.render_airbyte(low_resource_mode=True, port=8080, host="airbyte.internal")
    assert re.search(r"abctl local install --no-browser --port 8080 --low-resource-mode --host airbyte.internal", script)
    assert "ln -s /mnt/disks/data/airbyte /root/.airbyte" in script
    assert "/dev/disk/by-id/google-data" in script


def test_airbyte_rejects_unsafe_host():
    with pytest.raises(ValueError, match="host"):
        ss.render_airbyte(host="x; rm -rf /")


# -- Metabase --------------------------------------------------------------------------------

def test_metabase_uses_postgres_never_h2():
    compose = yaml.safe_load(ss.compose_metabase())
    env = compose["services"]["metabase"]["environment"]
    assert env["MB_DB_TYPE"] == "postgres"
    assert {"MB_DB_TYPE", "MB_DB_DBNAME", "MB_DB_PORT", "MB_DB_USER", "MB_DB_PASS", "MB_DB_HOST"} <= set(env)
    assert env["MB_DB_HOST"] == "postgres" and env["MB_DB_PORT"] == "5432"
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["metabase"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "h2" not in ss.compose_metabase().lower()


def test_metabase_reads_password_from_secret_manager_at_boot():
    script = ss.render_metabase(secret_id="dev-metabase-db-password", project="acme-data-dev")
    assert "gcloud secrets versions access latest --secret=dev-metabase-db-password --project=acme-data-dev" in script
    assert "MB_DB_TYPE: postgres" in script
    # the password is only ever a shell variable, written to tmpfs
    assert "${MB_DB_PASS:?" in script and "/run/flexyboots/metabase.env" in script
    _bash_syntax_ok(script)


def test_metabase_script_never_contains_a_password():
    secret = "S3cr3tValueThatMustNotLeak"
    script = ss.render_metabase(secret_id="dev-metabase-db-password", project="acme-data-dev")
    assert secret not in script
    # no literal assignment of a password anywhere
    assert not re.search(r"(MB_DB_PASS|POSTGRES_PASSWORD)\s*[:=]\s*['\"]?[A-Za-z0-9]{8,}", script)
    # the renderer has no way to receive a password at all
    with pytest.raises(TypeError):
        ss.render_metabase(secret_id="x", project="acme-data-dev", password=secret)  # type: ignore[call-arg]


def test_metabase_waits_for_its_health_endpoint():
    script = ss.render_metabase(secret_id="s", project="acme-data-dev", port=3000)
    assert ss.METABASE_HEALTH_PATH == "/api/health"
    assert "curl -fsS http://localhost:3000/api/health" in script


@pytest.mark.parametrize("field,kwargs", [
    ("secret_id", {"secret_id": "bad id; echo"}),
    ("project", {"project": "Bad_Project"}),
    ("db_user", {"db_user": "Robert'); DROP"}),
])
def test_metabase_refuses_injection(field, kwargs):
    base = {"secret_id": "s", "project": "acme-data-dev"}
    with pytest.raises(ValueError, match=f"startup_scripts: {field}"):
        ss.render_metabase(**{**base, **kwargs})


# -- Amundsen --------------------------------------------------------------------------------

def test_amundsen_sets_and_persists_max_map_count():
    script = ss.render_amundsen()
    assert "sysctl -w vm.max_map_count=262144" in script
    assert "echo 'vm.max_map_count=262144' > /etc/sysctl.d/" in script
    # set before the containers start
    assert script.index("vm.max_map_count=262144") < script.index("docker compose -f")
    _bash_syntax_ok(script)


def test_amundsen_compose_has_the_five_services():
    compose = yaml.safe_load(ss.compose_amundsen(es_heap_mb=2048))
    services = compose["services"]
    assert set(services) == {"neo4j", "elasticsearch", "amundsensearch", "amundsenmetadata", "amundsenfrontend"}
    assert services["elasticsearch"]["environment"]["ES_JAVA_OPTS"] == "-Xms2048m -Xmx2048m"
    # backing stores are only published on loopback; the frontend is the service port
    for name in ("neo4j", "elasticsearch"):
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"])
    assert services["amundsenfrontend"]["ports"] == ["5000:5000"]


def test_amundsen_heap_bounds():
    with pytest.raises(ValueError, match="es_heap_mb"):
        ss.compose_amundsen(es_heap_mb=64)


# -- shared ----------------------------------------------------------------------------------

@pytest.mark.parametrize("script", [
    ss.render_airbyte(),
    ss.render_metabase(secret_id="s", project="acme-data-dev"),
    ss.render_amundsen(),
])
def test_every_script_mounts_the_data_disk_idempotently_and_installs_docker(script):
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert 'if ! blkid "$DEV"' in script  # never reformat an existing filesystem
    assert "nofail" in script
    assert "docker-compose-plugin" in script
    assert '"data-root": "/mnt/disks/data/docker"' in script


def test_device_name_is_validated():
    with pytest.raises(ValueError, match="device_name"):
        ss.render_amundsen(device_name="../sda")


# -- apt lock wait (Debian's apt-daily timers on first boot) ----------------------------------

SCRIPTS = {
    "airbyte": ss.render_airbyte(),
    "metabase": ss.render_metabase(secret_id="s", project="acme-data-dev", bigquery_key_secret_id="k"),
    "amundsen": ss.render_amundsen(),
}


def _apt_block(script: str) -> str:
    """The apt lock wait functions exactly as rendered into a startup script."""
    start = script.index("# --- apt lock wait")
    end = script.index("\n# --- ", start + 1)
    return script[start:end]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_apt_get_waits_for_the_apt_locks(name):
    script = SCRIPTS[name]
    block = _apt_block(script)
    rest = script.replace(block, "")
    # every apt-get of the script goes through apt_get, defined before its first use
    assert not re.search(r"(?<![_\w])apt-get\b", rest), "a bare apt-get outside the waiting wrapper"
    assert re.search(r"^\s*apt_get (update|install)", rest, re.M)
    assert script.index("apt_get() {") < script.index("apt_get update")
    # the wrapper waits for all of apt's locks (apt itself only waits for the dpkg ones) and
    # still passes apt's own dpkg lock timeout
    for lock in ss.APT_LOCKS:
        assert lock in block
    assert "/var/lib/apt/lists/lock" in ss.APT_LOCKS
    assert 'apt-get -o DPkg::Lock::Timeout=120 "$@"' in block
    _bash_syntax_ok(script)


def _fcntl_holder(path, seconds: float):
    """A process holding a POSIX (fcntl) write lock on ``path``, as apt and dpkg take theirs."""
    import sys

    code = (
        "import fcntl, sys, time\n"
        f"f = open({str(path)!r}, 'w')\n"
        "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _run_wait(tmp_path, locks, body, timeout_s=30):
    """Run ``body`` under bash (set -euo pipefail, as the scripts do) after the rendered apt
    functions, pointed at ``locks`` instead of apt's real lock files; a fake ``apt-get`` on the
    PATH records when it ran and with what."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text('#!/bin/bash\necho "apt-get $* at $(date +%s.%N)" >> "$APT_LOG"\n')
    (fake / "apt-get").chmod(0o755)
    script = (
        "set -euo pipefail\n"
        + _apt_block(SCRIPTS["metabase"])
        + f'\nAPT_LOCKS="{" ".join(str(p) for p in locks)}"\nAPT_LOCK_TIMEOUT_S={timeout_s}\nAPT_LOCK_POLL_S=0.2\n'
        + body
    )
    env = {"PATH": f"{fake}:/usr/bin:/bin", "APT_LOG": str(tmp_path / "apt.log")}
    import time

    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    return proc, time.monotonic() - t0


def test_apt_get_waits_until_the_lock_holder_lets_go(tmp_path):
    lists_lock = tmp_path / "lists-lock"
    lists_lock.touch()
    holder = _fcntl_holder(lists_lock, 1.5)  # like apt-daily's `apt-get update` on first boot
    try:
        proc, took = _run_wait(tmp_path, [tmp_path / "absent-lock", lists_lock], "apt_get update -y\n")
    finally:
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert f"waiting for apt lock {lists_lock}" in proc.stdout
    assert took >= 1.0, "returned before the holder released the lock"
    log = (tmp_path / "apt.log").read_text()
    assert log.startswith("apt-get -o DPkg::Lock::Timeout=120 update -y at ")


def test_a_free_lock_is_not_waited_for(tmp_path):
    lock = tmp_path / "lock-frontend"
    lock.touch()  # the file exists (it always does on Debian) but nobody holds it
    proc, took = _run_wait(tmp_path, [lock], "apt_get install -y curl\nwait_for_apt_locks\n")
    assert proc.returncode == 0, proc.stderr
    assert "waiting" not in proc.stdout and took < 5
    assert "install -y curl" in (tmp_path / "apt.log").read_text()


def test_a_lock_held_past_the_timeout_fails_the_script_without_running_apt(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    holder = _fcntl_holder(lock, 30)
    try:
        proc, took = _run_wait(tmp_path, [lock], "apt_get install -y docker-ce\necho unreachable\n", timeout_s=1)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0 and "unreachable" not in proc.stdout
    assert f"apt lock {lock} still held after 1s; giving up" in proc.stderr
    assert not (tmp_path / "apt.log").exists(), "apt-get ran while the lock was held"
    assert took < 15


def test_apt_lock_timeout_is_validated():
    with pytest.raises(ValueError, match="apt_lock_timeout_s"):
        ss.apt_lock_wait(timeout_s=0)
