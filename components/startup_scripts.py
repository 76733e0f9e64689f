"""Startup scripts of the hosted-service VMs, rendered by pure functions (no Pulumi import).

Every script is a bash script for a Debian 12 Compute Engine image, run as root by the guest
agent on every boot, and idempotent:

1. formats the persistent data disk (``/dev/disk/by-id/google-<device>``) the first time only,
   mounts it at ``DATA_MOUNT`` and records it in ``/etc/fstab`` by UUID (``nofail``);
2. installs Docker Engine + the compose plugin from Docker's apt repository (once), with
   Docker's ``data-root`` on the data disk so images and volumes survive VM replacement.
   Every ``apt-get`` goes through ``apt_get`` (:func:`apt_lock_wait`): on a first boot
   Debian's ``apt-daily``/``apt-daily-upgrade`` timers may hold apt's locks, and apt itself
   only waits for the dpkg locks (``DPkg::Lock::Timeout``), never for the lists lock that
   ``apt-get update`` takes;
3. starts the service.

API (stable):

``render_airbyte(*, device_name="data", low_resource_mode=False, port=8000, host=None) -> str``
    ``abctl`` (Airbyte's supported self-managed installer): ``curl -LsfS https://get.airbyte.com``
    then ``abctl local install --no-browser --port <port> [--low-resource-mode] [--host <host>]``;
    abctl's state (``~/.airbyte``) lives on the data disk.
``render_metabase(*, secret_id, project, device_name="data", db_name="metabase",
db_user="metabase", images=images.METABASE, port=3000, bigquery_key_secret_id=None) -> str``
    Postgres + Metabase with docker compose, ``MB_DB_TYPE=postgres`` and the other ``MB_DB_*``
    variables; the DB password is read at boot with ``gcloud secrets versions access latest
    --secret=<secret_id>`` into a root-only file under ``/run`` (tmpfs) and never appears in the
    script; waits for ``METABASE_HEALTH_PATH``. With ``bigquery_key_secret_id`` it also reads
    the BigQuery reader's key from that secret at boot into ``/run`` (tmpfs, root-only) and
    mounts it read-only into the Metabase container at ``METABASE_BIGQUERY_KEY_PATH``.
``render_amundsen(*, device_name="data", port=5000, es_heap_mb=1024, neo4j_heap_mb=1024,
images=images.AMUNDSEN) -> str``
    neo4j, Elasticsearch, metadata, search and frontend (the amundsen repository's
    ``docker-amundsen.yml`` layout); sets and persists ``vm.max_map_count=262144``.
``compose_metabase(...)`` / ``compose_amundsen(...)`` return the compose YAML alone, rendered
    from ``components.services``' definitions (``metabase_definition(...)`` /
    ``amundsen_definition(...)``), the same ones the local stack's containers come from. Pass
    a pinned set (``ImageSet.pinned``) and every image is ``repository:tag@sha256:...``: the
    ``ServiceVm`` presets always do.
``apt_lock_wait(timeout_s=APT_LOCK_TIMEOUT_S) -> str``
    the bash functions ``apt_locks_held``, ``wait_for_apt_locks`` and ``apt_get`` (every script
    includes them before its first ``apt-get``).

Images come whole from :mod:`components.images` (one image set per service, never mixed).
``abctl`` pulls Airbyte's images itself; what it allows pinning: its own release (the
installer's ``RELEASE_TAG``), the Helm chart (``--chart-version``) and chart values
(``--values``, ``global.image.tag``: Airbyte's images, not temporal's or minio's), all tags,
no digests; this script pins none of them (abctl installs its latest release and chart).
Constants: ``DATA_MOUNT``, ``METABASE_HEALTH_PATH``, ``SERVICE_PORTS``, ``APT_LOCKS``,
``APT_LOCK_TIMEOUT_S`` (``METABASE_HEALTH_PATH``/``SERVICE_PORTS`` live in ``components.services``).
"""

