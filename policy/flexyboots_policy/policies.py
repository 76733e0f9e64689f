"""The flexyboots security rules as CrossGuard policies (``pulumi_policy``), one definition each.

The same objects run in ``pulumi preview/up --policy-pack policy`` (the Pulumi engine starts
``policy/__main__.py`` and calls it over gRPC) and offline in ``python -m stacks policy``, which
starts this pack the same way and feeds it a mock plan (``stacks/policy.py``).

The rules are general: they look at resource types and properties, never at flexyboots'
resource names, so other stacks and new components are checked too. What differs per stack
(which datasets must be protected, the expected ``env`` label, allow-lists) is policy config,
``policy/config/<stack>.json`` (``--policy-pack-config``); every key has a default in its schema.

What a policy can see: the Pulumi engine sends resource inputs (``Analyze``) and, once per stack,
every resource's outputs (``AnalyzeStack``). Secret values arrive as plaintext: the SDK unwraps
them (``deserialize_properties`` without ``proxy_secrets``), so "is this a Pulumi secret" cannot be
asked here; ``secrets-stay-in-secret-sinks`` instead checks where credential values flow.
Values unknown during a preview raise inside the SDK, which reports "can't run policy during
preview" as advisory; the rule then runs at ``pulumi up``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Iterable

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

INSTANCE_TYPES = ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate",
                  "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate")
FIREWALL = "gcp:compute/firewall:Firewall"
GCS_BUCKET = "gcp:storage/bucket:Bucket"
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
DATASET = "gcp:bigquery/dataset:Dataset"
TABLE = "gcp:bigquery/table:Table"
TRANSFER_CONFIG = "gcp:bigquery/dataTransferConfig:DataTransferConfig"
CUSTOM_ROLE_TYPES = ("gcp:projects/iAMCustomRole:IAMCustomRole", "gcp:organizations/iAMCustomRole:IAMCustomRole")
PROJECT_IAM_TYPES = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding", "gcp:projects/iAMPolicy:IAMPolicy")
SA_KEY = "gcp:serviceaccount/key:Key"


# --------------------------------------------------------------------------- helpers


def _get(props: Any, key: str, default: Any = None) -> Any:
    v = props.get(key) if isinstance(props, Mapping) else None
    return default if v is None else v


def _items(value: Any) -> list:
    """The elements of a list property (the SDK hands lists as read-only Sequence proxies)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def _keys(value: Any) -> list:
    """The keys of an object property (the SDK hands objects as read-only Mapping proxies)."""
    return list(value.keys()) if isinstance(value, Mapping) else []


def _is_iam_grant(props: Any) -> bool:
    return _get(props, "role") is not None and (_get(props, "member") is not None or _get(props, "members") is not None)


def _members(props: Any) -> list:
    out = []
    if _get(props, "member") is not None:
        out.append(_get(props, "member"))
    out += _items(_get(props, "members", []))
    return [m for m in out if isinstance(m, str)]


def _policy_data_bindings(props: Any) -> list:
    """Bindings of an authoritative ``*IAMPolicy`` resource (``policyData`` is JSON text)."""
    import json

    raw = _get(props, "policyData")
    if not isinstance(raw, str):
        return []
    try:
        return list(json.loads(raw).get("bindings") or [])
    except (ValueError, AttributeError):
        return []


def _roles(resource_type: str, props: Any) -> list:
    """(role, members) pairs granted by an IAM resource of any level."""
    grants = []
    if _get(props, "role") is not None:
        grants.append((_get(props, "role"), _members(props)))
    if resource_type.endswith("IAMPolicy:IAMPolicy") or resource_type.endswith("IamPolicy:IamPolicy"):
        grants += [(b.get("role"), list(b.get("members") or [])) for b in _policy_data_bindings(props)]
    for access in _items(_get(props, "accesses", [])):  # a dataset's inline access list
        if isinstance(_get(access, "role"), str):
            who = [_get(access, k) for k in ("userByEmail", "groupByEmail", "iamMember", "specialGroup") if _get(access, k)]
            grants.append((_get(access, "role"), who))
    return grants


