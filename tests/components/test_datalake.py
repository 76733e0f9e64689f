"""DataLake under Pulumi mocks: a locked-down GCS landing bucket, optional S3 landing bucket."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.common import ComponentArgsError
from components.datalake import DataLake, DataLakeArgs, S3LandingArgs
from components.testing import SECRET, run_program

BUCKET = "gcp:storage/bucket:Bucket"


def _program(**over):
    def program():
        lake = DataLake("lake", DataLakeArgs(env="dev", project="acme-data-dev", **over))
        pulumi.export("bucket_name", lake.bucket_name)
        pulumi.export("bucket_url", lake.bucket_url)
        if lake.s3_bucket is not None:
            pulumi.export("s3_bucket_name", lake.s3_bucket_name)
            pulumi.export("s3_access_key_id", lake.s3_access_key_id)
            pulumi.export("s3_secret_access_key", lake.s3_secret_access_key)
        else:
            assert lake.s3_bucket_name is None and lake.s3_secret_access_key is None
    return program


@pytest.fixture(scope="module")
def gcs_only():
    return run_program(_program())


@pytest.fixture(scope="module")
def with_s3():
    return run_program(_program(s3=S3LandingArgs(), nearline_after_days=10, noncurrent_delete_after_days=7))


def test_gcs_inventory_and_outputs(gcs_only):
    assert gcs_only.count_by_type() == {"flexyboots:datalake:DataLake": 1, BUCKET: 1}
    assert gcs_only.exports == {"bucket_name": "acme-data-dev-dev-lake-landing", "bucket_url": "gs://acme-data-dev-dev-lake-landing"}


def test_bucket_is_locked_down_versioned_and_labelled(gcs_only, violations):
    b = gcs_only.get("dev-lake-landing").inputs
    assert b["uniformBucketLevelAccess"] is True
    assert b["publicAccessPrevention"] == "enforced"
    assert b["versioning"] == {"enabled": True}
    assert b["forceDestroy"] is False
    assert b["labels"] == {"env": "dev", "component": "datalake", "managed-by": "pulumi"}
    assert violations(gcs_only, "gcs-bucket-uniform-no-public", "labels-required") == []


def test_lifecycle_rules_follow_the_args(gcs_only, with_s3):
    default = gcs_only.get("dev-lake-landing").inputs["lifecycleRules"]
    assert {"action": {"type": "SetStorageClass", "storageClass": "NEARLINE"},
            "condition": {"age": 30, "withState": "LIVE", "matchesStorageClasses": ["STANDARD"]}} in default
    custom = with_s3.get("dev-lake-landing").inputs["lifecycleRules"]
    ages = {r["action"].get("storageClass"): r["condition"].get("age") for r in custom if r["action"]["type"] == "SetStorageClass"}
    assert ages == {"NEARLINE": 10}
    noncurrent = [r["condition"] for r in custom if "daysSinceNoncurrentTime" in r["condition"]]
    assert noncurrent == [{"daysSinceNoncurrentTime": 7, "withState": "ARCHIVED"}]


def test_no_lifecycle_when_all_rules_off():
    rec = run_program(_program(nearline_after_days=None, noncurrent_delete_after_days=None, keep_noncurrent_versions=None))
    assert not rec.get("dev-lake-landing").inputs.get("lifecycleRules")


def test_s3_inventory(with_s3):
    counts = with_s3.count_by_type()
    assert counts == {
        "flexyboots:datalake:DataLake": 1,
        BUCKET: 1,
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:iam/user:User": 1,
        "aws:iam/userPolicy:UserPolicy": 1,
        "aws:iam/accessKey:AccessKey": 1,
    }
    lake = with_s3.get("lake")
    assert all(r.parent == lake.urn for r in with_s3.resources if r is not lake)


def test_s3_bucket_is_private_versioned_and_encrypted(with_s3, violations):
    pab = with_s3.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0].inputs
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert pab["bucket"] == "acme-data-dev-dev-lake-landing-123456789012"
    ver = with_s3.of_type("aws:s3/bucketVersioning:BucketVersioning")[0].inputs
    assert ver["versioningConfiguration"] == {"status": "Enabled"}
    sse = with_s3.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")[0].inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    tags = with_s3.of_type("aws:s3/bucket:Bucket")[0].inputs["tags"]
    assert tags["managed-by"] == "pulumi" and tags["env"] == "dev"
    assert violations(with_s3, "labels-required") == [] and violations(with_s3) == []


def test_reader_policy_only_lists_and_reads_that_bucket(with_s3):
    policy = json.loads(with_s3.of_type("aws:iam/userPolicy:UserPolicy")[0].inputs["policy"])
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion"}
    assert {r for st in policy["Statement"] for r in st["Resource"]} == {"arn:aws:s3:::acme-data-dev-dev-lake-landing-123456789012", "arn:aws:s3:::acme-data-dev-dev-lake-landing-123456789012/*"}
    assert not any(a.endswith("*") or "Put" in a or "Delete" in a for a in actions)


def test_access_key_secret_is_a_pulumi_secret(with_s3):
    assert with_s3.secret_exports == {"s3_secret_access_key"}
    assert with_s3.exports["s3_access_key_id"].startswith("AKIA")
    assert with_s3.exports["s3_bucket_name"] == "acme-data-dev-dev-lake-landing-123456789012"
    assert with_s3.redacted_exports()["s3_secret_access_key"] == SECRET
    key = with_s3.of_type("aws:iam/accessKey:AccessKey")[0]
    assert "secret" in key.additional_secret_outputs


def test_s3_bucket_name_is_globally_unique_by_project_and_account():
    """S3 names are global across all AWS accounts: the default carries the GCP project (unique
    among GCP projects) and the AWS account the bucket is created in (from the provider's
    caller identity), and keeps S3's naming rules."""
    from components.render import s3_bucket_name_problem, s3_landing_bucket_name
    from components.testing import Mocks

    other = run_program(_program(s3=S3LandingArgs()), mocks=Mocks(project="acme-data-dev", aws_account_id="210987654321"))
    assert other.of_type("aws:s3/bucket:Bucket")[0].inputs["bucket"] == "acme-data-dev-dev-lake-landing-210987654321"
    # longest project (30) and env (16): still within 63 characters, still unique per account
    long = s3_landing_bucket_name("a" * 26 + "-xyz", "abcdefghijklmnop-datalake", "123456789012")
    assert len(long) <= 63 and long.endswith("-123456789012") and s3_bucket_name_problem(long) is None
    assert s3_landing_bucket_name("a" * 26 + "-xyz", "abcdefghijklmnop-datalake", "123456789012") == long
    assert long != s3_landing_bucket_name("a" * 26 + "-xyz", "abcdefghijklmnoq-datalake", "123456789012")


