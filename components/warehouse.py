"""``Warehouse``: one BigQuery dataset per layer (staging, archive, delta, transform, dwh, quality).

API (stable)::

    Warehouse(name: str, args: WarehouseArgs, opts: pulumi.ResourceOptions | None = None)

``WarehouseArgs``
    ``env: str``
    ``project: str``                               GCP project id (dataset ids need it)
    ``location: str = "US"``                       every dataset's location (scheduled queries must match)
    ``temporary_table_expiration_ms: int | None = 7 days``
                                                   default table expiration of delta and transform
                                                   (``EXPIRING_LAYERS``; never staging, see below)
    ``protect: bool = False``                      archive and dwh: ``protect=True`` + ``deletion_policy="PREVENT"``;
                                                   no dataset deletes its tables on destroy
    ``delete_contents_on_destroy: bool | None = None``  None: ``not protect`` (a dev ``pulumi destroy``
                                                   removes datasets that still hold SQL-created tables)
    ``readers: Mapping[layer, Sequence[Input[str]]] = {}``  service-account emails -> roles/bigquery.dataViewer
    ``writers: Mapping[layer, Sequence[Input[str]]] = {}``  service-account emails -> roles/bigquery.dataEditor
    ``grants: Mapping[layer, Sequence[DatasetGrant]] = {}`` any other dataset-level grant
    ``extra_labels: dict[str, str] | None = None``
    ``depends_on: Sequence[pulumi.Resource] = ()``  e.g. the bigquery API Service

``DatasetGrant(role: str, member: Input[str], key: str | None = None)``
    ``member`` is a full IAM member (``"serviceAccount:..."``, ``"group:..."``); ``key`` makes the
    Pulumi name stable (default: the member when it is a plain string, else its position).

Dataset ids come from ``pipeline_sql.naming.Naming(project, env).dataset(layer)``, the names the
SQL uses. Every dataset has labels and a description of its layer (:data:`LAYER_DESCRIPTIONS`).
Grants are ``gcp.bigquery.DatasetIamMember`` on one dataset each; nothing project-wide;
``roles/owner``, ``roles/editor`` and ``roles/bigquery.admin`` are refused.

Why staging never expires: a dataset's default table expiration is stamped on a table when it
is *created* (pulumi-gcp's ``default_table_expiration_ms``: "all newly-created tables ... have
an expirationTime ... set to the creation time plus the value"). A table reloaded in place
keeps that first expiration: created by the staging run of day 1, it would expire N days later,
right around the staging run of that day, and could vanish between that staging run and the
archive run that reads it (the S3 transfer reloads ``staging.<t>`` in place; the GCS staging
script replaces its tables, and stays in the same non-expiring dataset). Delta and transform are
rebuilt by ``CREATE OR REPLACE TABLE``, a new table (and a new expiration) every run, so the
next layer always finds them; those two keep the expiration. Staging holds one batch per table
(overwritten each run), so keeping it costs little. ``tests/components/test_warehouse.py``
checks the rule against the rendered SQL: every statement writing an expiring dataset creates
its table.

Outputs: ``datasets: dict[layer, gcp.bigquery.Dataset]``, ``dataset_ids: dict[layer, Output[str]]``,
``naming: Naming``, ``env: str``, ``location: str``, ``protect: bool``, ``protected: dict[layer, bool]``
(archive/dwh True when ``protect``), ``iam_members: list[gcp.bigquery.DatasetIamMember]``.

``bucket_location_compatible(dataset_location, bucket_location) -> bool``: whether BigQuery can
load from a bucket there (same location; any bucket for US datasets).
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
#: Layers whose datasets get the default table expiration: only those whose tables the SQL
#: recreates every run (``CREATE OR REPLACE``); see the module docstring for staging.
EXPIRING_LAYERS = tuple(layer for layer in TEMPORARY_LAYERS if layer != "staging")
#: What each dataset holds (its BigQuery description, after "flexyboots <env>: ").
LAYER_DESCRIPTIONS = {
    "staging": "staging layer: the landed files of the current batch, 1:1, every column STRING with its "
    "source name (one batch per table, overwritten each run; never expires)",
    "archive": "archive layer: permanent full history of every table, renamed, one row per new version "
    "(key + row hash), with ingestion time, batch and source file",
    "delta": "delta layer: per table, the latest valid archived version of each key new to or newer than "
    "the DWH (rebuilt each run; temporary)",
    "transform": "transform layer: per table, the delta typed to the DWH schema plus derived columns "
    "(rebuilt each run; temporary)",
    "dwh": "dwh layer: per table, the latest valid version of each key, merged from transform "
    "(the tables people query)",
    "quality": "quality: per table, the rejects view (archived values that fail their declared type) "
    "and the quality check results",
}
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
    delete_contents_on_destroy: Optional[bool] = None
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
        if self.delete_contents_on_destroy is not None and not isinstance(self.delete_contents_on_destroy, bool):
            raise ComponentArgsError("Warehouse", "delete_contents_on_destroy", "True, False or None (not protect)", self.delete_contents_on_destroy)
        if self.protect and self.delete_contents_on_destroy:
            raise ComponentArgsError(
                "Warehouse", "delete_contents_on_destroy", "False or None when protect is on (a protected warehouse never deletes its tables)", True
            )
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


def bucket_location_compatible(dataset_location: str, bucket_location: str) -> bool:
    """BigQuery loads from Cloud Storage only within the dataset's location; datasets in the US
    multi-region load from any bucket (BigQuery docs, "Loading data from Cloud Storage:
    location considerations"). Compared case-insensitively; a region inside a multi-region
    (europe-west1 in EU) is refused too: keep the bucket where the datasets are."""
    d, b = str(dataset_location).upper(), str(bucket_location).upper()
    return d == "US" or d == b


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
        self.env = args.env
        self.location = args.location
        self.protect = args.protect
        delete_contents = (not args.protect) if args.delete_contents_on_destroy is None else args.delete_contents_on_destroy
        self.datasets: dict[str, gcp.bigquery.Dataset] = {}
        self.protected: dict[str, bool] = {}
        for layer in DATASETS:
            protected = args.protect and layer in PROTECTED_LAYERS
            kwargs: dict[str, Any] = {}
            if layer in EXPIRING_LAYERS and args.temporary_table_expiration_ms is not None:
                kwargs["default_table_expiration_ms"] = args.temporary_table_expiration_ms
            if protected:
                kwargs["deletion_policy"] = "PREVENT"
            self.datasets[layer] = gcp.bigquery.Dataset(
                f"{prefix}-{layer}",
                dataset_id=naming.dataset(layer),
                project=args.project,
                location=args.location,
                friendly_name=f"{args.env} {layer}",
                description=f"flexyboots {args.env}: {LAYER_DESCRIPTIONS[layer]}",
                # dev: `pulumi destroy` also removes the tables the SQL created (delta,
                # transform, the staging tables), which Pulumi does not know
                delete_contents_on_destroy=bool(delete_contents and not protected),
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
