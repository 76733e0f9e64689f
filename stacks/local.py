"""The ``local`` composition: Metabase (with its Postgres) and Amundsen on the workstation's
Docker, from the definitions the VMs run (``components.services``), for trying the services
without a cloud project.

``pulumi up --stack local`` runs it (``stacks/Pulumi.local.yaml`` says
``flexyboots:composition: local``); ``python -m stacks plan --stack local`` shows it offline.
It needs Docker running and nothing from GCP: no ``gcp:project``, no credentials, no GCP
resource. Every port is bound to 127.0.0.1, data lives in named Docker volumes, and Metabase's
database password is a Pulumi secret.

With Amundsen on, a one-shot container (``<env>-amundsen-catalog``, :func:`load_lineage`) loads
the local runner's tables into it: every layer's tables of the specs in
``flexyboots:pipelines.tables_dir`` with their columns and descriptions, and their table and
column lineage (``components.catalog.local_catalog_document``, the keys of
``python -m pipeline_sql``'s tables), with Amundsen's databuilder. A spec change changes the
document, which replaces the container: the next ``pulumi up`` loads again.

Exports: ``env``, ``service_images`` (service -> role -> ``repository:tag@sha256:...``, as on
the VMs), ``metabase_url``, ``amundsen_url``, ``amundsen_catalog_exit_code`` (the loader's exit
code: 0 when the load succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.catalog import local_catalog_document, render_local_loader
from components.local_services import LocalAmundsen, LocalAmundsenArgs, LocalMetabase, LocalMetabaseArgs, docker_labels
from pipeline_sql.spec import load_specs
from stacks.config import LocalConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalPlatform:
    """What :func:`build_local` created (a service the stack leaves off is absent)."""

    config: LocalConfig
    services: dict = field(default_factory=dict)
    #: the one-shot container that loads the specs' tables and lineage into Amundsen
    catalog_loader: "docker.Container | None" = None


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
        plat.catalog_loader = load_lineage(amundsen, cfg)

    pulumi.export("env", cfg.env)
    for name, svc in sorted(plat.services.items()):
        pulumi.export(f"{name}_url", svc.url)
    if plat.catalog_loader is not None:
        # the provider does not fail `pulumi up` when the one-shot load fails: its exit code shows it
        pulumi.export("amundsen_catalog_exit_code", plat.catalog_loader.exit_code)
    export_service_images(plat.services)
    return plat


def specs_dir(cfg: LocalConfig) -> Path:
    p = Path(cfg.tables_dir)
    return p if p.is_absolute() else ROOT / p


def load_lineage(amundsen: LocalAmundsen, cfg: LocalConfig) -> docker.Container:
    """The one-shot loader: the local runner's tables, descriptions and lineage into Amundsen.

    A ``docker.Container`` on ``amundsen.network`` running ``components/amundsen/
    flexyboots_catalog.py`` (databuilder, installed from ``requirements-databuilder.lock``) on
    :func:`components.catalog.local_catalog_document` of the specs in ``cfg.tables_dir``,
    published to neo4j as ``neo4j_amundsen:7687``. The image is the Amundsen set's ``catalog``
    role, by digest. ``restart="no"``, ``attach`` (``pulumi up`` waits for the load to end),
    ``must_run=False`` (a container that exited is left alone, not restarted: upstream's
    one-shot pattern, terraform-provider-docker PR #106; its acceptance test
    ``testAccDockerContainerExitCodeConfig`` creates such a container exiting 123 without an
    error, so a failed load shows in ``exit_code``, not as a failed ``pulumi up``), ``logs``
    kept in the state. Created after every Amundsen container; replaced (deleted first: it has
    a fixed name) whenever its files, command or image change, so a spec change loads again."""
    specs = load_specs(specs_dir(cfg))
    command, files = render_local_loader(local_catalog_document(specs))
    name = f"{amundsen.prefix}-catalog"
    image = docker.RemoteImage(
        f"{name}-image",
        name=amundsen.pinned_images.apply(lambda refs: refs["catalog"]),
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=amundsen),
    )
    return docker.Container(
        name,
        name=name,
        image=image.image_id,
        command=command,
        uploads=[docker.ContainerUploadArgs(file=path, content=text) for path, text in sorted(files.items())],
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=amundsen.network.name)],
        restart="no",
        must_run=False,
        attach=True,
        logs=True,
        labels=docker_labels({**amundsen.labels, "role": "catalog-loader"}, docker.ContainerLabelArgs),
        opts=pulumi.ResourceOptions(
            parent=amundsen,
            depends_on=list(amundsen.containers.values()),
            replace_on_changes=["uploads", "command", "image"],
            delete_before_replace=True,
        ),
    )