@pytest.mark.parametrize("name,problem", [
    ("ab", "3 to 63"),
    ("a" * 64, "3 to 63"),
    ("Upper-case", "lower-case"),
    ("under_score", "lower-case"),
    ("-dash-first", "starting and ending"),
    ("two..dots", "adjacent periods"),
    ("192.168.5.4", "IP address"),
    ("xn--punycode", "'xn--'"),
    ("sthree-bucket", "'sthree-'"),
    ("amzn-s3-demo-bucket", "'amzn-s3-demo-'"),
    ("my-bucket-s3alias", "'-s3alias'"),
    ("my-bucket--ol-s3", "'--ol-s3'"),
    ("my-bucket.mrap", "'.mrap'"),
    ("my-bucket--x-s3", "'--x-s3'"),
    ("my-bucket--table-s3", "'--table-s3'"),
    ("acme.landing-2025", None),
])
def test_s3_naming_rules(name, problem):
    from components.render import s3_bucket_name_problem

    got = s3_bucket_name_problem(name)
    assert (got is None) if problem is None else (problem in got), got


def test_s3_without_project_or_name_is_refused():
    with pytest.raises(ComponentArgsError, match=r"DataLake: s3.bucket_name: a globally unique S3 bucket name, or DataLakeArgs.project"):
        DataLake("lake", DataLakeArgs(env="dev", s3=S3LandingArgs()))


def test_kms_encryption_when_a_key_is_given():
    rec = run_program(_program(s3=S3LandingArgs(kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/abc", bucket_name="acme-landing")))
    sse = rec.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")[0].inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert sse["rules"][0]["bucketKeyEnabled"] is True
    assert rec.of_type("aws:s3/bucket:Bucket")[0].inputs["bucket"] == "acme-landing"


@pytest.mark.parametrize("over,field", [
    ({"bucket_name": "Has_Upper"}, "bucket_name"),
    ({"bucket_name": "my-goog-bucket"}, "bucket_name"),
    ({"bucket_name": "acme-landing"}, None),
    ({"force_destroy": "yes"}, "force_destroy"),
    ({"nearline_after_days": 0}, "nearline_after_days"),
    ({"extra_labels": {"env": "prod"}}, "extra"),
    ({"s3": S3LandingArgs(bucket_name="Bad_Name")}, "s3.bucket_name"),
    ({"s3": S3LandingArgs(bucket_name="landing-s3alias")}, "s3.bucket_name"),
    ({"s3": S3LandingArgs(bucket_name="acme-landing", kms_key_arn="alias/x")}, "s3.kms_key_arn"),
])
def test_validation_names_the_field(over, field):
    if field is None:  # a valid variant: no error
        DataLakeArgs(env="dev", **over).validate("dev-lake")
        return
    with pytest.raises(ComponentArgsError, match=rf": {field}: "):
        DataLake("lake", DataLakeArgs(env="dev", **over))