from __future__ import annotations

import re
import shlex
from typing import Optional

from components import images as image_sets
from components import services
from components.common import PROJECT_ID
from components.images import ImageSet
from components.services import MAX_MAP_COUNT, METABASE_HEALTH_PATH, SERVICE_PORTS  # noqa: F401 (part of this API)

DATA_MOUNT = "/mnt/disks/data"
#: Where the BigQuery reader's key is written at boot (tmpfs, in a root-only directory) and
#: where the Metabase container sees it (read-only).
METABASE_BIGQUERY_KEY_HOST_PATH = "/run/flexyboots/metabase-bigquery-reader.json"
METABASE_BIGQUERY_KEY_PATH = "/run/secrets/bigquery-reader.json"

#: apt's lock files (apt-pkg: the dpkg frontend and admin locks in debsystem.cc, the lists
#: lock in acquire.cc, the archives lock in private-download.cc). All are fcntl (POSIX)
#: locks, so a holder shows up in /proc/locks.
APT_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock")
#: How long a first boot waits for Debian's apt-daily timers before giving up (seconds).
APT_LOCK_TIMEOUT_S = 1200

_DEVICE = re.compile(r"^[a-z][a-z0-9-]{0,61}$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(,[A-Za-z0-9.-]+)*$")


def _check(field: str, value, pattern: re.Pattern, expected: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"startup_scripts: {field}: {expected} (got {value!r})")
    return value


def _check_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        raise ValueError(f"startup_scripts: port: an integer between 1024 and 65535 (got {port!r})")
    return port


def _header(service: str) -> str:
    return f"""#!/bin/bash
# flexyboots startup script: {service}. Runs as root on every boot; idempotent.
set -euo pipefail
exec > >(logger -t flexyboots-{service}) 2>&1
export HOME=/root
export DEBIAN_FRONTEND=noninteractive
"""


def mount_data_disk(device_name: str = "data", mount_point: str = DATA_MOUNT) -> str:
    _check("device_name", device_name, _DEVICE, "a disk device name (lower-case letters, digits, hyphens)")
    dev = f"/dev/disk/by-id/google-{device_name}"
    return f"""
# --- persistent data disk (survives VM replacement) -------------------------------------
DEV={dev}
MNT={mount_point}
for i in $(seq 1 60); do [ -e "$DEV" ] && break; sleep 2; done
if ! blkid "$DEV" >/dev/null 2>&1; then
  mkfs.ext4 -m 0 -E lazy_itable_init=0,lazy_journal_init=0,discard "$DEV"
fi
mkdir -p "$MNT"
UUID=$(blkid -s UUID -o value "$DEV")
grep -q "$UUID" /etc/fstab || echo "UUID=$UUID $MNT ext4 discard,defaults,nofail 0 2" >> /etc/fstab
mountpoint -q "$MNT" || mount "$MNT"
"""


def apt_lock_wait(timeout_s: int = APT_LOCK_TIMEOUT_S) -> str:
    """Bash functions that wait (at most ``timeout_s`` seconds) until no process holds one of
    apt's locks, then run ``apt-get`` (retried a few times: a timer can start between the
    check and the call). A holder is found in /proc/locks by the lock file's device and inode,
    so the wait needs nothing that a minimal Debian image lacks (no fuser, no lsof)."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        raise ValueError(f"startup_scripts: apt_lock_timeout_s: a positive number of seconds (got {timeout_s!r})")
    return f"""
