"""Shared Pulumi mock infrastructure: used by the component tests and by the plan CLI.

Stable API
==========

``run_program(program, *, config=None, project="flexyboots", stack="dev", secret_keys=None,
mocks=None) -> Recording``
    Runs ``program`` (a zero-argument callable that creates resources, may call
    ``pulumi.export``) under Pulumi mocks with ``preview=False`` (so every ``apply`` runs), waits
    until every RPC and every pending output has settled, and returns what was registered.
    ``config`` is a stack-config dict: keys with a ``:`` are used as given (``"gcp:project"``),
    bare keys get the project prefix (``"env"`` -> ``"flexyboots:env"``); non-string values are
    JSON-encoded (what ``Config.get_object`` expects). ``secret_keys`` lists config keys to treat
    as secret. Safe to call many times in one process: each run installs a fresh monitor, root
    stack, RPC manager and config. Exceptions raised by the program (or inside an ``apply``)
    propagate to the caller. ``mocks`` defaults to ``Mocks(project=<gcp:project or
    "flexyboots-test">)``.

``Recording``
    ``resources``   list[RecordedResource], registration order, without the root stack and
                    without provider resources (see ``providers``)
    ``providers``   list[RecordedResource] of ``pulumi:providers:*``
    ``stack_urn``   the root stack's URN (the parent of top-level resources)
    ``exports``     dict of resolved ``pulumi.export`` values (plaintext)
    ``secret_exports`` set of export names whose value is a Pulumi secret
    ``of_type(type_)`` / ``count_by_type()`` / ``get(name, type_=None)`` / ``children(parent)``
    ``redacted_exports()``  exports with secret values replaced by ``"[secret]"``
    ``waits_for(resource) -> set[str]``  the URNs a resource is created after: its recorded
                    ``dependencies`` and its parent's (a child is registered only once its
                    parent is, and the parent once its own dependencies are), followed
                    transitively; a dependency on a component counts as one on its descendants

``RecordedResource`` (one ``RegisterResource`` request)
    ``type``, ``name``, ``urn``, ``parent`` (URN, "" for the stack), ``custom``, ``id``,
    ``inputs`` (plain dict, camelCase keys, secrets UNWRAPPED to plaintext),
    ``secret_paths`` (set of dotted input paths whose value was a Pulumi secret, e.g.
    ``"secretData"``), ``additional_secret_outputs``, ``protect``, ``dependencies`` (URNs),
    ``replace_on_changes`` (input names), ``delete_before_replace``,
    ``outputs`` (state the mocks returned, plaintext), ``parent_name``, ``parent_type``,
    ``redacted_inputs()`` (secret paths and inputs named in ``additional_secret_outputs``
    replaced by ``"[secret]"``: use this for anything printed).

``Mocks(project="flexyboots-test", project_number="123456789012", region="europe-west1",
aws_account_id="123456789012")``
    ``new_resource``: id ``"<name>_id"`` (an S3 bucket's id is its bucket name, as in AWS);
    echoes the inputs and adds plausible computed outputs (``name``, ``selfLink``, service
    account ``email``/``member``/``uniqueId``, a service identity's agent ``email``/``member``
    (from ``components.service_agents``), a service account key's ``privateKey`` (base64 JSON),
    bucket ``url``, dataset ``datasetId``, secret ``name``, ``arn``s, random ``result``, access
    key ``secret``, docker ``RemoteImage`` ``imageId``/``repoDigest``, ``Volume``/``Network``
    ``name``). ``call``: answers pulumi-docker's ``getRegistryImage`` (``sha256Digest`` from
    ``registry_digest(name)``),
    ``gcp:organizations/getProject:getProject`` (number ``"123456789012"``),
    ``getClientConfig``, ``storage getProjectServiceAccount``, ``bigquery getDefaultServiceAccount``,
    ``aws getCallerIdentity`` / ``getRegion``; anything else echoes its args.

``RecordingMonitor(mocks)``
    A ``pulumi.runtime.mocks.MockMonitor`` that records every ``RegisterResource`` request as a
    ``RecordedResource`` (``monitor.records``) and, like the real engine, marks outputs named in
    ``additionalSecretOutputs`` as secret.

``registry_digest(reference) -> str``: the digest the mocks' registry answers for a reference
(the one it names, else ``sha256:`` + SHA-256 of the reference: deterministic, per tag).
``redact(value)``: replace every Pulumi-secret-wrapped value inside ``value`` with ``"[secret]"``.
``SECRET = "[secret]"``.

The security rules are not here: they are the CrossGuard policy pack in ``policy/`` (one
definition each), run over a ``Recording`` by ``stacks.policy`` (tests: the ``violations`` fixture
in ``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc, settings as _settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

__all__ = [
    "SECRET",
    "FAKE_PROJECT_NUMBER",
    "Mocks",
    "RecordedResource",
    "Recording",
    "RecordingMonitor",
    "redact",
    "registry_digest",
    "run_program",
    "dependency_closure",
]

SECRET = "[secret]"
FAKE_PROJECT_NUMBER = "123456789012"
DEFAULT_PROJECT = "flexyboots-test"


# --------------------------------------------------------------------------------------------
# secrets


def _unwrap(value: Any, path: str, found: set[str]) -> Any:
    """Plaintext copy of ``value``; records the dotted paths of secret-wrapped values."""
    if rpc.is_rpc_secret(value):
        found.add(path or "<root>")
        return _unwrap(rpc.unwrap_rpc_secret(value), path, set())
    if isinstance(value, dict):
        return {k: _unwrap(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def redact(value: Any) -> Any:
    """Replace every Pulumi-secret-wrapped value inside ``value`` with ``"[secret]"``."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _redact_paths(value: Any, paths: set[str], path: str = "") -> Any:
    if path and path in paths:
        return SECRET
    if isinstance(value, dict):
        return {k: _redact_paths(v, paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_paths(v, paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------------------------
# records


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict
    secret_paths: set = field(default_factory=set)
    additional_secret_outputs: list = field(default_factory=list)
    protect: bool = False
    dependencies: list = field(default_factory=list)
    provider: str = ""
    id: str = ""
    outputs: dict = field(default_factory=dict)
    #: the ``replace_on_changes`` and ``delete_before_replace`` resource options
    replace_on_changes: list = field(default_factory=list)
    delete_before_replace: bool = False

    @property
    def parent_type(self) -> str:
        if not self.parent:
            return ""
        return self.parent.split("::")[2].split("$")[-1]

    @property
    def parent_name(self) -> str:
        return self.parent.split("::")[-1] if self.parent else ""

    @property
    def is_provider(self) -> bool:
        return self.type.startswith("pulumi:providers:")

    def redacted_inputs(self) -> dict:
        paths = set(self.secret_paths) | set(self.additional_secret_outputs)
        return _redact_paths(self.inputs, paths)

    def has_secret(self, path: str) -> bool:
        """Whether the input at ``path`` (or one of its elements) was a Pulumi secret."""
        return any(p == path or p.startswith(path + ".") or p.startswith(path + "[") for p in self.secret_paths)


@dataclass
class Recording:
    resources: list
    providers: list
    stack_urn: str
    exports: dict
    secret_exports: set

    def of_type(self, type_: str) -> list:
        return [r for r in self.resources if r.type == type_]

    def count_by_type(self) -> dict:
        counts: dict[str, int] = {}
        for r in self.resources:
            counts[r.type] = counts.get(r.type, 0) + 1
        return counts

    def get(self, name: str, type_: Optional[str] = None) -> RecordedResource:
        hits = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        if len(hits) != 1:
            raise KeyError(f"expected exactly one resource named {name!r} (type {type_}); found {len(hits)}")
        return hits[0]

    def children(self, parent: "RecordedResource | str") -> list:
        urn = parent.urn if isinstance(parent, RecordedResource) else parent
        return [r for r in self.resources if r.parent == urn]

    def redacted_exports(self) -> dict:
        return {k: (SECRET if k in self.secret_exports else v) for k, v in self.exports.items()}

    def waits_for(self, resource: "RecordedResource | str") -> set:
        if getattr(self, "_waits_for", None) is None:
            self._waits_for = dependency_closure(self.resources)
        return self._waits_for(resource)


def dependency_closure(resources: Iterable[RecordedResource]) -> Callable[[Any], set]:
    """``waits_for(resource_or_urn) -> set of URNs`` over recorded resources: what a resource
    is created after. Its recorded ``dependencies`` (the SDK records explicit ``depends_on``
    and every resource an input came from), and its parent (a child is registered only once
    its parent is, and the parent once its own dependencies are), followed transitively; a
    dependency on a component counts as one on all its descendants."""
    resources = list(resources)
    by_urn = {r.urn: r for r in resources}
    kids: dict[str, list[str]] = {}
    for r in resources:
        kids.setdefault(r.parent, []).append(r.urn)
    memo: dict[str, set] = {}

    def waits_for(resource: Any) -> set:
        urn = resource.urn if isinstance(resource, RecordedResource) else resource
        if urn in memo:
            return memo[urn]
        memo[urn] = set()  # a cycle (none in a valid plan) ends here
        r = by_urn.get(urn)
        out: set[str] = set()
        if r is not None:
            todo = list(r.dependencies)
            while todo:
                d = todo.pop()
                if d not in out:
                    out.add(d)
                    todo += kids.get(d, [])
            if r.parent in by_urn:
                out.add(r.parent)
            for d in list(out):
                out |= waits_for(d)
        memo[urn] = out
        return out

    return waits_for


# --------------------------------------------------------------------------------------------
# mocks


def _digits(text: str, n: int) -> str:
    """Deterministic digits derived from ``text`` (hash() is salted per process)."""
    return str(int(hashlib.sha256(text.encode()).hexdigest(), 16))[:n].zfill(n)


def registry_digest(reference: str) -> str:
    """The digest the mocks' registry returns for ``reference``: the one it names when it has
    one (as a registry does), else derived from the reference, so another tag, another digest."""
    _, _, digest = reference.partition("@")
    return digest or "sha256:" + hashlib.sha256(f"mock-registry:{reference}".encode()).hexdigest()


def _gcp_project(inputs: dict, default: str) -> str:
    return inputs.get("project") or default


class Mocks(pulumi.runtime.Mocks):
    """Deterministic ids (``<name>_id``), echoed inputs, plausible computed outputs."""

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        project_number: str = FAKE_PROJECT_NUMBER,
        region: str = "europe-west1",
        aws_account_id: str = "123456789012",
        aws_region: str = "eu-west-1",
    ) -> None:
        self.project = project
        self.project_number = project_number
        self.region = region
        self.aws_account_id = aws_account_id
        self.aws_region = aws_region

    # resources ------------------------------------------------------------------------------
    def new_resource(self, args: _mocks.MockResourceArgs):
        if not args.custom:
            return "", {}
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}_id", dict(args.inputs)
        inputs = dict(args.inputs)
        out = dict(inputs)
        rid = f"{args.name}_id"
        typ = args.typ
        project = _gcp_project(inputs, self.project)
        plain = {k: rpc.unwrap_rpc_secret(v) for k, v in inputs.items()}

        if typ.startswith("gcp:"):
            out.setdefault("project", project)
            out.setdefault("name", plain.get("name") or args.name)
            if "labels" in plain:
                out.setdefault("effectiveLabels", plain["labels"])
                out.setdefault("pulumiLabels", plain["labels"])
            module = typ.split(":")[1].split("/")[0]
            out.setdefault(
                "selfLink",
                f"https://www.googleapis.com/{module}/v1/projects/{project}/{typ.split(':')[-1].lower()}s/{out['name']}",
            )
        if typ == "gcp:serviceaccount/account:Account":
            email = f"{plain['accountId']}@{project}.iam.gserviceaccount.com"
            out.update(
                email=email,
                member=f"serviceAccount:{email}",
                uniqueId="1" + _digits(email, 20),
                name=f"projects/{project}/serviceAccounts/{email}",
            )
            rid = out["name"]
        elif typ == "gcp:projects/serviceIdentity:ServiceIdentity":  # the agent Google creates
            from components.service_agents import SERVICE_AGENTS, agent_email

            api = plain["service"]
            email = (
                agent_email(api, self.project_number)
                if api in SERVICE_AGENTS
                else f"service-{self.project_number}@gcp-sa-{api.split('.')[0]}.iam.gserviceaccount.com"
            )
            out.update(email=email, member=f"serviceAccount:{email}")
            rid = f"projects/{project}/services/{api}"
        elif typ == "gcp:serviceaccount/key:Key":
            import base64

            key_json = json.dumps({"type": "service_account", "private_key_id": _digits(args.name, 16),
                                   "private_key": "-----BEGIN PRIVATE KEY-----\nmock-" + args.name + "\n-----END PRIVATE KEY-----\n"})
            out.update(privateKey=base64.b64encode(key_json.encode()).decode(), name=f"{plain.get('serviceAccountId')}/keys/mock")
            rid = out["name"]
        elif typ == "gcp:storage/bucket:Bucket":
            out.update(url=f"gs://{out['name']}", selfLink=f"https://www.googleapis.com/storage/v1/b/{out['name']}")
            rid = out["name"]
        elif typ == "gcp:bigquery/dataset:Dataset":
            ds = plain.get("datasetId", args.name)
            out.update(datasetId=ds, selfLink=f"https://bigquery.googleapis.com/bigquery/v2/projects/{project}/datasets/{ds}")
            rid = f"projects/{project}/datasets/{ds}"
        elif typ == "gcp:secretmanager/secret:Secret":
            sid = plain.get("secretId", args.name)
            out.update(name=f"projects/{self.project_number}/secrets/{sid}", secretId=sid)
            rid = f"projects/{project}/secrets/{sid}"
        elif typ == "gcp:secretmanager/secretVersion:SecretVersion":
            out.update(name=f"{plain.get('secret', 'secret')}/versions/1", version="1")
            rid = out["name"]
        elif typ == "gcp:bigquery/dataTransferConfig:DataTransferConfig":  # a config's name, as the API returns it
            cid = "%08x-0000-4000-8000-%012x" % (zlib.crc32(args.name.encode()), zlib.crc32(args.name[::-1].encode()))
            out["name"] = f"projects/{self.project_number}/locations/{str(plain.get('location', 'us')).lower()}/transferConfigs/{cid}"
            rid = out["name"]
        elif typ == "gcp:projects/service:Service":
            rid = f"{project}/{plain.get('service', args.name)}"
        elif typ == "gcp:composer/environment:Environment":  # what Composer computes
            cfg = dict(out.get("config") or {})
            cfg.setdefault("dagGcsPrefix", f"gs://{self.region}-{args.name}-bucket/dags")
            cfg.setdefault("airflowUri", f"https://{args.name}-dot-{self.region}.composer.googleusercontent.com")
            out["config"] = cfg
        elif typ == "gcp:compute/instance:Instance":
            out.update(instanceId="4" + _digits(args.name, 18), cpuPlatform="Intel Broadwell")
            nics = []
            for i, nic in enumerate(plain.get("networkInterfaces") or []):
                nic = dict(nic)
                nic.setdefault("networkIp", f"10.10.0.{10 + int(_digits(args.name + str(i), 2))}")
                nic.setdefault("name", f"nic{i}")
                nics.append(nic)
            if nics:
                out["networkInterfaces"] = nics
        elif typ.startswith("random:"):
            length = int(plain.get("length", 16) or 16)
            out["result"] = ("mock-" + args.name + "x" * length)[:length]
            rid = "none"
        elif typ.startswith("aws:"):
            out.update(self._aws(typ, args.name, plain, out))
            rid = out.pop("__id", rid)
        elif typ.startswith("docker:"):
            out.update(self._docker(typ, args.name, plain))
            rid = out.pop("__id", rid)
        return rid, out

    def _docker(self, typ: str, name: str, plain: dict) -> dict:
        if typ == "docker:index/remoteImage:RemoteImage":
            ref = plain["name"]
            repo, _, digest = ref.partition("@")
            image_id = "sha256:" + hashlib.sha256(f"mock-image-id:{ref}".encode()).hexdigest()
            out = {"imageId": image_id, "__id": f"{image_id}{ref}"}
            if digest:  # what the local client reports once it pulled by digest
                out["repoDigest"] = f"{repo.rsplit(':', 1)[0] if ':' in repo.rsplit('/', 1)[-1] else repo}@{digest}"
            return out
        if typ == "docker:index/container:Container":
            cid = hashlib.sha256(f"mock-container:{plain.get('name') or name}".encode()).hexdigest()
            return {"__id": cid, "name": plain.get("name") or name, "exitCode": None}
        if typ == "docker:index/volume:Volume":
            vol = plain.get("name") or name
            return {"__id": vol, "name": vol, "driver": "local", "mountpoint": f"/var/lib/docker/volumes/{vol}/_data"}
        if typ == "docker:index/network:Network":
            net = plain.get("name") or name
            return {"__id": hashlib.sha256(f"mock-network:{net}".encode()).hexdigest(), "name": net, "driver": "bridge"}
        return {}

    def _aws(self, typ: str, name: str, plain: dict, out: dict) -> dict:
        acct = self.aws_account_id
        if typ == "aws:s3/bucket:Bucket":
            bucket = plain.get("bucket") or f"{name}-0123456"
            return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "__id": bucket,
                    "bucketDomainName": f"{bucket}.s3.amazonaws.com", "region": self.aws_region}
        if typ == "aws:iam/user:User":
            user = plain.get("name") or f"{name}-0123456"
            return {"name": user, "arn": f"arn:aws:iam::{acct}:user/{user}", "uniqueId": "AIDA" + user.upper()[:16], "__id": user}
        if typ == "aws:iam/accessKey:AccessKey":
            return {"id": "AKIAMOCK" + name.upper()[:12].replace("-", ""), "__id": "AKIAMOCK" + name.upper()[:12].replace("-", ""),
                    "secret": "mock-secret-access-key-" + name, "status": plain.get("status", "Active")}
        if typ == "aws:iam/userPolicy:UserPolicy":
            return {"name": plain.get("name") or name}
        return {"arn": f"arn:aws:mock:::{name}"}

    # invokes -------------------------------------------------------------------------------
    def call(self, args: _mocks.MockCallArgs):
        token, a = args.token, args.args or {}
        project = a.get("project") or self.project
        if token == "gcp:organizations/getProject:getProject":
            pid = a.get("projectId") or project
            return {"projectId": pid, "number": self.project_number, "name": pid, "id": f"projects/{pid}", "labels": {}}
        if token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"project": project, "region": self.region, "zone": f"{self.region}-b", "accessToken": "mock-token", "id": "mock"}
        if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            email = f"service-{self.project_number}@gs-project-accounts.iam.gserviceaccount.com"
            return {"emailAddress": email, "member": f"serviceAccount:{email}", "project": project, "id": email}
        if token == "gcp:bigquery/getDefaultServiceAccount:getDefaultServiceAccount":
            email = f"bq-{self.project_number}@bigquery-encryption.iam.gserviceaccount.com"
            return {"email": email, "member": f"serviceAccount:{email}", "project": project, "id": email}
        if token == "gcp:compute/getImage:getImage":
            fam = a.get("family", "debian-12")
            return {"selfLink": f"https://www.googleapis.com/compute/v1/projects/{a.get('project', 'debian-cloud')}/global/images/{fam}-v20250101",
                    "name": f"{fam}-v20250101", "family": fam, "id": fam}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.aws_account_id, "arn": f"arn:aws:iam::{self.aws_account_id}:user/mock", "userId": "AIDAMOCK", "id": self.aws_account_id}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.aws_region, "region": self.aws_region, "id": self.aws_region}
        if token == "docker:index/getRegistryImage:getRegistryImage":
            digest = registry_digest(a["name"])
            return {"id": digest, "name": a["name"], "sha256Digest": digest, "insecureSkipVerify": False}
        return dict(a)


