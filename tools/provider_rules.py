"""Regenerate ``stacks/provider_rules.json``: which inputs force a new resource (ForceNew), per type.

Source of truth: terraform-provider-google, the upstream pulumi-gcp bridges (pulumi-gcp builds
from its google-beta fork; the ForceNew flags of these resources are the same in both). The
script reads each resource's Go schema (``ForceNew: true`` attributes, with their nesting and
whether they are lists), maps Terraform names to Pulumi's input names with the installed
pulumi_gcp SDK (camelCase; list blocks are pluralized), and records file and line of every rule.

    python tools/provider_rules.py /path/to/terraform-provider-google > stacks/provider_rules.json

Rules that live in CustomizeDiff functions (BigQuery table schema, VM startup script, disk
shrink) are not flags: :mod:`stacks.replacement` implements them, citing the same files.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

#: Pulumi type -> Terraform resource file (google/...)
FILES = {
    "gcp:bigquery/dataset:Dataset": "google/services/bigquery/resource_bigquery_dataset.go",
    "gcp:bigquery/table:Table": "google/services/bigquery/resource_bigquery_table.go",
    "gcp:bigquery/dataTransferConfig:DataTransferConfig": "google/services/bigquerydatatransfer/resource_bigquery_data_transfer_config.go",
    "gcp:compute/instance:Instance": "google/services/compute/resource_compute_instance.go",
    "gcp:compute/disk:Disk": "google/services/compute/resource_compute_disk.go",
    "gcp:compute/firewall:Firewall": "google/services/compute/resource_compute_firewall.go",
    "gcp:compute/network:Network": "google/services/compute/resource_compute_network.go",
    "gcp:compute/subnetwork:Subnetwork": "google/services/compute/resource_compute_subnetwork.go",
    "gcp:compute/router:Router": "google/services/compute/resource_compute_router.go",
    "gcp:compute/routerNat:RouterNat": "google/services/compute/resource_compute_router_nat.go",
    "gcp:projects/service:Service": "google/services/resourcemanager/resource_google_project_service.go",
    "gcp:projects/iAMCustomRole:IAMCustomRole": "google/services/resourcemanager/resource_google_project_iam_custom_role.go",
    "gcp:serviceaccount/account:Account": "google/services/resourcemanager/resource_google_service_account.go",
    "gcp:pubsub/topic:Topic": "google/services/pubsub/resource_pubsub_topic.go",
    "gcp:secretmanager/secret:Secret": "google/services/secretmanager/resource_secret_manager_secret.go",
    "gcp:secretmanager/secretVersion:SecretVersion": "google/services/secretmanager/resource_secret_manager_secret_version.go",
    "gcp:storage/bucket:Bucket": "google/services/storage/resource_storage_bucket.go",
    "gcp:storage/bucketObject:BucketObject": "google/services/storage/resource_storage_bucket_object.go",
    "gcp:composer/environment:Environment": "google/services/composer/resource_composer_environment.go",
    # every *IAMMember resource is built from this one schema (role, member, condition)
    "*IAMMember": "google/tpgiamresource/resource_iam_member.go",
}

_KEY = re.compile(r'^\s*"([a-z0-9_]+)":\s*\{')
_TYPE = re.compile(r"\bType:\s*schema\.(Type\w+)")


def force_new(text: str) -> list:
    """[(tf_path, is_list, line)] of the ``ForceNew: true`` attributes, first schema occurrence."""
    stack: list = []  # [key, depth at open, tf type]
    depth, out, seen = 0, [], set()
    for i, line in enumerate(text.splitlines(), 1):
        code = re.sub(r"`[^`]*`", "``", re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.split("//")[0]))
        m = _KEY.match(line)
        if m:
            stack.append([m.group(1), depth, None])
        t = _TYPE.search(line)
        if t and stack and stack[-1][2] is None:
            stack[-1][2] = t.group(1)
        if re.search(r"\bForceNew:\s*true", line) and stack:
            path = ".".join(k for k, _, _ in stack)
            if path not in seen:
                seen.add(path)
                out.append((path, stack[-1][2] in ("TypeList", "TypeSet"), i))
        depth += code.count("{") - code.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return out


def _camel(s: str) -> str:
    head, *rest = s.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _params(cls) -> set:
    try:
        return set(inspect.signature(cls.__init__ if not hasattr(cls, "_internal_init") else cls._internal_init).parameters)
    except (TypeError, ValueError):
        return set()


def pulumi_path(pulumi_type: str, tf_path: str) -> str:
    """``network_interface.nic_type`` -> ``networkInterfaces.nicType`` using the SDK's names."""
    if pulumi_type.startswith("*"):
        return ".".join(_camel(p) for p in tf_path.split("."))
    module, cls_name = pulumi_type.split(":")[1].split("/")[0], pulumi_type.split(":")[2]
    mod = importlib.import_module(f"pulumi_gcp.{module}")
    inputs = importlib.import_module(f"pulumi_gcp.{module}._inputs")
    params, prefix, out = _params(getattr(mod, cls_name)), cls_name, []
    for seg in tf_path.split("."):
        name = seg if seg in params else next((seg + s for s in ("s", "es") if seg + s in params), seg)
        out.append(_camel(name))
        prefix += _camel(seg)[:1].upper() + _camel(seg)[1:]
        params = _params(getattr(inputs, prefix + "Args", None) or object)
    return ".".join(out)


def main(repo: str) -> dict:
    head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    changelog = subprocess.run(["git", "-C", repo, "show", "HEAD:CHANGELOG.md"], capture_output=True, text=True, check=True).stdout
    released = re.findall(r"^## (\d+\.\d+\.\d+) \((?!Unreleased)", changelog, re.M)
    rules: dict = {}
    for ptype, path in FILES.items():
        text = subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout
        rules[ptype] = [
            {"path": pulumi_path(ptype, tf), "tf": tf, "list": is_list, "source": f"{path}:{line}"}
            for tf, is_list, line in force_new(text)
        ]
    return {
        "source": f"hashicorp/terraform-provider-google@{head[:12]} (v{released[0] if released else '?'})",
        "note": "ForceNew attributes: a change forces a new resource (a list-valued rule: when items are added or removed)",
        "rules": rules,
    }


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