# --- apt lock wait (Debian's apt-daily timers may hold apt's locks on first boot) ---------
APT_LOCKS="{' '.join(APT_LOCKS)}"
APT_LOCK_TIMEOUT_S={timeout_s}
APT_LOCK_POLL_S=5
apt_locks_held() {{  # prints the first apt lock some process holds; fails when none is held
  local f dev ino
  for f in $APT_LOCKS; do
    [ -e "$f" ] || continue
    read -r dev ino < <(stat -L -c '%d %i' "$f")
    if grep -q " $(printf '%02x:%02x' $(( (dev >> 8) & 0xfff )) $(( (dev & 0xff) | ((dev >> 12) & 0xfff00) ))):$ino " /proc/locks; then
      echo "$f"; return 0
    fi
  done
  return 1
}}
wait_for_apt_locks() {{
  local held start=$SECONDS
  while held=$(apt_locks_held); do
    if (( SECONDS - start >= APT_LOCK_TIMEOUT_S )); then
      echo "apt lock $held still held after ${{APT_LOCK_TIMEOUT_S}}s; giving up" >&2
      return 1
    fi
    echo "waiting for apt lock $held (held by another apt/dpkg, e.g. apt-daily)"
    sleep "$APT_LOCK_POLL_S"
  done
}}
apt_get() {{  # apt-get, after the locks are free; apt itself waits only for the dpkg locks
  local attempt
  for attempt in 1 2 3; do
    wait_for_apt_locks || return 1
    if apt-get -o DPkg::Lock::Timeout=120 "$@"; then return 0; fi
    echo "apt-get $* failed (attempt $attempt of 3)" >&2
    sleep "$APT_LOCK_POLL_S"
  done
  return 1
}}
"""


def install_docker(data_root: str = f"{DATA_MOUNT}/docker") -> str:
    return f"""
# --- Docker Engine + compose plugin (Docker's apt repository), data-root on the data disk ---
if ! command -v docker >/dev/null 2>&1; then
  apt_get update -y
  apt_get install -y ca-certificates curl gnupg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $(. /etc/os-release && echo "$VERSION_CODENAME") stable" > /etc/apt/sources.list.d/docker.list
  mkdir -p /etc/docker {data_root}
  echo '{{"data-root": "{data_root}"}}' > /etc/docker/daemon.json
  apt_get update -y
  apt_get install -y docker-ce docker-ce-cli containerd.io docker-compose-plugin
fi
systemctl enable --now docker
"""


def _wait_http(url: str, what: str, tries: int = 120, delay: int = 10) -> str:
    return f"""
# --- wait until {what} answers ---------------------------------------------------------
for i in $(seq 1 {tries}); do
  if curl -fsS {shlex.quote(url)} >/dev/null 2>&1; then echo "{what} is up"; break; fi
  sleep {delay}
done
"""


# ------------------------------------------------------------------------------------------
# Airbyte


def render_airbyte(
    *, device_name: str = "data", low_resource_mode: bool = False, port: int = SERVICE_PORTS["airbyte"],
    host: Optional[str] = None,
) -> str:
    _check_port(port)
    flags = ["--no-browser", "--port", str(port)]
    if low_resource_mode:
        flags.append("--low-resource-mode")
    if host is not None:
        _check("host", host, _HOST, "host names separated by commas")
        flags += ["--host", host]
    install = "abctl local install " + " ".join(shlex.quote(f) for f in flags)
    return (
        _header("airbyte")
        + apt_lock_wait()
        + mount_data_disk(device_name)
        + install_docker()
        + f"""
# --- Airbyte with abctl (kind cluster in Docker; state in ~/.airbyte on the data disk) ---
mkdir -p {DATA_MOUNT}/airbyte
[ -L /root/.airbyte ] || {{ rm -rf /root/.airbyte; ln -s {DATA_MOUNT}/airbyte /root/.airbyte; }}
if ! command -v abctl >/dev/null 2>&1; then
  curl -LsfS https://get.airbyte.com | bash -
fi
export DO_NOT_TRACK=1
if [ ! -f {DATA_MOUNT}/airbyte/.flexyboots-installed ]; then
  # first install downloads the images: may take 20+ minutes
  {install}
  touch {DATA_MOUNT}/airbyte/.flexyboots-installed