def _config(args: Any) -> dict:
    """The policy's config (the engine fills in the schema defaults; direct calls may pass none)."""
    return dict(args.get_config() or {})


def _opt(args: Any, key: str, default: Any) -> Any:
    v = _config(args).get(key)
    return default if v is None else v


def _protected(args: Any) -> bool:
    opts = getattr(args, "opts", None)
    return bool(getattr(opts, "protect", False))


# --------------------------------------------------------------------------- network


def _vm_no_external_ip(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in INSTANCE_TYPES:
        return
    for i, nic in enumerate(_items(_get(args.props, "networkInterfaces", []))):
        if _items(_get(nic, "accessConfigs", [])):
            report(f"networkInterfaces[{i}] has an access config (an external IPv4 address); reach the VM through IAP instead")
        if _items(_get(nic, "ipv6AccessConfigs", [])):
            report(f"networkInterfaces[{i}] has an IPv6 access config (an external IPv6 address)")


vm_no_external_ip = ResourceValidationPolicy(
    name="vm-no-external-ip",
    description="VMs and instance templates have no external IP address (access configs).",
    enforcement_level=MANDATORY,
    validate=_vm_no_external_ip,
)

_ANYWHERE = ["0.0.0.0/0", "::/0"]


def _firewall_no_open_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FIREWALL or str(_get(args.props, "direction", "INGRESS")).upper() != "INGRESS":
        return
    if _get(args.props, "disabled") is True:
        return
    forbidden = set(_opt(args, "forbiddenSourceRanges", _ANYWHERE))
    ranges = [r for r in _items(_get(args.props, "sourceRanges", [])) if isinstance(r, str)]
    for r in ranges:
        if r in forbidden:
            report(f"ingress from {r}: allow only known ranges (IAP is 35.235.240.0/20)")
    if not ranges and not _items(_get(args.props, "sourceTags", [])) and not _items(_get(args.props, "sourceServiceAccounts", [])):
        report("an ingress rule without sourceRanges, sourceTags or sourceServiceAccounts admits 0.0.0.0/0")


firewall_no_open_ingress = ResourceValidationPolicy(
    name="firewall-no-open-ingress",
    description="No firewall rule admits ingress from the whole internet.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "forbiddenSourceRanges": {"type": "array", "items": {"type": "string"}, "default": _ANYWHERE,
                                  "description": "source ranges no ingress rule may use"},
    }),
    validate=_firewall_no_open_ingress,
)


# --------------------------------------------------------------------------- storage


def _bucket_uniform_no_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != GCS_BUCKET:
        return
    if _get(args.props, "uniformBucketLevelAccess") is not True:
        report("uniformBucketLevelAccess is not true: object ACLs could make objects public")
    pap = _get(args.props, "publicAccessPrevention")
    if pap != "enforced":
        report(f"publicAccessPrevention is {pap!r}, expected 'enforced'")


bucket_uniform_no_public = ResourceValidationPolicy(
    name="gcs-bucket-uniform-no-public",
    description="Cloud Storage buckets use uniform bucket-level access and enforce public access prevention.",
    enforcement_level=MANDATORY,
    validate=_bucket_uniform_no_public,
)

_PAB_FIELDS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _s3_public_access_blocked(args: StackValidationArgs, report: ReportViolation) -> None:
    blocks = [r for r in args.resources if r.resource_type == S3_PUBLIC_ACCESS_BLOCK]
    blocked: set = set()
    for b in blocks:
        off = [f for f in _PAB_FIELDS if _get(b.props, f) is not True]
        if off:
            report(f"{b.name}: {', '.join(off)} not true", b.urn)
        blocked.add(_get(b.props, "bucket"))
        blocked.update(d.urn for d in (b.dependencies or []))  # the engine links a block to its bucket
    for bucket in (r for r in args.resources if r.resource_type in S3_BUCKETS):
        if not {bucket.urn, _get(bucket.props, "bucket"), _get(bucket.props, "id")} & (blocked - {None}):
            report(f"{bucket.name}: no aws:s3 BucketPublicAccessBlock blocks public access to this bucket", bucket.urn)


