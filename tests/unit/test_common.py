"""Pure helpers of components.common and components.render (no Pulumi)."""

from __future__ import annotations

import json

import pytest

from components.common import (
    ComponentArgsError,
    labels,
    require_cidr,
    require_gcp_region,
    require_label_map,
    require_positive_int,
    resource_name,
)
from components.render import (
    FORBIDDEN_ROLES,
    check_machine_minimum,
    gcs_lifecycle_rules,
    machine_shape,
    prefixed,
    s3_read_only_policy,
    service_account_id,
)


def test_labels_carry_the_three_base_labels_and_extras():
    assert labels("dev", "network") == {"env": "dev", "component": "network", "managed-by": "pulumi"}
    assert labels("prod", "warehouse", {"layer": "dwh"})["layer"] == "dwh"


@pytest.mark.parametrize("extra", [{"env": "prod"}, {"managed-by": "me"}, {"component": "x"}])
def test_labels_refuse_overriding_base_labels(extra):
    with pytest.raises(ComponentArgsError, match="labels: extra"):
        labels("dev", "network", extra)


@pytest.mark.parametrize("env", ["", "Dev", "1dev", "dev-1", "averyveryverylongenvname"])
def test_labels_refuse_bad_env(env):
    with pytest.raises(ComponentArgsError, match="labels: env: 1-16 lower-case"):
        labels(env, "network")


def test_label_map_validates_keys_and_values():
    with pytest.raises(ComponentArgsError, match=r"X: extra\['Team'\]"):
        require_label_map("X", "extra", {"Team": "data"})
    with pytest.raises(ComponentArgsError, match=r"X: extra\['team'\]: a label value"):
        require_label_map("X", "extra", {"team": "Data Team"})
    assert require_label_map("X", "extra", None) == {}


def test_resource_name_prefixes_env_and_cleans_parts():
    assert resource_name("dev", "Landing", "bucket") == "dev-landing-bucket"
    assert resource_name("prod", "my_table", "x") == "prod-my-table-x"
    with pytest.raises(ComponentArgsError, match="resource_name: parts: a name of at most 10"):
        resource_name("dev", "a-very-long-part", max_len=10)
    with pytest.raises(ComponentArgsError, match=r"parts\[0\]"):
        resource_name("dev", "--")


def test_error_message_names_component_field_and_value():
    err = ComponentArgsError("Network", "region", "a GCP region", "nowhere")
    assert str(err) == "Network: region: a GCP region (got 'nowhere')"
    assert isinstance(err, ValueError) and err.field == "region" and err.component == "Network"


def test_validators():
    assert require_gcp_region("N", "region", "europe-west1") == "europe-west1"
    with pytest.raises(ComponentArgsError, match="N: region"):
        require_gcp_region("N", "region", "europe-west1-b")
    assert require_cidr("N", "cidr", "10.0.0.0/20") == "10.0.0.0/20"
    for bad in ("0.0.0.0/0", "10.0.0.1/20", "nonsense", "fd00::/8"):
        with pytest.raises(ComponentArgsError, match="N: cidr"):
            require_cidr("N", "cidr", bad)
    for bad in (0, -1, True, "3"):
        with pytest.raises(ComponentArgsError, match="N: n: a positive integer"):
            require_positive_int("N", "n", bad)


def test_prefixed_does_not_double_the_env():
    assert prefixed("dev", "net") == "dev-net"
    assert prefixed("dev", "dev-net") == "dev-net"
    assert prefixed("dev", "devnet") == "dev-devnet"


def test_machine_shapes_known_and_custom():
    assert machine_shape("e2-standard-4") == (4, 16)
    assert machine_shape("custom-4-8192") == (4, 8)
    assert machine_shape("n2-custom-2-10240-ext") == (2, 10)
    with pytest.raises(ComponentArgsError, match="ServiceVm: machine_type: a known machine type"):
        machine_shape("m9-imaginary-4")


def test_machine_minimum_names_the_requirement():
    assert check_machine_minimum("Amundsen", "e2-highmem-2", 2, 8) == (2, 16)
    with pytest.raises(ComponentArgsError, match=r"Amundsen: machine_type: .*at least 2 vCPUs and 8 GB.*e2-medium: 2 vCPUs, 4 GB"):
        check_machine_minimum("Amundsen", "e2-medium", 2, 8)


def test_service_account_id_limits():
    assert service_account_id("dev", "metabase") == "dev-metabase"
    with pytest.raises(ComponentArgsError, match="ServiceVm: service: .*6-30"):
        service_account_id("dev", "a-service-name-that-is-too-long")
    with pytest.raises(ComponentArgsError, match="ServiceVm: service"):
        service_account_id("dev", "x")  # 'dev-x' is 5 characters


def test_lifecycle_rules_render_each_requested_rule():
    rules = gcs_lifecycle_rules(nearline_after_days=30, noncurrent_delete_after_days=7, keep_noncurrent_versions=3)
    assert {"action": {"type": "SetStorageClass", "storage_class": "NEARLINE"},
            "condition": {"age": 30, "with_state": "LIVE", "matches_storage_classes": ["STANDARD"]}} in rules
    assert {"action": {"type": "Delete"}, "condition": {"days_since_noncurrent_time": 7, "with_state": "ARCHIVED"}} in rules
    assert {"action": {"type": "Delete"}, "condition": {"num_newer_versions": 3, "with_state": "ARCHIVED"}} in rules
    assert len(rules) == 3
    assert gcs_lifecycle_rules() == []


def test_lifecycle_rules_refuse_inconsistent_days():
    with pytest.raises(ComponentArgsError, match="DataLake: coldline_after_days"):
        gcs_lifecycle_rules(nearline_after_days=30, coldline_after_days=10)
    with pytest.raises(ComponentArgsError, match="DataLake: nearline_after_days: fewer days than delete_after_days"):
        gcs_lifecycle_rules(nearline_after_days=30, delete_after_days=30)
    with pytest.raises(ComponentArgsError, match="DataLake: keep_noncurrent_versions"):
        gcs_lifecycle_rules(keep_noncurrent_versions=0)


def test_s3_policy_is_read_only_on_one_bucket():
    doc = json.loads(s3_read_only_policy("arn:aws:s3:::landing"))
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    resources = {r for st in doc["Statement"] for r in st["Resource"]}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion"}
    assert resources == {"arn:aws:s3:::landing", "arn:aws:s3:::landing/*"}
    assert all(st["Effect"] == "Allow" for st in doc["Statement"])
    for bad in ("arn:aws:s3:::*", "landing", "arn:aws:s3:::landing/x"):
        with pytest.raises(ComponentArgsError, match="DataLake: s3.bucket_arn"):
            s3_read_only_policy(bad)


def test_forbidden_roles():
    assert {"roles/owner", "roles/editor", "roles/bigquery.admin"} <= FORBIDDEN_ROLES
