"""Offline plan: run the real program (``stacks.platform.main``) under Pulumi mocks with a stack's
config and print what it would create. No CLI, plugins, network or credentials needed.

    python -m stacks plan --stack dev              resource tree + counts per type
    python -m stacks plan --stack dev --json       [{"type", "name", "parent", "inputs"[, "protect"]}, ...]
    python -m stacks plan --stack dev --inventory  expected-values YAML for tests/stacks/expected/
    python -m stacks plan --stack dev --format mermaid   the components and their resources, and
                                                   who may read or write each dataset and bucket
    python -m stacks plan --stack local            the local composition: its Docker resources
    python -m stacks dags --stack prod --out DIR   the Airflow DAG files exactly as the stack uploads
                                                   them to Composer (the DAG file + manifests)

Images by digest show whole (never cut): the tree's ``docker.RemoteImage`` names, and the
``service_images`` output one image a line (``service_images.<service>.<role>: ref@sha256:...``).

Deterministic: the same code and config print the same bytes (children sorted by type and
name, keys sorted, no timestamps; secrets and ``secure:`` config print as ``[secret]``).
Exit status: 0 ok, 2 unknown stack or invalid config/spec/component args.

The same CLI carries ``diff`` (:mod:`stacks.diff`) and ``policy`` (:mod:`stacks.policy`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from stacks.config import StackConfigError, parse_config, read_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
SECRET = "[secret]"

#: The inputs worth a glance per type (the tree shows these; the inventory records them).
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "gcp:projects/service:Service": ("service",),
    "gcp:compute/network:Network": ("autoCreateSubnetworks",),
    "gcp:compute/subnetwork:Subnetwork": ("ipCidrRange", "region", "privateIpGoogleAccess"),
    "gcp:compute/routerNat:RouterNat": ("natIpAllocateOption", "sourceSubnetworkIpRangesToNat"),
    "gcp:compute/firewall:Firewall": ("direction", "sourceRanges", "allows", "targetTags"),
    "gcp:compute/instance:Instance": ("machineType", "zone", "networkInterfaces", "tags"),
    "gcp:compute/disk:Disk": ("size", "type", "zone"),
    "gcp:storage/bucket:Bucket": ("name", "location", "uniformBucketLevelAccess", "publicAccessPrevention", "versioning", "forceDestroy"),
    "gcp:storage/bucketObject:BucketObject": ("bucket", "name", "contentType"),
    "gcp:bigquery/dataset:Dataset": ("datasetId", "location", "defaultTableExpirationMs", "deletionPolicy"),
    "gcp:bigquery/table:Table": ("datasetId", "tableId", "timePartitioning", "clusterings", "deletionProtection"),
    "gcp:bigquery/dataTransferConfig:DataTransferConfig": (
        "dataSourceId", "location", "schedule", "scheduleOptions", "serviceAccountName", "notificationPubsubTopic", "emailPreferences",
    ),
    "gcp:composer/environment:Environment": ("name", "region", "config.softwareConfig.imageVersion", "config.workloadsConfig", "config.environmentSize"),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:pubsub/topic:Topic": ("name",),
    "gcp:projects/iAMCustomRole:IAMCustomRole": ("roleId", "permissions"),
    "gcp:secretmanager/secret:Secret": ("secretId",),
    "gcp:monitoring/notificationChannel:NotificationChannel": ("type", "labels"),
    "gcp:monitoring/alertPolicy:AlertPolicy": ("displayName", "conditions", "alertStrategy"),
    "docker:index/remoteImage:RemoteImage": ("name", "keepLocally"),
    "docker:index/container:Container": ("name", "ports", "volumes", "wait"),
    "docker:index/volume:Volume": ("name",),
    "docker:index/network:Network": ("name",),
}
_IAM_KEYS = ("role", "member", "datasetId", "bucket", "topic", "secretId", "serviceAccountId")


@dataclass
class Plan:
    stack: str
    project: str
    resources: list  # RecordedResource, in tree order
    parents: dict  # urn -> display address of the parent
    stack_urn: str
    exports: dict
    tables_dir: Optional[str] = None

    def waits_for(self, resource) -> set:
        """The URNs ``resource`` is created after (components.testing.dependency_closure)."""
        if not hasattr(self, "_waits_for"):
            from components.testing import dependency_closure

            self._waits_for = dependency_closure(self.resources)
        return self._waits_for(resource)


def _mocks(project: str):
    from components.testing import Mocks

    return Mocks(project=project)


def run_stack(
    stack: str, stacks_dir: Path = STACKS_DIR, overrides: Optional[dict] = None, tables_dir: Optional[str] = None
) -> Plan:
    """Validate the stack's config, run the program under mocks, return the recording.

    ``overrides`` replaces top-level config keys (the benchmark points the tables folder elsewhere)."""
    from components.testing import run_program
    from stacks import platform

    raw, secret_keys = read_stack_file(stack, str(stacks_dir))
    raw = {**raw, **(overrides or {})}
    if tables_dir is not None:
        pipelines = raw.get("flexyboots:pipelines") or {}
        if isinstance(pipelines, str):
            pipelines = json.loads(pipelines)
        path = Path(tables_dir)
        raw["flexyboots:pipelines"] = {**pipelines, "tables_dir": str(path if path.is_absolute() else Path.cwd() / path)}
    cfg = parse_config(raw, stack)  # fail fast, before any resource exists

    rec = run_program(platform.main, config=raw, stack=stack, secret_keys=secret_keys, mocks=_mocks(cfg.project or "flexyboots-local"))
    addr = {r.urn: address(r) for r in rec.resources}
    addr[rec.stack_urn] = f"pulumi:pulumi:Stack::flexyboots-{stack}"
    ordered = _tree_order(rec.resources, rec.stack_urn)
    return Plan(
        stack=stack,
        project=cfg.project,
        resources=ordered,
        parents={r.urn: addr.get(r.parent, "") for r in ordered},
        stack_urn=rec.stack_urn,
        exports=rec.redacted_exports(),
        tables_dir=tables_dir,
    )


def address(r) -> str:
    return f"{r.type}::{r.name}"


def _tree_order(resources: list, root: str) -> list:
    kids: dict[str, list] = {}
    for r in resources:
        kids.setdefault(r.parent or root, []).append(r)
    out: list = []

    def walk(urn: str) -> None:
        for r in sorted(kids.get(urn, []), key=lambda x: (x.type, x.name)):
            out.append(r)
            walk(r.urn)

    walk(root)
    return out


def _get(d: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def key_inputs(r) -> dict:
    """The few inputs that say what a resource is (secrets redacted)."""
    inputs = r.redacted_inputs()
    keys = KEY_INPUTS.get(r.type)
    if keys is None and any(k in inputs for k in ("role", "member")):
        keys = _IAM_KEYS
    if keys is None:
        keys = tuple(k for k in sorted(inputs) if isinstance(inputs[k], (str, int, float, bool)) and k not in ("project", "labels"))[:4]
    out = {}
    for k in keys:
        v = _get(inputs, k)
        if v is not None and v != [] and v != {}:
            out[k] = v
    return out


def _short(v: Any, limit: int = 80) -> str:
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    if isinstance(v, str) and "@sha256:" in v:  # an image by digest: a cut digest says nothing
        return text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_digest(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_digest(v) for v in value.values())
    return isinstance(value, str) and "@sha256:" in value


def _output_lines(key: str, value: Any) -> list[str]:
    """``key: value``; a mapping holding images by digest (``service_images``) one leaf a line."""
    if isinstance(value, dict) and value and _has_digest(value):
        return [line for k in sorted(value) for line in _output_lines(f"{key}.{k}", value[k])]
    return [f"  {key}: {_short(value, 120)}"]


def counts(plan: Plan) -> dict[str, int]:
    c: dict[str, int] = {}
    for r in plan.resources:
        c[r.type] = c.get(r.type, 0) + 1
    return dict(sorted(c.items()))


def render_text(plan: Plan) -> str:
    where = f"project {plan.project}" if plan.project else "no GCP project (the workstation's Docker)"
    lines = [f"flexyboots plan: stack {plan.stack}, {where}: {len(plan.resources)} resources (offline, Pulumi mocks)"]
    depth = {plan.stack_urn: 0}
    lines.append(f"pulumi:pulumi:Stack flexyboots-{plan.stack}")
    for r in plan.resources:
        d = depth.get(r.parent or plan.stack_urn, 0) + 1
        depth[r.urn] = d
        ki = key_inputs(r)
        detail = " ".join(f"{k}={_short(v)}" for k, v in ki.items())
        flags = " [protected]" if r.protect else ""
        lines.append(f"{'  ' * d}{r.type} {r.name}{flags}" + (f"  {detail}" if detail else ""))
    lines.append("")
    lines.append("resources per type:")
    c = counts(plan)
    width = max((len(t) for t in c), default=0)
    for t, n in c.items():
        lines.append(f"  {t.ljust(width)}  {n}")
    lines.append(f"  {'total'.ljust(width)}  {len(plan.resources)}")
    if plan.exports:
        lines.append("")
        lines.append("outputs:")
        for k in sorted(plan.exports):
            lines += _output_lines(k, plan.exports[k])
    return "\n".join(lines) + "\n"


def plan_items(plan: Plan) -> list:
    """The plan as ``plan --json`` prints it: {type, name, parent, inputs} (+ ``protect: true``)."""
    items = []
    for r in plan.resources:
        item = {"type": r.type, "name": r.name, "parent": plan.parents.get(r.urn, ""), "inputs": r.redacted_inputs()}
        if r.protect:
            item["protect"] = True
        items.append(item)
    return items


def render_json(plan: Plan) -> str:
    return json.dumps(plan_items(plan), indent=2, sort_keys=True) + "\n"


def inventory(plan: Plan) -> dict:
    """Expected values (key inputs per resource) and exact counts per type."""
    values = {}
    for r in plan.resources:
        ki = key_inputs(r)
        if r.protect:
            ki["__protect"] = True
        values[address(r)] = ki
    return {"counts": counts(plan), "values": values}


_ROLE_WORDS = {
    "roles/bigquery.dataEditor": "edit",
    "roles/bigquery.dataViewer": "read",
    "roles/bigquery.metadataViewer": "metadata",
    "roles/storage.objectAdmin": "write files",
    "roles/storage.objectViewer": "read files",
    "roles/storage.objectCreator": "add files",
}


def render_mermaid(plan: Plan) -> str:
    """The platform as a Mermaid flowchart: one box per component (its resources counted by
    type; the table pipelines together), then the access matrix: every service account's
    dataset-, table- and bucket-level grants as labelled edges (edit, read, metadata, ...)."""
    from pipeline_sql.diagram import Diagram

    d = Diagram(direction="LR", classes={"account": "fill:#e8f4fd,stroke:#4a90d9", "data": "fill:#fff3cd,stroke:#b8860b"})
    by_urn = {r.urn: r for r in plan.resources}
    top: dict[str, str] = {}  # urn -> the top-level component's cluster id
    for r in plan.resources:
        parent = by_urn.get(r.parent)
        if parent is None:
            if r.type.startswith("flexyboots:"):
                cid = "pipelines" if r.type.endswith(":TablePipeline") else f"{r.type.split(':')[-1]}::{r.name}"
                title = "TablePipeline (one per table)" if cid == "pipelines" else f"{r.type.split(':')[-1]} {r.name}"
                d.cluster(cid, title)
                top[r.urn] = cid
            else:
                top[r.urn] = "stack"
        else:
            top[r.urn] = top[parent.urn]
    counts_by: dict[tuple[str, str], int] = {}
    tables = sorted(r.name for r in plan.resources if r.type.endswith(":TablePipeline") and r.parent not in by_urn)
    for r in plan.resources:
        if r.type.startswith("flexyboots:"):
            continue
        cid = top[r.urn]
        counts_by[(cid, r.type)] = counts_by.get((cid, r.type), 0) + 1
    if any(c == "stack" for c, _ in counts_by):
        d.cluster("stack", "stack-level resources")
    for (cid, typ), n in sorted(counts_by.items()):
        d.node(f"{cid}/{typ}", f"{_short_type(typ)} ×{n}", "box", cid)
    if tables:
        d.node("pipelines/tables", "tables: " + ", ".join(tables), "stadium", "pipelines")

    # the access matrix
    accounts = {}
    for r in plan.resources:
        if r.type == "gcp:serviceaccount/account:Account":
            accounts[str(r.inputs.get("accountId"))] = r
    datasets = {str(r.inputs.get("datasetId")) for r in plan.resources if r.type == "gcp:bigquery/dataset:Dataset"}
    d.cluster("access", "who may read or write what (dataset, table and bucket grants)")
    for r in plan.resources:
        i = r.inputs
        member, role = str(i.get("member", "")), str(i.get("role", ""))
        if not member.startswith("serviceAccount:") or role not in _ROLE_WORDS:
            continue
        if r.type == "gcp:bigquery/datasetIamMember:DatasetIamMember":
            target = f"dataset {i.get('datasetId')}"
        elif r.type == "gcp:bigquery/iamMember:IamMember":
            target = f"table {i.get('datasetId')}.{i.get('tableId')}"
        elif r.type == "gcp:storage/bucketIAMMember:BucketIAMMember":
            target = f"bucket {i.get('bucket')}"
        else:
            continue
        account = member.removeprefix("serviceAccount:").split("@")[0]
        d.node(f"sa/{account}", f"{account}", "round", "access", "account")
        d.node(f"data/{target}", target, "table" if not target.startswith("bucket") else "files", "access", "data")
        d.edge(f"sa/{account}", f"data/{target}", _ROLE_WORDS[role])
    for ds in sorted(datasets):
        d.node(f"data/dataset {ds}", f"dataset {ds}", "table", "access", "data")
    return d.to_mermaid()


def _short_type(typ: str) -> str:
    """``gcp:bigquery/dataTransferConfig:DataTransferConfig`` -> ``bigquery DataTransferConfig``."""
    pkg, mod, name = (typ.split(":") + ["", ""])[:3]
    return f"{mod.split('/')[0]} {name}" if pkg == "gcp" else f"{pkg} {name or mod}"


def regenerate_command(stack: str, tables_dir: Optional[str] = None) -> str:
    tables = f" --tables-dir {tables_dir}" if tables_dir else ""
    return f"python -m stacks plan --stack {stack}{tables} --inventory > tests/stacks/expected/{stack}.yaml"


def render_inventory(plan: Plan) -> str:
    import yaml

    header = (
        f"# Inventory of the {plan.stack} stack: exact resource counts per type, and key inputs that\n"
        f"# must appear in the plan. Generated; review the diff, then commit. Regenerate with:\n"
        f"#   {regenerate_command(plan.stack, plan.tables_dir)}\n"
    )
    return header + yaml.safe_dump(inventory(plan), sort_keys=True, default_flow_style=False, width=200)


def dag_files(plan: Plan) -> dict[str, str]:
    """The DAG folder's files the plan uploads (file name -> content), from the Orchestrator's
    ``BucketObject``s; empty when the stack has no Composer."""
    out = {}
    for r in plan.resources:
        if r.type == "gcp:storage/bucketObject:BucketObject" and r.parent_type == "flexyboots:orchestrator:Orchestrator":
            out[str(r.inputs["name"]).rsplit("/", 1)[-1]] = r.inputs["content"]
    return dict(sorted(out.items()))


def write_dags(plan: Plan, out_dir: Path) -> list[Path]:
    files = dag_files(plan)
    if not files:
        raise StackConfigError("flexyboots:composer.enabled", f"false in stack {plan.stack}: it uploads no DAG (its layers run as scheduled queries)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks", description="flexyboots stacks: offline tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="run a stack's program under Pulumi mocks and print what it creates")
    p.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON list of {type, name, parent, inputs}")
    fmt.add_argument("--inventory", action="store_true", help="print the expected-values YAML for tests/stacks/expected/")
    fmt.add_argument("--format", choices=("text", "json", "inventory", "mermaid"), default=None,
                     help="text (default), json (= --json), inventory (= --inventory), or mermaid: the components and the access matrix")
    p.add_argument("--tables-dir", help="read the table specs from this folder instead of flexyboots:pipelines.tables_dir")
    p.add_argument("--stacks-dir", default=str(STACKS_DIR), help=argparse.SUPPRESS)
    d = sub.add_parser("dags", help="write the Airflow DAG files the stack uploads to Composer")
    d.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    d.add_argument("--tables-dir", help="read the table specs from this folder instead of flexyboots:pipelines.tables_dir")
    d.add_argument("--out", required=True, help="folder to write the files to (created if missing)")
    d.add_argument("--stacks-dir", default=str(STACKS_DIR), help=argparse.SUPPRESS)
    from stacks import diff, policy

    diff.add_parser(sub)
    policy.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command not in ("plan", "dags"):
        return args.func(args)

    from components.common import ComponentArgsError
    from pipeline_sql.spec import SpecError

    try:
        plan = run_stack(args.stack, Path(args.stacks_dir), tables_dir=args.tables_dir)
        if args.command == "dags":
            for path in write_dags(plan, Path(args.out)):
                print(path)
            return 0
    except (StackConfigError, SpecError, ComponentArgsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fmt = args.format or ("json" if args.json else "inventory" if args.inventory else "text")
    out = {"json": render_json, "inventory": render_inventory, "mermaid": render_mermaid, "text": render_text}[fmt](plan)
    sys.stdout.write(out)
    return 0
