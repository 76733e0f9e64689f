"""Startup scripts of the hosted-service VMs, rendered by pure functions (no Pulumi import).

Every script is a bash script for a Debian 12 Compute Engine image, run as root by the guest
agent on every boot, and idempotent:

1. formats the persistent data disk (``/dev/disk/by-id/google-<device>``) the first time only,
   mounts it at ``DATA_MOUNT`` and records it in ``/etc/fstab`` by UUID (``nofail``);
2. installs Docker Engine + the compose plugin from Docker's apt repository (once), with
   Docker's ``data-root`` on the data disk so images and volumes survive VM replacement;
3. starts the service.

API (stable):

``render_airbyte(*, device_name="data", low_resource_mode=False, port=8000, host=None) -> str``
    ``abctl`` (Airbyte's supported self-managed installer): ``curl -LsfS https://get.airbyte.com``
    then ``abctl local install --no-browser --port <port> [--low-resource-mode] [--host <host>]``;
    abctl's state (``~/.airbyte``) lives on the data disk.
``render_metabase(*, secret_id, project, device_name="data", db_name="metabase",
db_user="metabase", metabase_image=..., postgres_image=..., port=3000) -> str``
    Postgres + Metabase with docker compose, ``MB_DB_TYPE=postgres`` and the other ``MB_DB_*``
    variables; the DB password is read at boot with ``gcloud secrets versions access latest
    --secret=<secret_id>`` into a root-only file under ``/run`` (tmpfs) and never appears in the
    script; waits for ``METABASE_HEALTH_PATH``.
``render_amundsen(*, device_name="data", port=5000, es_heap_mb=1024, neo4j_heap_mb=1024) -> str``
    neo4j, Elasticsearch, metadata, search and frontend (the amundsen repository's
    ``docker-amundsen.yml`` layout); sets and persists ``vm.max_map_count=262144``.
``compose_metabase(...)`` / ``compose_amundsen(...)`` return the compose YAML alone.

Constants: ``DATA_MOUNT``, ``METABASE_HEALTH_PATH``, ``SERVICE_PORTS``, default image tags.
"""

from __future__ import annotations

import re
import shlex
from typing import Optional

from components.common import PROJECT_ID

DATA_MOUNT = "/mnt/disks/data"
METABASE_HEALTH_PATH = "/api/health"
#: The TCP port each service listens on (what the IAP firewall must admit).
SERVICE_PORTS = {"airbyte": 8000, "metabase": 3000, "amundsen": 5000}

METABASE_IMAGE = "metabase/metabase:v0.50.36"
POSTGRES_IMAGE = "postgres:16"
AMUNDSEN_IMAGES = {
    "neo4j": "neo4j:3.5.26",
    "elasticsearch": "elasticsearch:8.0.0",
    "search": "amundsendev/amundsen-search:2.11.1",
    "metadata": "amundsendev/amundsen-metadata:3.9.0",
    "frontend": "amundsendev/amundsen-frontend:3.12.0",
}
MAX_MAP_COUNT = 262144

