"""Which input changes force a new resource, judged from the provider's own rules (pure, no Pulumi).

Two kinds of rules, each with its source:

* ``ForceNew`` attributes of the Terraform resources pulumi-gcp bridges, extracted from
  terraform-provider-google by ``tools/provider_rules.py`` into ``stacks/provider_rules.json``
  (file and line per rule). A rule on a list attribute applies when items are added or removed;
  nested attributes carry their own rules.
* Rules the provider computes in ``CustomizeDiff`` functions, ported here:
  - BigQuery table ``schema``: :func:`schema_change_in_place` is a port of
    ``resourceBigQueryTableSchemaIsChangeable`` (google/services/bigquery/resource_bigquery_table.go):
    a column's type or mode (other than REQUIRED->NULLABLE) changes, a column is renamed, a REQUIRED
    column is added, or columns are dropped while others are added -> the table is replaced;
  - BigQuery table partitioning: ``timePartitioning.field`` is ForceNew in the provider, while a
    change of the partitioning type (DAY/MONTH...) or adding/removing partitioning is sent as an
    in-place update that BigQuery refuses ("Cannot convert non-partitioned table to partitioned
    table", "Partition keys modification is not allowed": googleapis/google-cloud-ruby#1646,
    basedosdados/sdk#1165; ALTER TABLE cannot change it either, dlt-hub/dlt#3571). Either way the
    table must be rebuilt: :func:`table_change_reasons` reports both;
  - Compute instance ``metadataStartupScript``: ``customdiff.ForceNewIf(... isGracefulMetadataStartupSwitch)``
    replaces the VM when the script changes; ``machineType`` updates in place but stops the VM
    (``allow_stopping_for_update``);
  - Compute disk ``size``: ``customdiff.ForceNewIfChange("size", IsDiskShrinkage)``: shrinking replaces it;
  - Data Transfer config ``params``: ``ParamsCustomizeDiffFunc`` (bigquerydatatransfer/
    resource_bigquery_data_transfer_config.go) replaces a ``google_cloud_storage`` or ``amazon_s3``
    transfer whose ``data_path_template``/``data_path`` or ``destination_table_name_template`` changes;
  - Subnetwork ``ipCidrRange``: ``ForceNewIfChange("ip_cidr_range", IsShrinkageIpCidr)``: a range
    that does not contain the old one replaces the subnet;
  - Composer ``config.nodeConfig.network/subnetwork``: ``forceNewIfNotComposer3CustomDiff`` (Composer 2 only).

  Not ported (rare here; ``pulumi preview --diff`` shows them): an instance's network IP change,
  a locked bucket retention policy, a secret's replication switching between auto and automatic.

Public API (the spec-evolution work reuses the table functions):

``replacement_reasons(type_, old_inputs, new_inputs) -> list[Reason] | None``
    why a changed resource would be replaced (empty: updated in place), or None when no rule is
    known for the type (then only ``pulumi preview --diff`` can tell).
``table_change_reasons(old_inputs, new_inputs) -> list[Reason]``
    the BigQuery table rules alone (schema JSON text or list, partitioning, clustering).
``schema_change_in_place(old_fields, new_fields) -> (bool, list[str])``
    the provider's schema comparison, with the reasons a change is not in place.
``changed_paths(old, new) -> list[str]``  dotted input paths that differ (``a.b[0].c``).
``update_notes(type_, paths) -> list[str]``  side effects of in-place updates (VM restarts).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

RULES_FILE = Path(__file__).with_name("provider_rules.json")
TABLE = "gcp:bigquery/table:Table"
TF_TABLE = "google/services/bigquery/resource_bigquery_table.go"
TF_INSTANCE = "google/services/compute/resource_compute_instance.go"
TF_DISK = "google/services/compute/resource_compute_disk.go"
TF_SUBNET = "google/services/compute/resource_compute_subnetwork.go"
TF_COMPOSER = "google/services/composer/resource_composer_environment.go"
TF_TRANSFER = "google/services/bigquerydatatransfer/resource_bigquery_data_transfer_config.go"
#: data source -> params whose change replaces the transfer config (ParamsCustomizeDiffFunc)
_TRANSFER_PARAMS = {
    "google_cloud_storage": ("data_path_template", "destination_table_name_template"),
    "amazon_s3": ("data_path", "destination_table_name_template"),
}
BQ_PARTITIONING = "BigQuery refuses partitioning changes in place (googleapis/google-cloud-ruby#1646, basedosdados/sdk#1165)"

#: providers whose every input is immutable (a change always replaces)
_ALWAYS_REPLACE = {
    # terraform-provider-random resource_password.go: every attribute has a RequiresReplace plan modifier
    "random:index/randomPassword:RandomPassword": "terraform-provider-random: every random_password attribute RequiresReplace",
    "random:index/randomString:RandomString": "terraform-provider-random: every random_string attribute RequiresReplace",
}


@dataclass(frozen=True)
class Reason:
    path: str  # the input path whose change forces a new resource
    why: str
    source: str

    def as_dict(self) -> dict:
        return {"path": self.path, "why": self.why, "source": self.source}


@lru_cache(maxsize=1)
def provider_rules() -> dict:
    return json.loads(RULES_FILE.read_text(encoding="utf-8"))


def rules_for(type_: str) -> Optional[list]:
    rules = provider_rules()["rules"]
    if type_ in rules:
        return rules[type_]
    if type_.startswith("gcp:") and type_.rsplit(":", 1)[-1].lower().endswith("iammember"):
        return rules["*IAMMember"]  # every *IAMMember resource is built from one provider schema
    return None


# --------------------------------------------------------------------------- paths


def changed_paths(old: Any, new: Any, path: str = "") -> list:
    """Dotted paths (``a.b[0].c``) where two input values differ; lists element by element."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += changed_paths(old.get(k), new.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old and all(isinstance(x, dict) for x in old + new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += changed_paths(a, b, f"{path}[{i}]")
        return out
    return [] if _same(old, new) else [path or "<root>"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def _strip_index(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def _count(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def _get(d: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


# --------------------------------------------------------------------------- BigQuery tables


def _fields(schema: Any) -> Any:
    if isinstance(schema, str):
        try:
            return json.loads(schema)
        except ValueError:
            return None
    return schema


_TYPE_ALIASES = ({"INTEGER", "INT64"}, {"FLOAT", "FLOAT64"}, {"BOOLEAN", "BOOL"})


def _type_eq(a: str, b: str) -> bool:
    a, b = a.upper(), b.upper()
    return a == b or any(a in s and b in s for s in _TYPE_ALIASES)


def _mode(m: Any) -> str:
    return "NULLABLE" if m is None else str(m).upper()


def schema_change_in_place(old_fields: Any, new_fields: Any, *, external: bool = False, _top: bool = True) -> tuple:
    """Whether BigQuery/the provider can apply a schema change in place, and why not.

    A port of ``resourceBigQueryTableSchemaIsChangeable`` (row access policies assumed absent)."""
    old_fields, new_fields = _fields(old_fields) or [], _fields(new_fields) or []
    if not isinstance(old_fields, list) or not isinstance(new_fields, list):
        return False, ["the schema is not a list of fields"]
    old = {f.get("name"): f for f in old_fields if isinstance(f, dict)}
    new = {f.get("name"): f for f in new_fields if isinstance(f, dict)}
    reasons = []
    for name, f in new.items():
        if name not in old and _mode(f.get("mode")) == "REQUIRED":
            reasons.append(f"new column {name} is REQUIRED (existing rows have no value)")
    dropped, same = [], 0
    for name, f in old.items():
        if name not in new:
            if not _top or external:
                reasons.append(f"column {name} removed from a {'nested record' if not _top else 'external table'}")
            dropped.append(name)
            continue
        g = new[name]
        if f.get("type") and g.get("type") and not _type_eq(f["type"], g["type"]):
            reasons.append(f"column {name} changes type {f['type']} -> {g['type']}")
        om, nm = _mode(f.get("mode")), _mode(g.get("mode"))
        if om != nm and not (om == "REQUIRED" and nm == "NULLABLE"):
            reasons.append(f"column {name} changes mode {om} -> {nm}")
        if "fields" in f or "fields" in g:
            ok, why = schema_change_in_place(f.get("fields"), g.get("fields"), external=external, _top=False)
            reasons += [f"{name}.{w}" for w in why]
        same += 1
    added = len(new) - same
    if _top and dropped and added:
        reasons.append(f"columns dropped ({', '.join(dropped)}) while others are added: read as a rename, which BigQuery cannot do in place")
    return not reasons, reasons


def _partition_spec(inputs: dict) -> Optional[tuple]:
    tp, rp = inputs.get("timePartitioning"), inputs.get("rangePartitioning")
    if tp:
        return ("time", str(tp.get("type", "")).upper(), tp.get("field"))
    if rp:
        return ("range", json.dumps(rp.get("range"), sort_keys=True), rp.get("field"))
    return None


def table_change_reasons(old_inputs: dict, new_inputs: dict) -> list:
    """Why a BigQuery table change cannot be made in place (empty list: it can)."""
    reasons = []
    ok, why = schema_change_in_place(old_inputs.get("schema"), new_inputs.get("schema"),
                                     external=bool(new_inputs.get("externalDataConfiguration")))
    if not ok:
        reasons += [Reason("schema", w, f"{TF_TABLE}: resourceBigQueryTableSchemaIsChangeable") for w in why]
    old_p, new_p = _partition_spec(old_inputs), _partition_spec(new_inputs)
    if old_p != new_p:
        if old_p is None:
            reasons.append(Reason("timePartitioning" if new_p[0] == "time" else "rangePartitioning",
                                  "adds partitioning to an unpartitioned table", BQ_PARTITIONING))
        elif new_p is None:
            reasons.append(Reason("timePartitioning" if old_p[0] == "time" else "rangePartitioning",
                                  "removes the table's partitioning", BQ_PARTITIONING))
        else:
            if old_p[2] != new_p[2]:
                path = f"{'timePartitioning' if new_p[0] == 'time' else 'rangePartitioning'}.field"
                rule = next((r for r in provider_rules()["rules"][TABLE] if r["path"] == path), None)
                reasons.append(Reason(path, f"partitioning column {old_p[2] or '(ingestion time)'} -> {new_p[2] or '(ingestion time)'}",
                                      f"{provider_rules()['source']} {rule['source'] if rule else TF_TABLE} ForceNew"))
            if old_p[:2] != new_p[:2]:
                what = (f"partitioning granularity {old_p[1]} -> {new_p[1]}" if old_p[0] == new_p[0] == "time"
                        else f"partitioning {old_p[0]} -> {new_p[0]}" if old_p[0] != new_p[0] else "integer range of the partitioning")
                reasons.append(Reason("timePartitioning.type" if new_p[0] == "time" else "rangePartitioning.range", what, BQ_PARTITIONING))
    return reasons


# --------------------------------------------------------------------------- all types


def replacement_reasons(type_: str, old_inputs: dict, new_inputs: dict) -> Optional[list]:
    """Why changing ``old_inputs`` into ``new_inputs`` replaces the resource; None if no rule is known."""
    paths = changed_paths(old_inputs, new_inputs)
    if type_ in _ALWAYS_REPLACE:
        return [Reason(p, "immutable input", _ALWAYS_REPLACE[type_]) for p in paths]
    rules = rules_for(type_)
    if rules is None:
        return None
    src = provider_rules()["source"]
    reasons: list = []
    flat = [(_strip_index(p), p) for p in paths]
    for rule in rules:
        rp = rule["path"]
        if rule["list"]:
            if _count(_get(old_inputs, rp)) != _count(_get(new_inputs, rp)):
                reasons.append(Reason(rp, "items added or removed", f"{src} {rule['source']} ForceNew"))
            continue
        hits = [p for s, p in flat if s == rp or s.startswith(rp + ".")]
        for p in hits:
            reasons.append(Reason(p, "immutable input", f"{src} {rule['source']} ForceNew"))
    if type_ == TABLE:
        reasons = [r for r in reasons if not r.path.startswith("timePartitioning.field")]  # reported with its context below
        reasons += table_change_reasons(old_inputs, new_inputs)
    elif type_ == "gcp:compute/instance:Instance" and any(p == "metadataStartupScript" for p in paths):
        if old_inputs.get("metadataStartupScript") and new_inputs.get("metadataStartupScript"):
            reasons.append(Reason("metadataStartupScript", "the startup script changes",
                                  f"{TF_INSTANCE}: customdiff.ForceNewIf(metadata_startup_script)"))
    elif type_ == "gcp:bigquery/dataTransferConfig:DataTransferConfig":
        for param in _TRANSFER_PARAMS.get(new_inputs.get("dataSourceId"), ()):
            a, b = (old_inputs.get("params") or {}).get(param), (new_inputs.get("params") or {}).get(param)
            if a is not None and b is not None and a != b:
                reasons.append(Reason(f"params.{param}", f"a {new_inputs.get('dataSourceId')} transfer's {param} changes",
                                      f"{TF_TRANSFER}: ParamsCustomizeDiffFunc"))
    elif type_ == "gcp:compute/subnetwork:Subnetwork" and "ipCidrRange" in paths:
        import ipaddress

        try:
            old_net, new_net = ipaddress.ip_network(old_inputs["ipCidrRange"]), ipaddress.ip_network(new_inputs["ipCidrRange"])
        except (KeyError, TypeError, ValueError):
            old_net = new_net = None
        if old_net is not None and not (old_net.version == new_net.version and old_net.subnet_of(new_net)):
            reasons.append(Reason("ipCidrRange", f"{old_net} -> {new_net} is not an expansion", f"{TF_SUBNET}: ForceNewIfChange(ip_cidr_range, IsShrinkageIpCidr)"))
    elif type_ == "gcp:composer/environment:Environment":
        image = str(_get(new_inputs, "config.softwareConfig.imageVersion") or "")
        if not image.startswith("composer-3"):
            for key in ("config.nodeConfig.network", "config.nodeConfig.subnetwork"):
                if _get(old_inputs, key) != _get(new_inputs, key):
                    reasons.append(Reason(key, "the network of a Composer 2 environment changes", f"{TF_COMPOSER}: forceNewIfNotComposer3CustomDiff"))
    elif type_ == "gcp:compute/disk:Disk" and "size" in paths:
        if float(new_inputs.get("size") or 0) < float(old_inputs.get("size") or 0):
            reasons.append(Reason("size", f"the disk shrinks {old_inputs.get('size'):g} -> {new_inputs.get('size'):g} GB",
                                  f"{TF_DISK}: customdiff.ForceNewIfChange(size, IsDiskShrinkage)"))
    seen, out = set(), []
    for r in reasons:
        if (r.path, r.why) not in seen:
            seen.add((r.path, r.why))
            out.append(r)
    return out


def update_notes(type_: str, paths: list) -> list:
    """What an in-place update does besides changing the value."""
    notes = []
    if type_ == "gcp:compute/instance:Instance" and any(_strip_index(p) in ("machineType", "minCpuPlatform", "serviceAccount.email") for p in paths):
        notes.append("the VM is stopped and started to apply it (allow_stopping_for_update)")
    return notes
