"""The ``local`` composition: Metabase (with its Postgres) and Amundsen on the workstation's
Docker, from the definitions the VMs run (``components.services``), for trying the services
without a cloud project.

``pulumi up --stack local`` runs it (``stacks/Pulumi.local.yaml`` says
``flexyboots:composition: local``); ``python -m stacks plan --stack local`` shows it offline.
It needs Docker running and nothing from GCP: no ``gcp:project``, no credentials, no GCP
resource. Every port is bound to 127.0.0.1, data lives in named Docker volumes, and Metabase's
database password is a Pulumi secret.

Exports: ``env``, ``service_images`` (service -> role -> ``repository:tag@sha256:...``, as on
the VMs), ``metabase_url``, ``amundsen_url``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.local_services import LocalAmundsen, LocalAmundsenArgs, LocalMetabase, LocalMetabaseArgs
from stacks.config import LocalConfig


@dataclass
class LocalPlatform:
    """What :func:`build_local` created (a service the stack leaves off is absent)."""

    config: LocalConfig
    services: dict = field(default_factory=dict)


def build_local(cfg: LocalConfig) -> LocalPlatform:
    from stacks.platform import export_service_images

    plat = LocalPlatform(config=cfg)
    extra = dict(cfg.labels) or None
    mb = cfg.service("metabase")
    if mb.enabled:
        plat.services["metabase"] = LocalMetabase(
            "metabase", LocalMetabaseArgs(env=cfg.env, port=mb.port, images=mb.images, extra_labels=extra)
        )
    am = cfg.service("amundsen")
    if am.enabled:
        plat.services["amundsen"] = amundsen = LocalAmundsen(
            "amundsen", LocalAmundsenArgs(env=cfg.env, port=am.port, images=am.images, extra_labels=extra)
        )
        load_lineage(amundsen)

    pulumi.export("env", cfg.env)
    for name, svc in sorted(plat.services.items()):
        pulumi.export(f"{name}_url", svc.url)
    export_service_images(plat.services)
    return plat


def load_lineage(amundsen: LocalAmundsen) -> Optional[pulumi.Resource]:
    """Hook: load the local runner's lineage into the local Amundsen.

    Nothing is loaded yet. The catalog job (``components/catalog.py``: databuilder on a systemd
    timer on the Amundsen VM) reads real BigQuery; loading the local runner's lineage needs that
    job pointed at the local runner's output instead. Declare it here as a one-shot
    ``docker.Container`` on ``amundsen.network`` (``restart="no"``, ``depends_on`` the
    containers in ``amundsen.containers``, neo4j reachable as ``neo4j_amundsen:7687``) and
    return it."""
    return None
