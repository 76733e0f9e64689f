"""Where each layer's tables live: one naming object so the same spec renders for the embedded
engine and for a real project (``Naming(project="acme-data-prod", env="prod")``).

Every layer has its own dataset (``<env>_<layer>``, or ``<layer>`` with no env), plus a
``quality`` dataset for rejects and check results. Per table the pipeline owns these tables:

======================  ==========================================================
staging.<t>             the landed rows of the current batch, all STRING
staging.<t>__batch      one row describing that batch (id, file, content hash)
staging.<t>__landed     on BigQuery only: an external table over the landing prefix,
                        partitioned by landing date (dt=), created by the staging script
archive.<t>             full history, renames only, + _row_hash/_ingested_at/...
archive.<t>__batches    the runner's record of archived batches (file, content hash, rows
                        in, NULL-key rows, versions archived)
delta.<t>               latest valid version per key new to / newer than the dwh
transform.<t>           the planned DWH schema (typed + derived columns)
dwh.<t>                 1:1 upsert target, partitioned and clustered per spec; _through
                        on each row is the archive high-water mark it was merged from
quality.<t>__rejects    a view: archived values that fail their declared type
======================  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The five ETL layers, in run order.
LAYERS = ("staging", "archive", "delta", "transform", "dwh")
#: Datasets the warehouse creates: one per layer plus quality (rejects, check results).
DATASETS = LAYERS + ("quality",)
#: Layers whose tables hold only what the current run needs (rebuilt every run). Of these only
#: delta and transform may expire: see components.warehouse.EXPIRING_LAYERS for staging.
TEMPORARY_LAYERS = ("staging", "delta", "transform")

_PROJECT = re.compile(r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$|^[a-z][a-z0-9\-]*(\.[a-z][a-z0-9\-]*)?:[a-z][a-z0-9\-]{4,28}[a-z0-9]$")
#: An environment name (dataset prefix, label value, resource-name prefix).
ENV_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,15}$")
LOCAL_PROJECT = "flexyboots-local"


@dataclass(frozen=True)
class Naming:
    """Project, dataset and table names of one environment."""

    project: str = LOCAL_PROJECT
    env: str = ""
    location: str = "US"

    def __post_init__(self) -> None:
        if not _PROJECT.match(self.project):
            raise ValueError(
                f"project {self.project!r} is not a valid GCP project id; expected 6-30 lower-case "
                "letters, digits and hyphens, starting with a letter"
            )
        if self.env and not ENV_PATTERN.match(self.env):
            raise ValueError(f"env {self.env!r} is not valid; expected 1-16 lower-case letters and digits, starting with a letter")

    def dataset(self, layer: str) -> str:
        if layer not in DATASETS:
            raise ValueError(f"unknown layer {layer!r}; expected one of: {', '.join(DATASETS)}")
        return f"{self.env}_{layer}" if self.env else layer

    def table_id(self, layer: str, table: str, suffix: str = "") -> str:
        """``project.dataset.table`` (unquoted), as the BigQuery client takes it."""
        return f"{self.project}.{self.dataset(layer)}.{table}{suffix}"

    def ref(self, layer: str, table: str, suffix: str = "") -> str:
        """The back-quoted reference used inside SQL."""
        return f"`{self.table_id(layer, table, suffix)}`"

    def dataset_ref(self, layer: str) -> str:
        return f"`{self.project}.{self.dataset(layer)}`"