s3_public_access_blocked = StackValidationPolicy(
    name="s3-public-access-blocked",
    description="Every S3 bucket has a public access block with all four settings on.",
    enforcement_level=MANDATORY,
    validate=_s3_public_access_blocked,
)


# --------------------------------------------------------------------------- IAM

_PRIMITIVE = ["roles/owner", "roles/editor", "roles/viewer", "roles/resourcemanager.projectIamAdmin", "roles/iam.securityAdmin"]
#: a service's whole-service administrator role (roles/bigquery.admin, roles/storage.admin, ...)
_ADMIN_PATTERN = r"^roles/[A-Za-z0-9]+\.admin$"


def _no_primitive_or_admin_roles(args: ResourceValidationArgs, report: ReportViolation) -> None:
    forbidden = set(_opt(args, "forbiddenRoles", _PRIMITIVE))
    pattern = re.compile(_opt(args, "forbiddenRolePattern", _ADMIN_PATTERN))
    allowed = set(_opt(args, "allowedRoles", []))
    for role, _members_ in _roles(args.resource_type, args.props):
        if not isinstance(role, str) or role in allowed:
            continue
        if role in forbidden:
            report(f"grants the primitive role {role}: grant a predefined role scoped to the job instead")
        elif pattern.search(role):
            report(f"grants the administrator role {role}: grant the narrower roles the job needs")


no_primitive_or_admin_roles = ResourceValidationPolicy(
    name="iam-no-primitive-or-admin-roles",
    description="No identity is granted a primitive role (owner, editor, viewer) or an *.admin role, at any level.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "forbiddenRoles": {"type": "array", "items": {"type": "string"}, "default": _PRIMITIVE},
        "forbiddenRolePattern": {"type": "string", "default": _ADMIN_PATTERN},
        "allowedRoles": {"type": "array", "items": {"type": "string"}, "default": [],
                         "description": "exceptions to forbiddenRolePattern"},
    }),
    validate=_no_primitive_or_admin_roles,
)

_PROJECT_ROLES = [
    "roles/bigquery.jobUser",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/composer.worker",
    "roles/composer.ServiceAgentV2Ext",
]


#: Google-managed service agents (service-<project number>@<service>.iam.gserviceaccount.com)
_AGENT_MEMBER = r"^serviceAccount:service-\d+@[a-z0-9-]+\.iam\.gserviceaccount\.com$"
#: the roles Google grants its agents (roles/<service>.serviceAgent, roles/composer.ServiceAgentV2Ext, ...)
_AGENT_ROLE = r"(?i)^roles/[a-z0-9]+\.serviceAgent[a-z0-9]*$"


def _project_roles_allowlist(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in PROJECT_IAM_TYPES:
        return
    allowed = set(_opt(args, "allowedProjectRoles", _PROJECT_ROLES))
    agent, agent_role = re.compile(_opt(args, "serviceAgentMember", _AGENT_MEMBER)), re.compile(_opt(args, "serviceAgentRole", _AGENT_ROLE))
    for role, members in _roles(args.resource_type, args.props):
        if not isinstance(role, str) or not role.startswith("roles/"):
            continue  # a custom role: its permissions are checked by iam-custom-role-no-escalation
        if members and all(agent.match(m) for m in members) and agent_role.match(role):
            continue  # a Google service agent holding its own service agent role
        if role not in allowed:
            report(f"grants {role} on the whole project: grant it on the dataset, bucket, topic or account the job uses "
                   f"(project-wide only: {', '.join(sorted(allowed))})")


project_roles_allowlist = ResourceValidationPolicy(
    name="iam-project-roles-allowlist",
    description="Project-wide grants use only the allow-listed job, logging and monitoring roles, custom roles, or a service agent's own role.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "allowedProjectRoles": {"type": "array", "items": {"type": "string"}, "default": _PROJECT_ROLES},
        "serviceAgentMember": {"type": "string", "default": _AGENT_MEMBER, "description": "members that are Google service agents"},
        "serviceAgentRole": {"type": "string", "default": _AGENT_ROLE, "description": "the only project roles a service agent may get"},
    }),
    validate=_project_roles_allowlist,
)


