"""Pure rules the components apply (no Pulumi import; unit-tested on their own).

``prefixed(env, name) -> str``
    The physical-name prefix of a component's children: ``name`` when it already starts with
    ``<env>-``, else ``<env>-<name>``.
``gcs_lifecycle_rules(...) -> list[dict]``
    GCS lifecycle rules (pulumi-gcp ``BucketLifecycleRuleArgs`` as dicts, snake_case).
``s3_read_only_policy(bucket_arn) -> str``
    JSON IAM policy allowing only list + get on one bucket.
``s3_bucket_name_problem(name) -> str | None``
    What breaks Amazon S3's general purpose bucket naming rules (None when the name is valid).
``s3_landing_bucket_name(project, prefix, account_id) -> str``
    A globally unique default S3 bucket name: ``<project>-<prefix>-landing-<AWS account id>``.
``MACHINE_TYPES`` / ``machine_shape(machine_type) -> (vcpus, memory_gb)``
    Known Compute Engine shapes; ``custom-N-M`` / ``<family>-custom-N-M[-ext]`` (M in MB)
    are parsed. Unknown types raise ``ComponentArgsError`` (field ``machine_type``).
``check_machine_minimum(component, machine_type, min_vcpus, min_memory_gb, hint="")``
``service_account_id(env, service) -> str``
    ``<env>-<service>``, validated against GCP's account-id rule (6-30 chars).
``FORBIDDEN_ROLES``: roles no component ever grants.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Optional

from components.common import ComponentArgsError, require_env

#: Roles no component grants, at any level.
FORBIDDEN_ROLES = frozenset({"roles/owner", "roles/editor", "roles/bigquery.admin"})

# (vCPUs, memory GB)
MACHINE_TYPES: dict[str, tuple[float, float]] = {
    "e2-micro": (2, 1), "e2-small": (2, 2), "e2-medium": (2, 4),
    "e2-standard-2": (2, 8), "e2-standard-4": (4, 16), "e2-standard-8": (8, 32),
    "e2-standard-16": (16, 64), "e2-standard-32": (32, 128),
    "e2-highmem-2": (2, 16), "e2-highmem-4": (4, 32), "e2-highmem-8": (8, 64), "e2-highmem-16": (16, 128),
    "e2-highcpu-2": (2, 2), "e2-highcpu-4": (4, 4), "e2-highcpu-8": (8, 8), "e2-highcpu-16": (16, 16),
    "n1-standard-1": (1, 3.75), "n1-standard-2": (2, 7.5), "n1-standard-4": (4, 15), "n1-standard-8": (8, 30),
    "n1-highmem-2": (2, 13), "n1-highmem-4": (4, 26), "n1-highmem-8": (8, 52),
    "n2-standard-2": (2, 8), "n2-standard-4": (4, 16), "n2-standard-8": (8, 32), "n2-standard-16": (16, 64),
    "n2-highmem-2": (2, 16), "n2-highmem-4": (4, 32), "n2-highmem-8": (8, 64),
    "n2-highcpu-2": (2, 2), "n2-highcpu-4": (4, 4), "n2-highcpu-8": (8, 8),
    "n2d-standard-2": (2, 8), "n2d-standard-4": (4, 16), "n2d-standard-8": (8, 32),
    "n2d-highmem-2": (2, 16), "n2d-highmem-4": (4, 32),
    "t2d-standard-1": (1, 4), "t2d-standard-2": (2, 8), "t2d-standard-4": (4, 16), "t2d-standard-8": (8, 32),
    "c3-standard-4": (4, 16), "c3-standard-8": (8, 32), "c3-highmem-4": (4, 32),
    "n4-standard-2": (2, 8), "n4-standard-4": (4, 16), "n4-standard-8": (8, 32),
}

_CUSTOM = re.compile(r"^(?:(?:e2|n1|n2|n2d|n4)-)?custom-(\d+)-(\d+)(-ext)?$")
_SA_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_ENV_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}-")


def prefixed(env: str, name: str) -> str:
    require_env("prefixed", env)
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9-]*[a-z0-9]$", name):
        raise ComponentArgsError("component", "name", "lower-case letters, digits and hyphens, starting with a letter", name)
    return name if name.startswith(f"{env}-") else f"{env}-{name}"


def machine_shape(machine_type: str, component: str = "ServiceVm") -> tuple[float, float]:
    """(vCPUs, memory GB) of a machine type; custom types are parsed (memory given in MB)."""
    if machine_type in MACHINE_TYPES:
        return MACHINE_TYPES[machine_type]
    m = _CUSTOM.match(machine_type or "")
    if m:
        return float(m.group(1)), int(m.group(2)) / 1024
    raise ComponentArgsError(
        component,
        "machine_type",
        "a known machine type (components.render.MACHINE_TYPES) or a custom type "
        "'custom-<vCPUs>-<memory MB>' / '<family>-custom-<vCPUs>-<memory MB>'",
        machine_type,
    )


def check_machine_minimum(
    component: str, machine_type: str, min_vcpus: float, min_memory_gb: float, hint: str = ""
) -> tuple[float, float]:
    vcpus, mem = machine_shape(machine_type, component)
    if vcpus < min_vcpus or mem < min_memory_gb:
        expected = f"a machine type with at least {min_vcpus:g} vCPUs and {min_memory_gb:g} GB memory"
        if hint:
            expected += f" ({hint})"
        raise ComponentArgsError(component, "machine_type", expected, f"{machine_type}: {vcpus:g} vCPUs, {mem:g} GB")
    return vcpus, mem


def service_account_id(env: str, service: str, component: str = "ServiceVm") -> str:
    """``<env>-<service>``; GCP account ids are 6-30 chars, lower-case, start with a letter."""
    account = f"{env}-{service}"
    if not _SA_ID.match(account):
        raise ComponentArgsError(
            component,
            "service",
            "a name giving a service account id '<env>-<service>' of 6-30 lower-case letters, digits "
            "and hyphens (starting with a letter, not ending with a hyphen)",
            account,
        )
    return account


def gcs_lifecycle_rules(
    *,
    nearline_after_days: Optional[int] = None,
    coldline_after_days: Optional[int] = None,
    delete_after_days: Optional[int] = None,
    noncurrent_delete_after_days: Optional[int] = None,
    keep_noncurrent_versions: Optional[int] = None,
) -> list[dict]:
    """Lifecycle rules for a versioned landing bucket.

    - live objects move to NEARLINE / COLDLINE after N days, and are deleted after N days;
    - noncurrent versions are deleted N days after they became noncurrent, and/or when more
      than ``keep_noncurrent_versions`` newer versions exist.
    """
    for field, value in (
        ("nearline_after_days", nearline_after_days),
        ("coldline_after_days", coldline_after_days),
        ("delete_after_days", delete_after_days),
        ("noncurrent_delete_after_days", noncurrent_delete_after_days),
        ("keep_noncurrent_versions", keep_noncurrent_versions),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ComponentArgsError("DataLake", field, "a positive integer or None", value)
    if nearline_after_days and coldline_after_days and coldline_after_days <= nearline_after_days:
        raise ComponentArgsError("DataLake", "coldline_after_days", "more days than nearline_after_days", coldline_after_days)
    if delete_after_days:
        for field, value in (("nearline_after_days", nearline_after_days), ("coldline_after_days", coldline_after_days)):
            if value and value >= delete_after_days:
                raise ComponentArgsError("DataLake", field, "fewer days than delete_after_days", value)

    rules: list[dict] = []
    if nearline_after_days:
        rules.append({
            "action": {"type": "SetStorageClass", "storage_class": "NEARLINE"},
            "condition": {"age": nearline_after_days, "with_state": "LIVE", "matches_storage_classes": ["STANDARD"]},
        })
    if coldline_after_days:
        rules.append({
            "action": {"type": "SetStorageClass", "storage_class": "COLDLINE"},
            "condition": {"age": coldline_after_days, "with_state": "LIVE", "matches_storage_classes": ["STANDARD", "NEARLINE"]},
        })
    if delete_after_days:
        rules.append({"action": {"type": "Delete"}, "condition": {"age": delete_after_days, "with_state": "ANY"}})
    if noncurrent_delete_after_days:
        rules.append({
            "action": {"type": "Delete"},
            "condition": {"days_since_noncurrent_time": noncurrent_delete_after_days, "with_state": "ARCHIVED"},
        })
    if keep_noncurrent_versions:
        rules.append({
            "action": {"type": "Delete"},
            "condition": {"num_newer_versions": keep_noncurrent_versions, "with_state": "ARCHIVED"},
        })
    return rules


#: Amazon S3 general purpose bucket naming rules ("General purpose bucket naming rules",
#: docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html): reserved prefixes
#: and suffixes, besides length, characters, adjacent periods and IP-address form.
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_S3_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def s3_bucket_name_problem(name: object) -> Optional[str]:
    """Why ``name`` is not a valid S3 general purpose bucket name, or None."""
    if not isinstance(name, str) or not 3 <= len(name) <= 63:
        return "3 to 63 characters"
    if not _S3_NAME.match(name):
        return "only lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name:
        return "no two adjacent periods"
    if _IPV4.match(name):
        return "not formatted as an IP address"
    for p in _S3_RESERVED_PREFIXES:
        if name.startswith(p):
            return f"not starting with the reserved prefix {p!r}"
    for sfx in _S3_RESERVED_SUFFIXES:
        if name.endswith(sfx):
            return f"not ending with the reserved suffix {sfx!r}"
    return None


def s3_landing_bucket_name(project: str, prefix: str, account_id: str) -> str:
    """A default S3 landing bucket name that is globally unique: S3 names are global across
    all AWS accounts, so ``<prefix>-landing`` would collide with anyone else's. The GCP
    project id (globally unique among GCP projects) and the AWS account id (the bucket's
    owner) make it unique; ``<project>-<prefix>-landing-<account>``, shortened (first the
    ``-landing``, then the prefix to a stable hash) when longer than S3's 63 characters."""
    if not isinstance(account_id, str) or not re.fullmatch(r"\d{12}", account_id):
        raise ComponentArgsError("DataLake", "s3.account_id", "a 12-digit AWS account id", account_id)
    candidates = (
        f"{project}-{prefix}-landing-{account_id}",
        f"{project}-{prefix}-{account_id}",
        f"{project}-{hashlib.sha256(prefix.encode()).hexdigest()[:8]}-{account_id}",
    )
    for name in candidates:
        if s3_bucket_name_problem(name) is None:
            return name
    raise ComponentArgsError(
        "DataLake", "s3.bucket_name", f"a valid S3 bucket name; none can be derived from project {project!r} ({s3_bucket_name_problem(candidates[-1])})", candidates[-1]
    )


def s3_read_only_policy(bucket_arn: str) -> str:
    """An IAM policy that can only list the bucket and read its objects."""
    if not isinstance(bucket_arn, str) or not bucket_arn.startswith("arn:aws:s3:::") or "*" in bucket_arn or "/" in bucket_arn:
        raise ComponentArgsError("DataLake", "s3.bucket_arn", "the ARN of one bucket, 'arn:aws:s3:::<bucket>'", bucket_arn)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ListLandingBucket", "Effect": "Allow",
                 "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": [bucket_arn]},
                {"Sid": "ReadLandingObjects", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": [f"{bucket_arn}/*"]},
            ],
        },
        sort_keys=True,
    )