_DEVICE = re.compile(r"^[a-z][a-z0-9-]{0,61}$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PG_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
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


def install_docker(data_root: str = f"{DATA_MOUNT}/docker") -> str:
    return f"""
# --- Docker Engine + compose plugin (Docker's apt repository), data-root on the data disk ---
if ! command -v docker >/dev/null 2>&1; then
  apt-get update -y
  apt-get install -y ca-certificates curl gnupg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $(. /etc/os-release && echo "$VERSION_CODENAME") stable" > /etc/apt/sources.list.d/docker.list
  mkdir -p /etc/docker {data_root}
  echo '{{"data-root": "{data_root}"}}' > /etc/docker/daemon.json
  apt-get update -y
  apt-get install -y docker-ce docker-ce-cli containerd.io docker-compose-plugin
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
# Metabase


def compose_metabase(
    *, db_name: str = "metabase", db_user: str = "metabase", metabase_image: str = METABASE_IMAGE,
    postgres_image: str = POSTGRES_IMAGE, port: int = SERVICE_PORTS["metabase"],
) -> str:
    _check("db_name", db_name, _PG_IDENT, "a lower-case Postgres identifier")
    _check("db_user", db_user, _PG_IDENT, "a lower-case Postgres identifier")
    _check("metabase_image", metabase_image, _IMAGE, "a container image reference")
    _check("postgres_image", postgres_image, _IMAGE, "a container image reference")
    _check_port(port)
    return f"""name: metabase
services:
  postgres:
    image: {postgres_image}
    restart: unless-stopped
    environment:
      POSTGRES_DB: {db_name}
      POSTGRES_USER: {db_user}
      POSTGRES_PASSWORD: ${{MB_DB_PASS:?MB_DB_PASS is not set}}
    volumes:
      - {DATA_MOUNT}/metabase/postgres:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U {db_user} -d {db_name}"]
      interval: 10s
      timeout: 5s
      retries: 30
  metabase:
    image: {metabase_image}
    restart: unless-stopped
    depends_on:
      postgres:
        condition: service_healthy
    ports:
      - "{port}:3000"
    environment:
      MB_DB_TYPE: postgres
      MB_DB_DBNAME: {db_name}
      MB_DB_PORT: "5432"
      MB_DB_USER: {db_user}
      MB_DB_PASS: ${{MB_DB_PASS:?MB_DB_PASS is not set}}
      MB_DB_HOST: postgres
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://localhost:3000{METABASE_HEALTH_PATH} || exit 1"]
      interval: 30s
      timeout: 5s
      retries: 20
"""


def render_metabase(
    *, secret_id: str, project: str, device_name: str = "data", db_name: str = "metabase",
    db_user: str = "metabase", metabase_image: str = METABASE_IMAGE, postgres_image: str = POSTGRES_IMAGE,
    port: int = SERVICE_PORTS["metabase"],
) -> str:
    _check("secret_id", secret_id, _SECRET_ID, "a Secret Manager secret id (letters, digits, '_' and '-')")
    _check("project", project, PROJECT_ID, "a GCP project id")
    compose = compose_metabase(
        db_name=db_name, db_user=db_user, metabase_image=metabase_image, postgres_image=postgres_image, port=port
    )
    return (
        _header("metabase")
        + mount_data_disk(device_name)
        + install_docker()
        + f"""
# --- Metabase on a Postgres application database (never H2) ----------------------------
mkdir -p {DATA_MOUNT}/metabase/postgres /etc/flexyboots/metabase
cat > /etc/flexyboots/metabase/compose.yaml <<'COMPOSE'
{compose}COMPOSE
# the DB password comes from Secret Manager at boot, into tmpfs, root-only; never in metadata
install -d -m 0700 /run/flexyboots
umask 077
for i in $(seq 1 30); do
  if MB_DB_PASS=$(gcloud secrets versions access latest --secret={shlex.quote(secret_id)} --project={shlex.quote(project)}); then break; fi
  echo "waiting for access to the Metabase DB secret"; sleep 10
done
[ -n "${{MB_DB_PASS:-}}" ] || {{ echo "cannot read the Metabase DB secret" >&2; exit 1; }}
printf 'MB_DB_PASS=%s\\n' "$MB_DB_PASS" > /run/flexyboots/metabase.env
unset MB_DB_PASS
umask 022
docker compose --env-file /run/flexyboots/metabase.env -f /etc/flexyboots/metabase/compose.yaml up -d
"""
        + _wait_http(f"http://localhost:{port}{METABASE_HEALTH_PATH}", "Metabase")
    )


# ------------------------------------------------------------------------------------------
# Amundsen


def compose_amundsen(
    *, port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024, neo4j_heap_mb: int = 1024,
    images: Optional[dict] = None,
) -> str:
    _check_port(port)
    for field, value in (("es_heap_mb", es_heap_mb), ("neo4j_heap_mb", neo4j_heap_mb)):
        if isinstance(value, bool) or not isinstance(value, int) or not 256 <= value <= 65536:
            raise ValueError(f"startup_scripts: {field}: an integer number of MB between 256 and 65536 (got {value!r})")
    img = dict(AMUNDSEN_IMAGES, **(images or {}))
    for key, value in img.items():
        _check(f"images[{key!r}]", value, _IMAGE, "a container image reference")
    d = DATA_MOUNT
    # Layout of the amundsen repository's docker-amundsen.yml; neo4j and Elasticsearch are
    # only published on 127.0.0.1, data lives on the data disk, heaps are bounded.
    return f"""name: amundsen
services:
  neo4j:
    image: {img['neo4j']}
    container_name: neo4j_amundsen
    restart: unless-stopped
    environment:
      - NEO4J_AUTH=neo4j/test
      - NEO4J_dbms_memory_heap_max__size={neo4j_heap_mb}M
      - NEO4J_dbms_memory_pagecache_size=512M
    ulimits:
      nofile: {{soft: 40000, hard: 40000}}
    ports:
      - "127.0.0.1:7474:7474"
      - "127.0.0.1:7687:7687"
    volumes:
      - {d}/amundsen/neo4j:/data
    networks: [amundsennet]
  elasticsearch:
    image: {img['elasticsearch']}
    container_name: es_amundsen
    restart: unless-stopped
    environment:
      - discovery.type=single-node
      - xpack.security.enabled=false
      - ES_JAVA_OPTS=-Xms{es_heap_mb}m -Xmx{es_heap_mb}m
    ulimits:
      nofile: {{soft: 65536, hard: 65536}}
    ports:
      - "127.0.0.1:9200:9200"
    volumes:
      - {d}/amundsen/es:/usr/share/elasticsearch/data
    networks: [amundsennet]
  amundsensearch:
    image: {img['search']}
    container_name: amundsensearch
    restart: unless-stopped
    depends_on: [elasticsearch]
    environment:
      - PROXY_ENDPOINT=es_amundsen
    command: gunicorn -w 2 --bind :5000 search_service.search_wsgi
    networks: [amundsennet]
  amundsenmetadata:
    image: {img['metadata']}
    container_name: amundsenmetadata
    restart: unless-stopped
    depends_on: [neo4j]
    environment:
      - PROXY_HOST=bolt://neo4j_amundsen
    command: gunicorn -w 2 --bind :5000 metadata_service.metadata_wsgi
    networks: [amundsennet]
  amundsenfrontend:
    image: {img['frontend']}
    container_name: amundsenfrontend
    restart: unless-stopped
    depends_on: [amundsenmetadata, amundsensearch]
    ports:
      - "{port}:5000"
    environment:
      - SEARCHSERVICE_BASE=http://amundsensearch:5000
      - METADATASERVICE_BASE=http://amundsenmetadata:5000
      - FRONTEND_SVC_CONFIG_MODULE_CLASS=amundsen_application.config.TestConfig
    command: gunicorn -w 2 --bind :5000 amundsen_application.wsgi
    networks: [amundsennet]
networks:
  amundsennet: {{}}
"""


def render_amundsen(
    *, device_name: str = "data", port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024,
    neo4j_heap_mb: int = 1024, images: Optional[dict] = None,
) -> str:
    compose = compose_amundsen(port=port, es_heap_mb=es_heap_mb, neo4j_heap_mb=neo4j_heap_mb, images=images)
    return (
        _header("amundsen")
        + f"""
# --- Elasticsearch needs vm.max_map_count={MAX_MAP_COUNT}: set now and persist -------------
echo 'vm.max_map_count={MAX_MAP_COUNT}' > /etc/sysctl.d/99-flexyboots-amundsen.conf
sysctl -w vm.max_map_count={MAX_MAP_COUNT}
"""
        + mount_data_disk(device_name)
        + install_docker()
        + f"""
# --- Amundsen: neo4j, Elasticsearch, metadata, search, frontend -------------------------
mkdir -p {DATA_MOUNT}/amundsen/neo4j {DATA_MOUNT}/amundsen/es /etc/flexyboots/amundsen
chown -R 1000:0 {DATA_MOUNT}/amundsen/es
cat > /etc/flexyboots/amundsen/compose.yaml <<'COMPOSE'
{compose}COMPOSE
docker compose -f /etc/flexyboots/amundsen/compose.yaml up -d
"""
        + _wait_http(f"http://localhost:{port}", "Amundsen frontend")
    )