def _no_authoritative_iam(args: ResourceValidationArgs, report: ReportViolation) -> None:
    t = args.resource_type
    if t.startswith("gcp:") and t.rsplit(":", 1)[-1].lower().endswith(("iampolicy", "iambinding")):
        report(f"{t.split(':')[-1]} is authoritative: it removes every grant made outside this stack; use the *IAMMember resource")


no_authoritative_iam = ResourceValidationPolicy(
    name="iam-no-authoritative-bindings",
    description="IAM is granted member by member (*IAMMember), never with authoritative *IAMPolicy or *IAMBinding resources.",
    enforcement_level=MANDATORY,
    validate=_no_authoritative_iam,
)

_PUBLIC = ["allUsers", "allAuthenticatedUsers"]


def _no_public_members(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for role, members in _roles(args.resource_type, args.props):
        for m in members:
            if isinstance(m, str) and m in _PUBLIC:
                report(f"grants {role} to {m}: the resource becomes public")


no_public_members = ResourceValidationPolicy(
    name="iam-no-public-members",
    description="Nothing is granted to allUsers or allAuthenticatedUsers.",
    enforcement_level=MANDATORY,
    validate=_no_public_members,
)

_ESCALATION = [
    r"\.setIamPolicy$",
    r"^iam\.serviceAccountKeys\.create$",
    r"^iam\.serviceAccounts\.(actAs|getAccessToken|getOpenIdToken|implicitDelegation|signBlob|signJwt)$",
    r"^iam\.roles\.(create|update|delete|undelete)$",
    r"^resourcemanager\.projects\.(delete|move)$",
]


def _custom_role_no_escalation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in CUSTOM_ROLE_TYPES:
        return
    patterns = [re.compile(p) for p in _opt(args, "forbiddenPermissionPatterns", _ESCALATION)]
    bad = [p for p in _items(_get(args.props, "permissions", [])) if isinstance(p, str) and any(rx.search(p) for rx in patterns)]
    if bad:
        report(f"custom role lets its holders raise their own privileges: {', '.join(sorted(bad))}")


custom_role_no_escalation = ResourceValidationPolicy(
    name="iam-custom-role-no-escalation",
    description="Custom roles carry no permission that grants access, impersonates accounts or edits roles.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "forbiddenPermissionPatterns": {"type": "array", "items": {"type": "string"}, "default": _ESCALATION},
    }),
    validate=_custom_role_no_escalation,
)