# --------------------------------------------------------------------------------------------
# monitor


class RecordingMonitor(_mocks.MockMonitor):
    """MockMonitor that records every RegisterResource request and honours additionalSecretOutputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.records: list[RecordedResource] = []
        self.stack_urn = ""

    def RegisterResource(self, request):  # mirrors MockMonitor.RegisterResource, plus recording
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)

        _ensure_event_loop()
        raw_inputs = rpc.deserialize_properties(request.object)
        resource_args = _mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=raw_inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
            transforms=_mocks._resolve_callbacks(request.transforms),
        )
        id_, state = self.mocks.new_resource(resource_args)
        state = dict(state or {})
        aso = list(request.additionalSecretOutputs)
        for key in aso:  # what the engine does with additionalSecretOutputs
            if key in state and state[key] is not None:
                state[key] = rpc.wrap_rpc_secret(state[key])

        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = _mocks.MockMonitor.ResourceRegistration(urn, id_, state)

        secret_paths: set[str] = set()
        inputs = _unwrap(raw_inputs, "", secret_paths)
        self.records.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=inputs,
                secret_paths=secret_paths,
                additional_secret_outputs=aso,
                protect=bool(request.protect),
                dependencies=list(request.dependencies),
                provider=request.provider,
                id=id_ or "",
                outputs=_unwrap(state, "", set()),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)


# --------------------------------------------------------------------------------------------
# runner


def _config_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_program(
    program: Callable[[], Any],
    *,
    config: Optional[dict] = None,
    project: str = "flexyboots",
    stack: str = "dev",
    secret_keys: Optional[Iterable[str]] = None,
    mocks: Optional[pulumi.runtime.Mocks] = None,
) -> Recording:
    """Run ``program`` under mocks (preview=False) and return what it registered."""
    config = dict(config or {})
    full_config = {_config_key(project, k): _config_value(v) for k, v in config.items()}
    if mocks is None:
        mocks = Mocks(project=full_config.get("gcp:project", DEFAULT_PROJECT))
    monitor = RecordingMonitor(mocks)

    # settle/reset the process-global runtime state left by any previous program
    _settings.ROOT.set(None)
    _settings.SETTINGS.outputs.clear()
    set_all_config(full_config, [_config_key(project, k) for k in (secret_keys or ())])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    root = _settings.get_root_resource()

    exports: dict[str, Any] = {}
    secret_exports: set[str] = set()

    async def _resolve_exports() -> None:
        outputs = getattr(root, "outputs", {}) or {}
        for name, value in outputs.items():
            out = pulumi.Output.from_input(value)
            exports[name] = await out.future(with_unknowns=False)
            if await out.is_secret():
                secret_exports.add(name)

    try:
        _sync_await(run_pulumi_func(program))
        _sync_await(run_pulumi_func(_resolve_exports))
    finally:
        _settings.SETTINGS.outputs.clear()

    return Recording(
        resources=[r for r in monitor.records if not r.is_provider],
        providers=[r for r in monitor.records if r.is_provider],
        stack_urn=monitor.stack_urn,
        exports=exports,
        secret_exports=secret_exports,
    )
