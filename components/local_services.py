"""``LocalMetabase`` and ``LocalAmundsen``: the hosted services on a workstation's Docker, with
pulumi-docker, from the very definitions the VMs run (``components.services``).

Each component resolves its image set to digests (``components.image_digests``, the same
lookup the VM presets make), pulls each image its containers run by digest
(``docker.RemoteImage``, kept on destroy; a tool role such as Amundsen's ``catalog`` is
resolved, in ``pinned_images``, and left to ``stacks/local.py``'s loader to pull), and declares one ``docker.Network``, one named ``docker.Volume`` per data volume and
one ``docker.Container`` per container of the definition (``services.local_containers``):
same image, environment, command, health check, ulimits and start order as the VM's compose
file. Every published port is bound to 127.0.0.1; nothing listens on other interfaces.

API (stable)::

    LocalMetabase(name, args: LocalMetabaseArgs, opts=None)   # type flexyboots:local_services:LocalMetabase
    LocalAmundsen(name, args: LocalAmundsenArgs, opts=None)   # type flexyboots:local_services:LocalAmundsen

``LocalMetabaseArgs``: ``env: str``, ``port: int = 3000`` (host port, on 127.0.0.1),
``db_name="metabase"``, ``db_user="metabase"``, ``images: ImageSet = components.images.METABASE``
(a whole set), ``extra_labels: dict | None = None``. Creates a ``random.RandomPassword``; the
Postgres and Metabase containers get it as a Pulumi secret (``MB_DB_PASS``/
``POSTGRES_PASSWORD``): encrypted in the state, ``[secret]`` in every plan and preview.
Postgres is created with ``wait`` (the provider waits until its health check passes) before
Metabase, as compose's ``condition: service_healthy`` does on the VM.

``LocalAmundsenArgs``: ``env: str``, ``port: int = 5000``, ``es_heap_mb=1024``,
``neo4j_heap_mb=1024``, ``images: ImageSet = components.images.AMUNDSEN``, ``extra_labels``.
neo4j (7474, 7687) and Elasticsearch (9200) are published on 127.0.0.1 as on the VM.

Names: ``<env>-<name>`` prefixes everything (network ``local-metabase``, volume
``local-metabase-postgres``, container ``local-metabase-postgres``, image
``local-metabase-postgres-image``); the containers also answer
on the network by their compose service and container names (``postgres``, ``es_amundsen``).

Outputs: ``definition`` (the ``services.ServiceDefinition``, tags), ``prefix`` (``<env>-<name>``),
``labels`` (the labels every Docker resource carries; ``docker_labels(labels, cls)`` turns
them into pulumi-docker label blocks), ``pinned_images``
(Output: role -> ``repository:tag@sha256:...``), ``containers`` / ``volumes`` / ``images``
(name -> resource), ``network``, ``url`` (``http://127.0.0.1:<port>``); LocalMetabase adds
``db_password`` (the ``RandomPassword``) and ``health_url``.

The docker provider used for the containers is the default one (``docker:host`` config or
``DOCKER_HOST``, else the local socket) unless ``opts`` passes ``providers``; the registry
lookups use their own provider that needs no daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_docker as docker

from components import image_digests, services
from components import images as image_sets
from components.common import ComponentArgsError, labels, require_env, require_label_map
from components.images import ImageSet
from components.render import prefixed


@dataclass
class LocalMetabaseArgs:
    env: str
    port: int = services.SERVICE_PORTS["metabase"]
    db_name: str = "metabase"
    db_user: str = "metabase"
    images: ImageSet = image_sets.METABASE
    extra_labels: Optional[dict] = None


@dataclass
class LocalAmundsenArgs:
    env: str
    port: int = services.SERVICE_PORTS["amundsen"]
    es_heap_mb: int = 1024
    neo4j_heap_mb: int = 1024
    images: ImageSet = image_sets.AMUNDSEN
    extra_labels: Optional[dict] = None


def docker_labels(lbls: Mapping[str, str], cls):
    """Labels as pulumi-docker's label blocks (``cls``: e.g. ``docker.ContainerLabelArgs``)."""
    return [cls(label=k, value=v) for k, v in sorted(lbls.items())]