def _sa_keys(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == SA_KEY:
        report("a service-account key is a long-lived credential: prefer attached service accounts or Workload Identity; "
               "where a tool needs a key file, keep it only in Secret Manager")


service_account_keys = ResourceValidationPolicy(
    name="iam-service-account-keys",
    description="Service-account keys are avoided (advisory: some tools, such as Metabase's BigQuery driver, need one).",
    enforcement_level=ADVISORY,
    validate=_sa_keys,
)


# --------------------------------------------------------------------------- labels

_LABELLED = [
    "gcp:bigquery/dataset:Dataset",
    "gcp:bigquery/table:Table",
    "gcp:composer/environment:Environment",
    "gcp:compute/disk:Disk",
    "gcp:compute/instance:Instance",
    "gcp:pubsub/subscription:Subscription",
    "gcp:pubsub/topic:Topic",
    "gcp:secretmanager/secret:Secret",
    "gcp:storage/bucket:Bucket",
]
#: Types whose resource labels are ``userLabels`` (their ``labels`` input is something else: a
#: notification channel's ``labels`` hold its configuration, e.g. ``email_address``).
_USER_LABELLED = [
    "gcp:monitoring/alertPolicy:AlertPolicy",
    "gcp:monitoring/notificationChannel:NotificationChannel",
]
_TAGGED = ["aws:iam/user:User", "aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"]
_REQUIRED = ["env", "component", "managed-by"]


def _labels_required(args: ResourceValidationArgs, report: ReportViolation) -> None:
    t = args.resource_type
    if t in _opt(args, "labelledTypes", _LABELLED):
        kind, found = "labels", _get(args.props, "labels", {})
    elif t in _opt(args, "userLabelledTypes", _USER_LABELLED):
        kind, found = "userLabels", _get(args.props, "userLabels", {})
    elif t in _opt(args, "taggedTypes", _TAGGED):
        kind, found = "tags", _get(args.props, "tags", {})
    else:
        return
    found = {k: found[k] for k in _keys(found)}
    missing = [k for k in _opt(args, "requiredLabels", _REQUIRED) if not found.get(k)]
    if missing:
        report(f"{kind} missing {', '.join(missing)}")
        return
    managed_by = _opt(args, "managedBy", "pulumi")
    if "managed-by" in found and found.get("managed-by") != managed_by:
        report(f"{kind} managed-by is {found.get('managed-by')!r}, expected {managed_by!r}")
    env = _opt(args, "env", "")
    if env and "env" in found and found.get("env") != env:
        report(f"{kind} env is {found.get('env')!r}, expected {env!r} (this stack's env)")


labels_required = ResourceValidationPolicy(
    name="labels-required",
    description="Every resource type that takes labels (GCP) or tags (AWS) carries env, component and managed-by: pulumi.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "labelledTypes": {"type": "array", "items": {"type": "string"}, "default": _LABELLED},
        "userLabelledTypes": {"type": "array", "items": {"type": "string"}, "default": _USER_LABELLED},
        "taggedTypes": {"type": "array", "items": {"type": "string"}, "default": _TAGGED},
        "requiredLabels": {"type": "array", "items": {"type": "string"}, "default": _REQUIRED},
        "managedBy": {"type": "string", "default": "pulumi"},
        "env": {"type": "string", "default": "", "description": "the env label every resource must carry (empty: any)"},
    }),
    validate=_labels_required,
)


# --------------------------------------------------------------------------- secrets

#: output properties that hold a generated credential
_PRODUCERS = {
    "random:index/randomPassword:RandomPassword": "result",
    "aws:iam/accessKey:AccessKey": "secret",
    "gcp:serviceaccount/key:Key": "privateKey",
    "tls:index/privateKey:PrivateKey": "privateKeyPem",
}
#: input properties that keep a value secret (encrypted by the provider schema, never shown by GCP)
_SINKS = {
    "gcp:secretmanager/secretVersion:SecretVersion": ["secretData"],
    "gcp:bigquery/dataTransferConfig:DataTransferConfig": ["sensitiveParams"],
}


def _walk(value: Any, path: str = "") -> Iterable[tuple]:
    if isinstance(value, Mapping):
        for k in _keys(value):
            yield from _walk(value[k], f"{path}.{k}" if path else str(k))
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for i, v in enumerate(_items(value)):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def _secrets_stay_in_sinks(args: StackValidationArgs, report: ReportViolation) -> None:
    producers = dict(_opt(args, "producers", _PRODUCERS))
    sinks = dict(_opt(args, "sinks", _SINKS))
    values = []
    for r in args.resources:
        prop = producers.get(r.resource_type)
        v = _get(r.props, prop) if prop else None
        if isinstance(v, str) and len(v) >= 8:
            values.append((v, r.name))
    if not values:
        args.not_applicable("no generated credential value is known (an input-only plan, or a preview before creation)")
        return
    where = ", ".join(f"{t.split(':')[-1]}.{p}" for t, ps in sinks.items() for p in ps)
    for r in args.resources:
        if r.resource_type in producers:
            continue
        allowed = tuple(sinks.get(r.resource_type, []))
        for path, v in _walk(r.props):
            if not isinstance(v, str) or path.split(".")[0].split("[")[0] in allowed:
                continue
            for secret, origin in values:
                if secret in v:
                    report(f"{r.resource_type} {r.name}: {path} holds the credential generated by {origin}; "
                           f"pass it only through {where} (e.g. Secret Manager, read at boot)", r.urn)


