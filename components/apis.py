"""``ProjectApis``: enable Google APIs on a project, one ``gcp.projects.Service`` each.

API (stable)::

    ProjectApis(name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None)

``ProjectApisArgs``
    ``env: str``                      environment (names carry it)
    ``apis: Sequence[str]``           e.g. ``["compute.googleapis.com", "bigquery.googleapis.com"]``
    ``project: str | None = None``    default: the provider's project

Outputs (attributes, also registered):
    ``services: dict[str, gcp.projects.Service]``  api -> resource, for ``depends_on``
    ``enabled: list[str]``                          the APIs, in the order given
    ``service(api) -> gcp.projects.Service``        one resource (KeyError naming the api)
    ``depends_on(*apis) -> list[gcp.projects.Service]``

Every Service has ``disable_on_destroy=False`` (destroying a stack never switches off an API
something else in the project may use) and ``disable_dependent_services=False``.
``PLATFORM_APIS`` lists the APIs the whole flexyboots platform uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, require_env
from components.render import prefixed

TYPE = "flexyboots:apis:ProjectApis"

#: APIs the flexyboots platform uses (network, VMs, lake, warehouse, scheduled queries, secrets).
PLATFORM_APIS = (
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "storage.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerydatatransfer.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudresourcemanager.googleapis.com",
)

_API = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*\.googleapis\.com$")


@dataclass
class ProjectApisArgs:
    env: str
    apis: Sequence[str] = field(default_factory=lambda: list(PLATFORM_APIS))
    project: Optional[str] = None

    def validate(self) -> None:
        require_env("ProjectApis", self.env)
        if isinstance(self.apis, str) or not self.apis:
            raise ComponentArgsError("ProjectApis", "apis", "a non-empty list of '<name>.googleapis.com' services", self.apis)
        seen = set()
        for i, api in enumerate(self.apis):
            if not isinstance(api, str) or not _API.match(api):
                raise ComponentArgsError("ProjectApis", f"apis[{i}]", "a service name such as 'bigquery.googleapis.com'", api)
            if api in seen:
                raise ComponentArgsError("ProjectApis", f"apis[{i}]", "each API listed once", api)
            seen.add(api)


class ProjectApis(pulumi.ComponentResource):
    services: dict
    enabled: list

    def __init__(self, name: str, args: ProjectApisArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, ProjectApisArgs):
            raise ComponentArgsError("ProjectApis", "args", "a ProjectApisArgs", type(args).__name__)
        args.validate()
        prefix = prefixed(args.env, name)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.services = {}
        for api in args.apis:
            self.services[api] = gcp.projects.Service(
                f"{prefix}-{api.removesuffix('.googleapis.com').replace('.', '-')}",
                service=api,
                project=args.project,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child,
            )
        self.enabled = list(args.apis)
        self.register_outputs({"enabled": self.enabled, "services": {a: s.service for a, s in self.services.items()}})

    def service(self, api: str) -> gcp.projects.Service:
        try:
            return self.services[api]
        except KeyError:
            raise KeyError(f"ProjectApis: {api!r} is not enabled by this component; enabled: {', '.join(self.enabled)}") from None

    def depends_on(self, *apis: str) -> list:
        return [self.service(a) for a in apis]