fi
"""
        + _wait_http(f"http://localhost:{port}", "Airbyte")
    )


# ------------------------------------------------------------------------------------------
# Metabase and Amundsen: compose files rendered from components.services' definitions


def _definition(build, **kwargs) -> services.ServiceDefinition:
    try:
        return build(**kwargs)
    except services.DefinitionError as exc:
        raise ValueError(f"startup_scripts: {exc}") from None


def _compose(defn: services.ServiceDefinition, extra_volumes=None) -> str:
    return services.compose_yaml(defn, data_root=DATA_MOUNT, extra_volumes=extra_volumes)


def _data_dirs(defn: services.ServiceDefinition) -> str:
    """mkdir the bind-mount directories on the data disk (and chown those that need it)."""
    dirs = services.bind_dirs(defn, DATA_MOUNT)
    lines = [f"mkdir -p {' '.join(d for d, _ in dirs)} /etc/flexyboots/{defn.name}"]
    lines += [f"chown -R {owner} {d}" for d, owner in dirs if owner]
    return "\n".join(lines) + "\n"


def metabase_definition(
    *, db_name: str = "metabase", db_user: str = "metabase", images: ImageSet = image_sets.METABASE,
    port: int = SERVICE_PORTS["metabase"],
) -> services.ServiceDefinition:
    """``services.metabase(...)`` with this module's errors (``startup_scripts: <field>: ...``)."""
    return _definition(services.metabase, db_name=db_name, db_user=db_user, images=images, port=port)


def amundsen_definition(
    *, port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024, neo4j_heap_mb: int = 1024,
    images: ImageSet = image_sets.AMUNDSEN,
) -> services.ServiceDefinition:
    return _definition(services.amundsen, port=port, es_heap_mb=es_heap_mb, neo4j_heap_mb=neo4j_heap_mb, images=images)


def compose_metabase(
    *, db_name: str = "metabase", db_user: str = "metabase", images: ImageSet = image_sets.METABASE,
    port: int = SERVICE_PORTS["metabase"], bigquery_key: bool = False,
) -> str:
    """The compose file. ``bigquery_key``: mount the BigQuery reader's key (read at boot into
    ``METABASE_BIGQUERY_KEY_HOST_PATH``) read-only at ``METABASE_BIGQUERY_KEY_PATH``."""
    return _metabase_compose(metabase_definition(db_name=db_name, db_user=db_user, images=images, port=port), bigquery_key)


def _metabase_compose(defn: services.ServiceDefinition, bigquery_key: bool) -> str:
    key_mount = {"metabase": [f"{METABASE_BIGQUERY_KEY_HOST_PATH}:{METABASE_BIGQUERY_KEY_PATH}:ro"]} if bigquery_key else None
    return _compose(defn, key_mount)


def _read_secret(var: str, secret_id: str, project: str, what: str) -> str:
    """Bash: read the latest version of a secret into shell variable ``var`` (retrying while
    the VM's access grant propagates); the value only ever lives in that variable."""
    return f"""for i in $(seq 1 30); do
  if {var}=$(gcloud secrets versions access latest --secret={shlex.quote(secret_id)} --project={shlex.quote(project)}); then break; fi
  echo "waiting for access to the {what} secret"; sleep 10
done
[ -n "${{{var}:-}}" ] || {{ echo "cannot read the {what} secret" >&2; exit 1; }}
"""