secrets_stay_in_sinks = StackValidationPolicy(
    name="secrets-stay-in-secret-sinks",
    description="Generated credentials (passwords, access keys, private keys) flow only into secret-keeping properties.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "producers": {"type": "object", "default": _PRODUCERS, "description": "resource type -> output holding a credential"},
        "sinks": {"type": "object", "default": _SINKS, "description": "resource type -> inputs that keep it secret"},
    }),
    validate=_secrets_stay_in_sinks,
)

#: key names that hold credentials (an access key *id* is an identifier, not a credential)
_CREDENTIAL_KEY = r"(?i)(password|passwd|secret|token|private_?key|credential|access_?key(?!_?id))"


def _no_credentials_in_plain_fields(args: ResourceValidationArgs, report: ReportViolation) -> None:
    rx = re.compile(_opt(args, "credentialKeyPattern", _CREDENTIAL_KEY))
    fields = {
        TRANSFER_CONFIG: "params",
        "gcp:compute/instance:Instance": "metadata",
        "gcp:compute/instanceTemplate:InstanceTemplate": "metadata",
    }
    field = fields.get(args.resource_type)
    if field:
        plain = _get(args.props, field, {})
        for k in _keys(plain):
            if rx.search(str(k)) and plain[k] not in (None, ""):
                report(f"{field}.{k} looks like a credential in a field GCP shows to anyone who can read the resource; "
                       f"use {'sensitiveParams' if field == 'params' else 'Secret Manager'}")
    if args.resource_type == "gcp:composer/environment:Environment":
        env = _get(_get(_get(args.props, "config", {}), "softwareConfig", {}), "envVariables", {})
        for k in _keys(env):
            if rx.search(str(k)):
                report(f"config.softwareConfig.envVariables.{k} looks like a credential: Airflow connections/variables "
                       "from Secret Manager instead")


no_credentials_in_plain_fields = ResourceValidationPolicy(
    name="no-credentials-in-plain-fields",
    description="No credential-like key in transfer params, VM metadata or Composer environment variables.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={"credentialKeyPattern": {"type": "string", "default": _CREDENTIAL_KEY}}),
    validate=_no_credentials_in_plain_fields,
)


# --------------------------------------------------------------------------- protected data

_PROTECTED_DATASETS = r"(^|_)(archive|dwh)$"
_ALWAYS_PROTECT = ["gcp:composer/environment:Environment"]


def _protected_data(args: ResourceValidationArgs, report: ReportViolation) -> None:
    rx = re.compile(_opt(args, "protectedDatasets", _PROTECTED_DATASETS))
    t, props = args.resource_type, args.props
    if t == DATASET and rx.search(str(_get(props, "datasetId", ""))):
        if not _protected(args):
            report(f"dataset {_get(props, 'datasetId')} holds permanent data: set the Pulumi `protect` option")
        if _get(props, "deletionPolicy") != "PREVENT":
            report(f"dataset {_get(props, 'datasetId')}: deletionPolicy is {_get(props, 'deletionPolicy')!r}, expected 'PREVENT'")
        if _get(props, "deleteContentsOnDestroy") is True:
            report(f"dataset {_get(props, 'datasetId')}: deleteContentsOnDestroy would drop its tables with it")
    elif t == TABLE and rx.search(str(_get(props, "datasetId", ""))) and not _get(props, "view") and not _get(props, "materializedView"):
        where = f"{_get(props, 'datasetId')}.{_get(props, 'tableId')}"
        if _get(props, "deletionProtection") is not True:
            report(f"table {where} holds permanent data: deletionProtection must be true")
        if not _protected(args):
            report(f"table {where} holds permanent data: set the Pulumi `protect` option")
    elif t in _opt(args, "alwaysProtectTypes", _ALWAYS_PROTECT) and not _protected(args):
        report(f"{t.split(':')[-1]} {args.name}: set the Pulumi `protect` option (slow or costly to recreate)")


