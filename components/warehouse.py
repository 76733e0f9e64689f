"""``Warehouse``: one BigQuery dataset per layer (staging, archive, delta, transform, dwh, quality).

API (stable)::

    Warehouse(name: str, args: WarehouseArgs, opts: pulumi.ResourceOptions | None = None)

``WarehouseArgs``
    ``env: str``
    ``project: str``                               GCP project id (dataset ids need it)
    ``location: str = "US"``                       every dataset's location (scheduled queries must match)
    ``temporary_table_expiration_ms: int | None = 7 days``
                                                   default table expiration of staging, delta, transform
    ``protect: bool = False``                      archive and dwh: ``protect=True`` + ``deletion_policy="PREVENT"``
    ``readers: Mapping[layer, Sequence[Input[str]]] = {}``  service-account emails -> roles/bigquery.dataViewer
    ``writers: Mapping[layer, Sequence[Input[str]]] = {}``  service-account emails -> roles/bigquery.dataEditor
    ``grants: Mapping[layer, Sequence[DatasetGrant]] = {}`` any other dataset-level grant
    ``extra_labels: dict[str, str] | None = None``
    ``depends_on: Sequence[pulumi.Resource] = ()``  e.g. the bigquery API Service

``DatasetGrant(role: str, member: Input[str], key: str | None = None)``
    ``member`` is a full IAM member (``"serviceAccount:..."``, ``"group:..."``); ``key`` makes the
    Pulumi name stable (default: the member when it is a plain string, else its position).

Dataset ids come from ``pipeline_sql.naming.Naming(project, env).dataset(layer)``, the names the
SQL uses. Every dataset has ``delete_contents_on_destroy=False`` and labels. Grants are
``gcp.bigquery.DatasetIamMember`` on one dataset each; nothing project-wide; ``roles/owner``,
``roles/editor`` and ``roles/bigquery.admin`` are refused.

Outputs: ``datasets: dict[layer, gcp.bigquery.Dataset]``, ``dataset_ids: dict[layer, Output[str]]``,
``naming: Naming``, ``location: str``, ``protected: dict[layer, bool]`` (archive/dwh True when
``protect``), ``iam_members: list[gcp.bigquery.DatasetIamMember]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels, require_env, require_label_map
from components.render import FORBIDDEN_ROLES, prefixed
from pipeline_sql.naming import DATASETS, TEMPORARY_LAYERS, Naming

TYPE = "flexyboots:warehouse:Warehouse"
COMPONENT_LABEL = "warehouse"
#: Layers whose datasets are protected from deletion when ``protect`` is on.
PROTECTED_LAYERS = ("archive", "dwh")
READER_ROLE = "roles/bigquery.dataViewer"
WRITER_ROLE = "roles/bigquery.dataEditor"
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000

_ROLE = re.compile(r"^(roles|projects/[a-z0-9-]+/roles|organizations/[0-9]+/roles)/[A-Za-z0-9_.]+$")
_MEMBER = re.compile(r"^(serviceAccount|user|group|domain|principal|principalSet):.+$")
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s]+$")


@dataclass
class DatasetGrant:
    role: str
    member: Any  # Input[str]
    key: Optional[str] = None


@dataclass
class WarehouseArgs:
    env: str
    project: str
    location: str = "US"
    temporary_table_expiration_ms: Optional[int] = SEVEN_DAYS_MS
    protect: bool = False
    readers: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    writers: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    grants: Mapping[str, Sequence[DatasetGrant]] = field(default_factory=dict)
    extra_labels: Optional[dict] = None
    depends_on: Sequence[pulumi.Resource] = ()

    def validate(self) -> Naming:
        require_env("Warehouse", self.env)
        try:
            naming = Naming(project=self.project, env=self.env, location=self.location)
        except ValueError as exc:
            raise ComponentArgsError("Warehouse", "project", f"a valid GCP project id ({exc})", self.project) from None
        if not isinstance(self.location, str) or not self.location:
            raise ComponentArgsError("Warehouse", "location", "a BigQuery location such as 'US', 'EU' or 'europe-west1'", self.location)
        exp = self.temporary_table_expiration_ms
        if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int) or exp < 3_600_000):
            raise ComponentArgsError(
                "Warehouse", "temporary_table_expiration_ms", "None or an integer of at least 3600000 (BigQuery's minimum, 1 hour)", exp
            )
        if not isinstance(self.protect, bool):
            raise ComponentArgsError("Warehouse", "protect", "a bool", self.protect)
        require_label_map("Warehouse", "extra_labels", self.extra_labels)
        for fname in ("readers", "writers", "grants"):
            mapping = getattr(self, fname)
            if not isinstance(mapping, Mapping):
                raise ComponentArgsError("Warehouse", fname, f"a mapping of layer ({', '.join(DATASETS)}) -> list", mapping)
            for layer, items in mapping.items():
                if layer not in DATASETS:
                    raise ComponentArgsError("Warehouse", f"{fname}[{layer!r}]", f"a layer, one of {', '.join(DATASETS)}", layer)
                if isinstance(items, (str, DatasetGrant)) or not isinstance(items, Sequence):
                    raise ComponentArgsError("Warehouse", f"{fname}[{layer!r}]", "a list", items)
                for i, item in enumerate(items):
                    where = f"{fname}[{layer!r}][{i}]"
                    if fname == "grants":
                        _check_grant(where, item)
                    elif isinstance(item, str) and not _EMAIL.match(item):
                        raise ComponentArgsError("Warehouse", where, "a service-account email", item)
        return naming


def _check_grant(where: str, grant: Any) -> None:
    if not isinstance(grant, DatasetGrant):
        raise ComponentArgsError("Warehouse", where, "a DatasetGrant(role, member)", grant)
    if not isinstance(grant.role, str) or not _ROLE.match(grant.role):
        raise ComponentArgsError("Warehouse", f"{where}.role", "an IAM role such as 'roles/bigquery.dataViewer'", grant.role)
    if grant.role in FORBIDDEN_ROLES:
        raise ComponentArgsError("Warehouse", f"{where}.role", f"a least-privilege role, not {', '.join(sorted(FORBIDDEN_ROLES))}", grant.role)
    if isinstance(grant.member, str) and not _MEMBER.match(grant.member):
        raise ComponentArgsError("Warehouse", f"{where}.member", "an IAM member such as 'serviceAccount:<email>'", grant.member)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]


def _sa_member(email: Any) -> Any:
    if isinstance(email, str):
        return f"serviceAccount:{email}"
    return pulumi.Output.from_input(email).apply(lambda e: f"serviceAccount:{e}")


def _grant_plan(args: WarehouseArgs) -> list:
    """(layer, DatasetGrant, name suffix) for every dataset-level grant; refuses duplicates."""
    plan = []
    for layer in DATASETS:
        grants: list[DatasetGrant] = []
        grants += [DatasetGrant(READER_ROLE, _sa_member(e), e if isinstance(e, str) else f"reader-{i}")
                   for i, e in enumerate(args.readers.get(layer, ()))]
        grants += [DatasetGrant(WRITER_ROLE, _sa_member(e), e if isinstance(e, str) else f"writer-{i}")
                   for i, e in enumerate(args.writers.get(layer, ()))]
        grants += list(args.grants.get(layer, ()))
        seen: set[str] = set()
        for i, grant in enumerate(grants):
            key = grant.key or (grant.member if isinstance(grant.member, str) else f"grant-{i}")
            suffix = f"{_slug(grant.role.split('/')[-1])}-{_slug(key)}"
            if suffix in seen:
                raise ComponentArgsError("Warehouse", f"grants[{layer!r}]", "each (role, member) granted once", suffix)
            seen.add(suffix)
            plan.append((layer, grant, suffix))
    return plan


class Warehouse(pulumi.ComponentResource):
    def __init__(self, name: str, args: WarehouseArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, WarehouseArgs):
            raise ComponentArgsError("Warehouse", "args", "a WarehouseArgs", type(args).__name__)
        naming = args.validate()
        prefix = prefixed(args.env, name)
        plan = _grant_plan(args)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))

        self.naming = naming
        self.location = args.location
        self.datasets: dict[str, gcp.bigquery.Dataset] = {}
        self.protected: dict[str, bool] = {}
        for layer in DATASETS:
            protected = args.protect and layer in PROTECTED_LAYERS
            kwargs: dict[str, Any] = {}
            if layer in TEMPORARY_LAYERS and args.temporary_table_expiration_ms is not None:
                kwargs["default_table_expiration_ms"] = args.temporary_table_expiration_ms
            if protected:
                kwargs["deletion_policy"] = "PREVENT"
            self.datasets[layer] = gcp.bigquery.Dataset(
                f"{prefix}-{layer}",
                dataset_id=naming.dataset(layer),
                project=args.project,
                location=args.location,
                friendly_name=f"{args.env} {layer}",
                description=f"flexyboots {args.env}: {layer} layer",
                delete_contents_on_destroy=False,
                labels=labels(args.env, COMPONENT_LABEL, {**(args.extra_labels or {}), "layer": layer}),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=protected)),
                **kwargs,
            )
            self.protected[layer] = protected
        self.dataset_ids = {layer: ds.dataset_id for layer, ds in self.datasets.items()}

        self.iam_members: list[gcp.bigquery.DatasetIamMember] = []
        for layer, grant, suffix in plan:
            self.iam_members.append(
                gcp.bigquery.DatasetIamMember(
                    f"{prefix}-{layer}-{suffix}",
                    project=args.project,
                    dataset_id=self.datasets[layer].dataset_id,
                    role=grant.role,
                    member=grant.member,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )

        self.register_outputs(
            {
                "dataset_ids": self.dataset_ids,
                "location": self.location,
                "protected": self.protected,
            }
        )