def render_metabase(
    *, secret_id: str, project: str, device_name: str = "data", db_name: str = "metabase",
    db_user: str = "metabase", images: ImageSet = image_sets.METABASE, port: int = SERVICE_PORTS["metabase"],
    bigquery_key_secret_id: Optional[str] = None,
) -> str:
    """``bigquery_key_secret_id``: the secret holding the BigQuery reader's key (JSON); read
    at boot into tmpfs and mounted read-only into the Metabase container."""
    _check("secret_id", secret_id, _SECRET_ID, "a Secret Manager secret id (letters, digits, '_' and '-')")
    _check("project", project, PROJECT_ID, "a GCP project id")
    if bigquery_key_secret_id is not None:
        _check("bigquery_key_secret_id", bigquery_key_secret_id, _SECRET_ID, "a Secret Manager secret id (letters, digits, '_' and '-')")
    defn = metabase_definition(db_name=db_name, db_user=db_user, images=images, port=port)
    (secret_var,) = defn.secrets  # MB_DB_PASS: what the compose file interpolates
    compose = _metabase_compose(defn, bigquery_key_secret_id is not None)
    key = ""
    if bigquery_key_secret_id is not None:
        key = (
            "# the BigQuery reader's key: from Secret Manager at boot into tmpfs (never on disk, never\n"
            "# in metadata); the 0700 directory keeps other VM users out, the container reads it read-only\n"
            + _read_secret("MB_BQ_KEY", bigquery_key_secret_id, project, "Metabase BigQuery reader key")
            + f"printf '%s\\n' \"$MB_BQ_KEY\" > {METABASE_BIGQUERY_KEY_HOST_PATH}\n"
            + f"chmod 0444 {METABASE_BIGQUERY_KEY_HOST_PATH}\n"
            + "unset MB_BQ_KEY\n"
        )
    return (
        _header("metabase")
        + apt_lock_wait()
        + mount_data_disk(device_name)
        + install_docker()
        + f"""
# --- Metabase on a Postgres application database (never H2) ----------------------------
{_data_dirs(defn)}cat > /etc/flexyboots/metabase/compose.yaml <<'COMPOSE'
{compose}COMPOSE
# the DB password comes from Secret Manager at boot, into tmpfs, root-only; never in metadata
install -d -m 0700 /run/flexyboots
umask 077
{_read_secret(secret_var, secret_id, project, "Metabase DB")}printf '{secret_var}=%s\\n' "${secret_var}" > /run/flexyboots/metabase.env
unset {secret_var}
{key}umask 022
docker compose --env-file /run/flexyboots/metabase.env -f /etc/flexyboots/metabase/compose.yaml up -d
"""
        + _wait_http(f"http://localhost:{defn.public_port}{defn.health_path}", "Metabase")
    )


# ------------------------------------------------------------------------------------------
# Amundsen


def compose_amundsen(
    *, port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024, neo4j_heap_mb: int = 1024,
    images: ImageSet = image_sets.AMUNDSEN,
) -> str:
    return _compose(amundsen_definition(port=port, es_heap_mb=es_heap_mb, neo4j_heap_mb=neo4j_heap_mb, images=images))


def render_amundsen(
    *, device_name: str = "data", port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024,
    neo4j_heap_mb: int = 1024, images: ImageSet = image_sets.AMUNDSEN,
) -> str:
    defn = amundsen_definition(port=port, es_heap_mb=es_heap_mb, neo4j_heap_mb=neo4j_heap_mb, images=images)
    sysctls = "".join(
        f"""
# --- Elasticsearch needs {key}={value}: set now and persist -------------
echo '{key}={value}' > /etc/sysctl.d/99-flexyboots-amundsen.conf
sysctl -w {key}={value}
"""
        for key, value in defn.host_sysctls.items()
    )
    return (
        _header("amundsen")
        + apt_lock_wait()
        + sysctls
        + mount_data_disk(device_name)
        + install_docker()
        + f"""
# --- Amundsen: neo4j, Elasticsearch, metadata, search, frontend -------------------------
{_data_dirs(defn)}cat > /etc/flexyboots/amundsen/compose.yaml <<'COMPOSE'
{_compose(defn)}COMPOSE
docker compose -f /etc/flexyboots/amundsen/compose.yaml up -d
"""
        + _wait_http(f"http://localhost:{defn.public_port}{defn.health_path}", "Amundsen frontend")
    )