protected_data = ResourceValidationPolicy(
    name="protected-data",
    description="Permanent data (archive and DWH datasets and their tables) and costly resources are protected from deletion.",
    enforcement_level=MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "protectedDatasets": {"type": "string", "default": _PROTECTED_DATASETS, "description": "regex over datasetId"},
        "alwaysProtectTypes": {"type": "array", "items": {"type": "string"}, "default": _ALWAYS_PROTECT},
    }),
    validate=_protected_data,
)


# --------------------------------------------------------------------------- scheduled queries

_QUERY_PARAMS = ["query", "destination_table_name_template", "write_disposition", "partitioning_field"]
_WRITES = re.compile(r"(?is)^\s*(--[^\n]*\n\s*|/\*.*?\*/\s*)*(DECLARE|SET|BEGIN|MERGE|INSERT|UPDATE|DELETE|TRUNCATE|CREATE|DROP|ALTER|LOAD|EXPORT|CALL|IF|FOR|WHILE|LOOP|EXECUTE)\b"
                     r"|;\s*(--[^\n]*\n\s*)*(MERGE|INSERT|UPDATE|DELETE|TRUNCATE|CREATE|DROP|ALTER|LOAD|EXPORT)\b")


def statement_writes(query: str) -> bool:
    """Whether a scheduled query's text is DDL, DML or a script (not a plain SELECT)."""
    return bool(_WRITES.search(query or ""))


def _transfer_query_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TRANSFER_CONFIG or _get(args.props, "dataSourceId") != "scheduled_query":
        return
    params = _get(args.props, "params", {})
    keys = sorted(_keys(params))
    if "query" not in keys:
        report("a scheduled query without params.query")
        return
    unknown = [k for k in keys if k not in _QUERY_PARAMS]
    if unknown:
        report(f"unknown scheduled-query params {', '.join(unknown)} (expected {', '.join(_QUERY_PARAMS)})")
    if statement_writes(str(params["query"])) and keys != ["query"]:
        extra = [k for k in keys if k != "query"]
        report(f"a DDL/DML query writes its own target: params may hold only `query`, not {', '.join(extra)}")


transfer_query_only = ResourceValidationPolicy(
    name="scheduled-query-params",
    description="Scheduled queries that run DDL/DML take only `query` in params; destination settings belong to plain SELECTs.",
    enforcement_level=MANDATORY,
    validate=_transfer_query_only,
)


def _transfer_location(args: StackValidationArgs, report: ReportViolation) -> None:
    locations = {str(_get(r.props, "location")).upper() for r in args.resources if r.resource_type == DATASET and _get(r.props, "location")}
    configs = [r for r in args.resources if r.resource_type == TRANSFER_CONFIG]
    if not locations or not configs:
        args.not_applicable("no datasets or no transfer configs in this stack")
        return
    for c in configs:
        loc = _get(c.props, "location")
        if loc is None or str(loc).upper() not in locations:
            report(f"{c.name}: location {loc!r} is not where the stack's datasets are ({', '.join(sorted(locations))})", c.urn)


transfer_location = StackValidationPolicy(
    name="transfer-config-location",
    description="Data Transfer configs run in the location of the stack's datasets.",
    enforcement_level=MANDATORY,
    validate=_transfer_location,
)


POLICIES = [
    vm_no_external_ip,
    firewall_no_open_ingress,
    bucket_uniform_no_public,
    s3_public_access_blocked,
    no_primitive_or_admin_roles,
    project_roles_allowlist,
    no_authoritative_iam,
    no_public_members,
    custom_role_no_escalation,
    service_account_keys,
    labels_required,
    secrets_stay_in_sinks,
    no_credentials_in_plain_fields,
    protected_data,
    transfer_query_only,
    transfer_location,
]