class LocalService(pulumi.ComponentResource):
    """One service of ``components.services`` on the workstation's Docker (see the module doc)."""

    TYPE = "flexyboots:local_services:LocalService"
    COMPONENT = "LocalService"
    ARGS: type = object

    def __init__(self, name: str, args: Any, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if type(args) is not self.ARGS:
            raise ComponentArgsError(self.COMPONENT, "args", f"a {self.ARGS.__name__}", type(args).__name__)
        require_env(self.COMPONENT, args.env)
        require_label_map(self.COMPONENT, "extra_labels", args.extra_labels)
        try:
            definition = self._definition(args)
            prefix = prefixed(args.env, name)
            specs = services.local_containers(definition, prefix)
        except services.DefinitionError as exc:
            field_name, _, reason = str(exc).partition(": ")
            raise ComponentArgsError(self.COMPONENT, field_name, reason) from None
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lbls = labels(args.env, definition.name, args.extra_labels)
        secrets = self._secrets(prefix, args)

        self.definition = definition
        self.prefix = prefix
        self.labels = lbls
        self.url = f"http://{services.LOOPBACK}:{definition.public_port}"
        self.registry = image_digests.registry_provider(f"{prefix}-registry", opts=child)
        pinned = image_digests.resolve(definition.images, provider=self.registry, parent=self)
        self.pinned_images = pinned.apply(lambda s: dict(s.images))

        self.network = docker.Network(
            prefix, name=prefix, labels=docker_labels(lbls, docker.NetworkLabelArgs), opts=child
        )
        self.volumes = {
            vol: docker.Volume(docker_name, name=docker_name, labels=docker_labels(lbls, docker.VolumeLabelArgs), opts=child)
            for vol, docker_name in services.local_volume_names(definition, prefix).items()
        }
        by_docker_name = {docker_name: vol for vol, docker_name in services.local_volume_names(definition, prefix).items()}
        self.images = {
            role: docker.RemoteImage(
                f"{prefix}-{role}-image",
                name=self.pinned_images.apply(lambda refs, role=role: refs[role]),
                keep_locally=True,  # a destroy removes the containers, not images other projects may use
                opts=child,
            )
            for role in dict.fromkeys(c.role for c in definition.containers)
        }
        self.containers: dict[str, docker.Container] = {}
        for spec in specs:
            c = spec.container
            envs = [
                pulumi.Output.secret(pulumi.Output.concat(f"{k}=", secrets[v.name]))
                if isinstance(v, services.Secret) else f"{k}={v}"
                for k, v in spec.environment
            ]
            h = c.healthcheck
            self.containers[c.name] = docker.Container(
                spec.name,
                name=spec.name,
                image=self.images[c.role].image_id,
                envs=envs,
                command=list(c.command) or None,
                ports=[docker.ContainerPortArgs(internal=i, external=e, ip=ip, protocol="tcp") for i, e, ip in spec.ports] or None,
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self.volumes[by_docker_name[vol]].name, container_path=path)
                    for vol, path in spec.volumes
                ] or None,
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=list(h.test), interval=h.interval, timeout=h.timeout, retries=h.retries
                ) if h else None,
                ulimits=[docker.ContainerUlimitArgs(name=n, soft=soft, hard=hard) for n, soft, hard in c.ulimits] or None,
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=list(c.aliases))],
                restart=c.restart,
                wait=spec.wait or None,
                wait_timeout=spec.wait_timeout_s or None,
                labels=docker_labels(lbls, docker.ContainerLabelArgs),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.containers[d.removeprefix(f"{prefix}-")] for d in spec.depends_on]
                ),
            )
        self._extra_outputs: dict[str, Any] = {}
        self._after(prefix, args)
        self.register_outputs(
            {"url": self.url, "pinned_images": self.pinned_images, "network": self.network.name, **self._extra_outputs}
        )

    # -- hooks -------------------------------------------------------------------------------
    def _definition(self, args: Any) -> services.ServiceDefinition:
        raise NotImplementedError

    def _secrets(self, prefix: str, args: Any) -> dict:
        """Secret variable -> its value (a Pulumi secret), for the definition's ``secrets``."""
        return {}

    def _after(self, prefix: str, args: Any) -> None:
        return None


class LocalMetabase(LocalService):
    TYPE = "flexyboots:local_services:LocalMetabase"
    COMPONENT = "LocalMetabase"
    ARGS = LocalMetabaseArgs

    def _definition(self, args: LocalMetabaseArgs) -> services.ServiceDefinition:
        return services.metabase(db_name=args.db_name, db_user=args.db_user, images=args.images, port=args.port)

    def _secrets(self, prefix: str, args: LocalMetabaseArgs) -> dict:
        import pulumi_random as random

        self.db_password = random.RandomPassword(
            f"{prefix}-db-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        return {"MB_DB_PASS": self.db_password.result}

    def _after(self, prefix: str, args: LocalMetabaseArgs) -> None:
        self.health_url = f"{self.url}{self.definition.health_path}"
        self._extra_outputs["health_url"] = self.health_url


class LocalAmundsen(LocalService):
    TYPE = "flexyboots:local_services:LocalAmundsen"
    COMPONENT = "LocalAmundsen"
    ARGS = LocalAmundsenArgs

    def _definition(self, args: LocalAmundsenArgs) -> services.ServiceDefinition:
        return services.amundsen(port=args.port, es_heap_mb=args.es_heap_mb, neo4j_heap_mb=args.neo4j_heap_mb, images=args.images)
