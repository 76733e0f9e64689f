"""Offline CrossGuard: run the real policy pack (``policy/``) over a mock plan, as the engine would.

    python -m stacks policy --stack dev [--tables-dir D] [--config FILE] [--format text|markdown|json]
    python -m stacks policy --plan plan.json [--stack dev] ...      (a ``plan --json`` output)

The pack runs in its own virtualenv (``policy/venv``, made by ``make setup``: pulumi-policy pins
protobuf 5.29, the program's Google clients need protobuf 6), started exactly as the Pulumi CLI
starts a Python pack (``python -u -m pulumi.policy <engine> <pack dir>``, which prints its gRPC port).
This module then plays the engine's part over that gRPC API (``pulumi.runtime.proto.analyzer``):
``GetAnalyzerInfo``, ``Configure`` with the config reconciled like the engine does (schema defaults,
then ``all``, then per-policy values; ported from pulumi/pulumi ``pkg/resource/analyzer/config.go``),
one ``Analyze`` per resource (its inputs; secrets sent with Pulumi's secret signature, which the SDK
unwraps) and one ``AnalyzeStack`` with every resource. So the policies that run here are the very
objects ``pulumi preview --policy-pack policy`` runs; nothing is re-implemented.

Differences from a real preview, by construction: inputs come from Pulumi mocks (computed
outputs are the mocks' guesses); ``AnalyzeStack`` gets the recorded outputs with ``--stack`` and
only inputs with ``--plan`` (a plan file has no outputs: stack policies that need them report
"not applicable").

Exit status: 0 no mandatory violation (advisory ones are listed), 1 a mandatory violation,
2 bad arguments, config or pack set-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

ROOT = Path(__file__).resolve().parents[1]
PACK_DIR = ROOT / "policy"
CONFIG_DIR = PACK_DIR / "config"
PROJECT = "flexyboots"
#: Pulumi's secret signature (sdk/go/common/resource/properties.go), unwrapped by the policy SDK
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
LEVELS = ("advisory", "mandatory", "disabled", "remediate")  # the proto enum's order


class PolicyError(Exception):
    """The pack cannot run (no venv, bad config, pack start-up failure): exit status 2."""


@dataclass
class PlanResource:
    """One resource as the engine shows it to an analyzer."""

    type: str
    name: str
    urn: str
    parent_urn: str = ""
    inputs: dict = field(default_factory=dict)
    secret_paths: set = field(default_factory=set)
    protect: bool = False
    outputs: Optional[dict] = None
    dependencies: list = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.type}::{self.name}"


@dataclass
class Violation:
    policy: str
    level: str  # advisory | mandatory
    resource: str  # "type::name", or "" for a stack-level finding without a resource
    message: str

    def as_dict(self) -> dict:
        return {"policy": self.policy, "level": self.level, "resource": self.resource, "message": self.message}


@dataclass
class PolicyReport:
    pack: str
    version: str
    stack: str
    resources: int
    violations: list
    not_applicable: dict  # policy -> reason
    levels: dict  # policy -> enforcement level used

    @property
    def mandatory(self) -> list:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def advisory(self) -> list:
        return [v for v in self.violations if v.level != "mandatory"]

    def by_policy(self, policy: str) -> list:
        return [v for v in self.violations if v.policy == policy]


# --------------------------------------------------------------------------- plan -> resources


def _urn(stack: str, type_chain: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_chain}::{name}"


def resources_from_recording(resources: Iterable[Any]) -> list:
    """``RecordedResource``s of a mock run (plaintext inputs, secret paths, outputs)."""
    out = []
    for r in resources:
        out.append(PlanResource(
            type=r.type, name=r.name, urn=r.urn, parent_urn=r.parent or "", inputs=r.inputs,
            secret_paths=set(r.secret_paths) | set(getattr(r, "additional_secret_outputs", []) or []),
            protect=r.protect, outputs=r.outputs if r.custom else dict(r.inputs), dependencies=list(r.dependencies),
        ))
    return out


def resources_from_json(items: list, stack: str, source: str = "plan") -> list:
    """Items of ``python -m stacks plan --json`` ({type, name, parent, inputs[, protect]})."""
    if not isinstance(items, list):
        raise PolicyError(f"{source}: expected a JSON list of {{type, name, parent, inputs}} (python -m stacks plan --json)")
    by_addr: dict = {}
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("type"), str) or not isinstance(it.get("name"), str):
            raise PolicyError(f"{source}: item {i}: expected an object with string 'type' and 'name'")
        if not isinstance(it.get("inputs", {}), dict):
            raise PolicyError(f"{source}: item {i} ({it['type']}::{it['name']}): 'inputs' must be an object")
        parent = by_addr.get(it.get("parent") or "")
        chain = f"{parent[1]}${it['type']}" if parent else it["type"]
        urn = _urn(stack, chain, it["name"])
        by_addr[f"{it['type']}::{it['name']}"] = (urn, chain)
        out.append(PlanResource(type=it["type"], name=it["name"], urn=urn, parent_urn=parent[0] if parent else "",
                                inputs=it.get("inputs") or {}, protect=bool(it.get("protect", False))))
    return out


def _mark_secrets(value: Any, paths: set, path: str = "") -> Any:
    """Wrap the values at secret paths in Pulumi's secret signature (what the engine sends)."""
    if path and path in paths:
        return {SIG_KEY: SECRET_SIG, "value": value}
    if isinstance(value, dict):
        return {k: _mark_secrets(v, paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v, paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------- config


def parse_pack_config(doc: Any, source: str) -> dict:
    """``--policy-pack-config`` JSON -> {policy: (level or None, properties)}, as the CLI parses it."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: expected a JSON object of policy name -> enforcement level or settings")
    out = {}
    for k, v in doc.items():
        if isinstance(v, str):
            level, props = v, {}
        elif isinstance(v, dict):
            props = dict(v)
            level = props.pop("enforcementLevel", None)
        else:
            raise PolicyError(f"{source}: {k}: {v!r} is not a valid value; must be a string or object")
        if level is not None and level not in LEVELS:
            raise PolicyError(f"{source}: {k}: {level!r} is not a valid enforcement level; expected one of {', '.join(LEVELS)}")
        if level is None and not props:
            continue
        out[k] = (level, props)
    return out


_JSON_TYPES = {"string": str, "boolean": bool, "array": list, "object": dict, "integer": int, "number": (int, float)}


def reconcile_config(policies: list, given: dict, source: str = "config") -> dict:
    """Schema defaults, then ``all``, then per-policy settings (the engine's ReconcilePolicyPackConfig).

    ``policies``: [{name, level, schema: {properties, required}}]; returns {policy: (level, props)}."""
    names = {p["name"] for p in policies}
    for k in given:
        if k != "all" and k not in names:
            raise PolicyError(f"{source}: {k}: no such policy in the pack; expected one of: {', '.join(sorted(names))}")
    result = {}
    for p in policies:
        props = {k: s["default"] for k, s in (p["schema"].get("properties") or {}).items() if "default" in s}
        result[p["name"]] = [p["level"], props]
    if "all" in given and given["all"][0]:
        for v in result.values():
            v[0] = given["all"][0]
    for k, (level, props) in given.items():
        if k == "all":
            continue
        if level:
            result[k][0] = level
        result[k][1].update(props)
    for p in policies:
        schema = p["schema"].get("properties") or {}
        props = result[p["name"]][1]
        for req in p["schema"].get("required") or []:
            if req not in props:
                raise PolicyError(f"{source}: {p['name']}.{req}: required")
        for k, v in props.items():
            if k not in schema:
                raise PolicyError(f"{source}: {p['name']}.{k}: unknown setting; expected one of: {', '.join(sorted(schema)) or 'none'}")
            want = schema[k].get("type")
            py = _JSON_TYPES.get(want)
            if py and (not isinstance(v, py) or (want in ("integer", "number") and isinstance(v, bool))):
                raise PolicyError(f"{source}: {p['name']}.{k}: expected {want}, got {json.dumps(v)}")
            item = (schema[k].get("items") or {}).get("type")
            if want == "array" and item in _JSON_TYPES and not all(isinstance(x, _JSON_TYPES[item]) for x in v):
                raise PolicyError(f"{source}: {p['name']}.{k}: expected an array of {item}s, got {json.dumps(v)}")
    return {k: (lvl, props) for k, (lvl, props) in result.items()}


def stack_config_file(stack: str) -> Optional[Path]:
    p = CONFIG_DIR / f"{stack}.json"
    return p if p.is_file() else None


def read_config_file(path: Optional[Path]) -> dict:
    if path is None:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8") or "null")
    except OSError as e:
        raise PolicyError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise PolicyError(f"{path}: is not valid JSON: {e}") from None
    return parse_pack_config(doc, str(path))


# --------------------------------------------------------------------------- the pack process


def pack_python(pack_dir: Path = PACK_DIR) -> Path:
    return pack_dir / "venv" / "bin" / "python"


class PolicyPack:
    """The policy pack running in its own process; ``with PolicyPack() as pack: pack.run(...)``."""

    def __init__(self, pack_dir: Path = PACK_DIR, python: Optional[Path] = None, timeout: float = 60.0):
        import grpc
        from google.protobuf import empty_pb2
        from pulumi.runtime.proto import analyzer_pb2_grpc

        python = Path(python or pack_python(pack_dir))
        if not python.exists():
            raise PolicyError(f"{python} is missing: the policy pack runs in its own virtualenv; run `make setup`")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        self._proc = subprocess.Popen(
            [str(python), "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(pack_dir)],
            cwd=str(pack_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        port = self._proc.stdout.readline().strip()
        if not port.isdigit():
            self._proc.kill()
            err = self._proc.stderr.read()
            raise PolicyError(f"policy pack {pack_dir} did not start: {err.strip()[-2000:] or port or 'no output'}")
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 400 << 20),
                                                                           ("grpc.max_send_message_length", 400 << 20)])
        grpc.channel_ready_future(self._channel).result(timeout=timeout)
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        info = self._stub.GetAnalyzerInfo(empty_pb2.Empty())
        # the Python SDK always answers 0.0.1; the CLI takes the version from PulumiPolicy.yaml
        import re

        m = re.search(r"^version:\s*(\S+)", (pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8"), re.M)
        self.name, self.version = info.name, m.group(1) if m else info.version
        from google.protobuf import json_format

        self.policies = [
            {
                "name": p.name,
                "description": p.description,
                "level": LEVELS[p.enforcementLevel],
                "type": "stack" if p.policy_type == 2 else "resource",
                "schema": json_format.MessageToDict(p.configSchema) if p.HasField("configSchema") else {},
            }
            for p in info.policies
        ]

    def __enter__(self) -> "PolicyPack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._channel.close()
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            stream.close()

    def defaults(self, policy: str) -> dict:
        """A policy's config defaults, from its schema (what the engine fills in)."""
        p = next(p for p in self.policies if p["name"] == policy)
        return {k: s["default"] for k, s in (p["schema"].get("properties") or {}).items() if "default" in s}

    def run(self, resources: list, config: Optional[dict] = None, stack: str = "", config_source: str = "config") -> PolicyReport:
        """Configure the pack, analyze every resource, then the stack; collect the diagnostics."""
        from google.protobuf import struct_pb2
        from pulumi.runtime.proto import analyzer_pb2 as pb

        reconciled = reconcile_config(self.policies, config or {}, config_source)
        req = pb.ConfigureAnalyzerRequest()
        for name, (level, props) in reconciled.items():
            pc = pb.PolicyConfig(enforcementLevel=LEVELS.index(level))
            pc.properties.update(props)
            req.policyConfig[name].CopyFrom(pc)
        self._stub.Configure(req)

        by_urn = {r.urn: r for r in resources}
        diagnostics, not_applicable = [], {}

        def struct(value: dict) -> struct_pb2.Struct:
            s = struct_pb2.Struct()
            s.update(json.loads(json.dumps(value, default=str)))
            return s

        def options(r: PlanResource) -> pb.AnalyzerResourceOptions:
            return pb.AnalyzerResourceOptions(protect=r.protect, parent=r.parent_urn,
                                              additionalSecretOutputs=sorted(p for p in r.secret_paths if "." not in p and "[" not in p))

        for r in resources:
            resp = self._stub.Analyze(pb.AnalyzeRequest(type=r.type, name=r.name, urn=r.urn, options=options(r),
                                                        properties=struct(_mark_secrets(r.inputs, r.secret_paths))))
            diagnostics += [(d, r) for d in resp.diagnostics]
            not_applicable.update({n.policy_name: n.reason for n in resp.not_applicable})
        stack_req = pb.AnalyzeStackRequest(resources=[
            pb.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, options=options(r), parent=r.parent_urn,
                                dependencies=[d for d in r.dependencies if d in by_urn],
                                properties=struct(_mark_secrets(r.outputs if r.outputs is not None else r.inputs, r.secret_paths)))
            for r in resources
        ])
        resp = self._stub.AnalyzeStack(stack_req)
        diagnostics += [(d, by_urn.get(d.urn)) for d in resp.diagnostics]
        not_applicable.update({n.policy_name: n.reason for n in resp.not_applicable})

        violations = []
        for d, r in diagnostics:
            message = d.message
            if d.description and message.startswith(d.description):
                message = message[len(d.description):].lstrip("\n")
            violations.append(Violation(policy=d.policyName, level=LEVELS[d.enforcementLevel],
                                        resource=r.address if r else "", message=message or d.description))
        violations.sort(key=lambda v: (v.level != "mandatory", v.policy, v.resource, v.message))
        return PolicyReport(pack=self.name, version=self.version, stack=stack, resources=len(resources),
                            violations=violations, not_applicable=not_applicable,
                            levels={k: lvl for k, (lvl, _) in reconciled.items()})


# --------------------------------------------------------------------------- rendering


def render_text(rep: PolicyReport) -> str:
    head = (f"policy pack {rep.pack}@{rep.version} over {rep.resources} resources of stack {rep.stack or '?'}: "
            f"{len(rep.mandatory)} mandatory, {len(rep.advisory)} advisory violation(s)")
    lines = [head]
    for v in rep.violations:
        lines.append(f"  [{v.level}] {v.policy}: {v.resource or '(stack)'}: {v.message}")
    for p, reason in sorted(rep.not_applicable.items()):
        lines.append(f"  [not applicable] {p}: {reason}")
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_markdown(rep: PolicyReport) -> str:
    icon = ":x:" if rep.mandatory else (":warning:" if rep.advisory else ":white_check_mark:")
    lines = [f"#### Policy pack `{rep.pack}` on `{rep.stack or '?'}`: {icon} "
             f"{len(rep.mandatory)} mandatory, {len(rep.advisory)} advisory ({rep.resources} resources)"]
    if rep.violations:
        lines += ["", "| level | policy | resource | message |", "| --- | --- | --- | --- |"]
        lines += [f"| {v.level} | `{v.policy}` | `{_md_escape(v.resource) or '(stack)'}` | {_md_escape(v.message)} |" for v in rep.violations]
    return "\n".join(lines) + "\n"


def render_json(rep: PolicyReport) -> str:
    return json.dumps({
        "pack": rep.pack, "version": rep.version, "stack": rep.stack, "resources": rep.resources,
        "mandatory": len(rep.mandatory), "advisory": len(rep.advisory),
        "violations": [v.as_dict() for v in rep.violations],
        "not_applicable": rep.not_applicable, "levels": rep.levels,
    }, indent=2, sort_keys=True) + "\n"


RENDER = {"text": render_text, "markdown": render_markdown, "json": render_json}


# --------------------------------------------------------------------------- CLI


def add_parser(sub) -> None:
    p = sub.add_parser("policy", help="run the CrossGuard policy pack (policy/) offline over a stack's mock plan or a plan file")
    src = p.add_mutually_exclusive_group()
    p.add_argument("--stack", help="stack name: plans stacks/Pulumi.<stack>.yaml and uses policy/config/<stack>.json")
    src.add_argument("--plan", help="a `python -m stacks plan --json` output to check instead of planning")
    p.add_argument("--tables-dir", help="table specs folder (with --stack)")
    p.add_argument("--config", help="policy pack config JSON (default: policy/config/<stack>.json when it exists)")
    p.add_argument("--format", choices=sorted(RENDER), default="text")
    p.add_argument("--stacks-dir", default=str(ROOT / "stacks"), help=argparse.SUPPRESS)
    p.set_defaults(func=main)


def check(stack: Optional[str], plan_file: Optional[str] = None, tables_dir: Optional[str] = None,
          config_file: Optional[str] = None, stacks_dir: Optional[Path] = None) -> PolicyReport:
    """Plan (or read) a stack and run the pack over it."""
    if plan_file:
        try:
            items = json.loads(Path(plan_file).read_text(encoding="utf-8"))
        except OSError as e:
            raise PolicyError(f"{plan_file}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise PolicyError(f"{plan_file}: is not valid JSON: {e}") from None
        resources = resources_from_json(items, stack or "plan", plan_file)
    else:
        from stacks.plan import STACKS_DIR, run_stack

        plan = run_stack(stack, Path(stacks_dir or STACKS_DIR), tables_dir=tables_dir)
        resources = resources_from_recording(plan.resources)
    cfg_path = Path(config_file) if config_file else (stack_config_file(stack) if stack else None)
    with PolicyPack() as pack:
        return pack.run(resources, read_config_file(cfg_path), stack=stack or "", config_source=str(cfg_path or "config"))


def main(args: argparse.Namespace) -> int:
    from components.common import ComponentArgsError
    from pipeline_sql.spec import SpecError
    from stacks.config import StackConfigError

    if not args.stack and not args.plan:
        print("error: give --stack S (plan it now) or --plan FILE (a `plan --json` output)", file=sys.stderr)
        return 2
    try:
        rep = check(args.stack, args.plan, args.tables_dir, args.config, Path(args.stacks_dir))
    except (PolicyError, StackConfigError, SpecError, ComponentArgsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(RENDER[args.format](rep))
    return 1 if rep.mandatory else 0
