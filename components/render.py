"""Pure rules the components apply (no Pulumi import; unit-tested on their own).

``prefixed(env, name) -> str``
    The physical-name prefix of a component's children: ``name`` when it already starts with
    ``<env>-``, else ``<env>-<name>``.
``gcs_lifecycle_rules(...) -> list[dict]``
    GCS lifecycle rules (pulumi-gcp ``BucketLifecycleRuleArgs`` as dicts, snake_case).
``s3_read_only_policy(bucket_arn) -> str``
    JSON IAM policy allowing only list + get on one bucket.
``MACHINE_TYPES`` / ``machine_shape(machine_type) -> (vcpus, memory_gb)``
    Known Compute Engine shapes; ``custom-N-M`` / ``<family>-custom-N-M[-ext]`` (M in MB)
    are parsed. Unknown types raise ``ComponentArgsError`` (field ``machine_type``).
``check_machine_minimum(component, machine_type, min_vcpus, min_memory_gb, hint="")``
``service_account_id(env, service) -> str``
    ``<env>-<service>``, validated against GCP's account-id rule (6-30 chars).
``FORBIDDEN_ROLES``: roles no component ever grants.
"""

from __future__ import annotations

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
