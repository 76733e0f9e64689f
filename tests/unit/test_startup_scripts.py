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
    assert "ES_JAVA_OPTS=-Xms2048m -Xmx2048m" in services["elasticsearch"]["environment"]
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
