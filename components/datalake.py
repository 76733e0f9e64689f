"""``DataLake``: the GCS landing bucket, plus an optional S3 landing bucket for AWS sources.

API (stable)::

    DataLake(name: str, args: DataLakeArgs, opts: pulumi.ResourceOptions | None = None)

``DataLakeArgs``
    ``env: str``
    ``location: str = "US"``                        bucket location (region or multi-region)
    ``project: str | None = None``                  also prefixes the default bucket name
    ``bucket_name: str | None = None``              default ``[<project>-]<prefix>-landing``
    ``force_destroy: bool = False``
    ``nearline_after_days: int | None = 30``        live objects -> NEARLINE
    ``coldline_after_days: int | None = None``      live objects -> COLDLINE
    ``delete_after_days: int | None = None``        delete live objects
    ``noncurrent_delete_after_days: int | None = 30``  delete old versions N days after replaced
    ``keep_noncurrent_versions: int | None = 3``    keep at most N old versions
    ``extra_labels: dict[str, str] | None = None``
    ``s3: S3LandingArgs | None = None``             create the S3 landing bucket when set
    ``depends_on: Sequence[pulumi.Resource] = ()``  e.g. the storage API Service

``S3LandingArgs``
    ``bucket_name: str | None = None``              default ``<project>-<prefix>-landing-<AWS account id>``
                                                    (S3 names are global: project and account make it
                                                    unique; ``components.render.s3_landing_bucket_name``)
    ``force_destroy: bool = False``
    ``kms_key_arn: str | None = None``              SSE-KMS with this key; default SSE-S3 (AES256)
    ``provider: pulumi.ProviderResource | None = None``  an explicit aws.Provider

GCS bucket: uniform bucket-level access, public access prevention ``enforced``, versioning,
lifecycle rules from the args, labels. S3 (pulumi-aws 7): ``s3.Bucket`` + separate
``s3.BucketVersioning`` (Enabled), ``s3.BucketServerSideEncryptionConfiguration``,
``s3.BucketPublicAccessBlock`` (all four true), ``s3.BucketOwnershipControls``
(BucketOwnerEnforced: ACLs off), an ``iam.User`` whose only permission is an inline
``iam.UserPolicy`` to list the bucket and read its objects, and its ``iam.AccessKey`` (for
BigQuery Data Transfer's ``amazon_s3`` source).

Outputs: ``bucket`` (resource), ``bucket_name``, ``bucket_url`` (``gs://...``), ``landing_uri``
(``gs://<name>`` as a plain string, known before anything is created: the SQL renders with it),
``env``, ``location``, and when S3 is on: ``s3_bucket``, ``s3_bucket_name``, ``s3_bucket_arn``, ``s3_access_key_id``,
``s3_secret_access_key`` (a Pulumi secret); all ``None`` without S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels, require_env, require_label_map
from components.render import (
    gcs_lifecycle_rules,
    prefixed,
    s3_bucket_name_problem,
    s3_landing_bucket_name,
    s3_read_only_policy,
)

TYPE = "flexyboots:datalake:DataLake"
COMPONENT_LABEL = "datalake"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")


@dataclass
class S3LandingArgs:
    bucket_name: Optional[str] = None
    force_destroy: bool = False
    kms_key_arn: Optional[str] = None
    provider: Optional[pulumi.ProviderResource] = None


@dataclass
class DataLakeArgs:
    env: str
    location: str = "US"
    project: Optional[str] = None
    bucket_name: Optional[str] = None
    force_destroy: bool = False
    nearline_after_days: Optional[int] = 30
    coldline_after_days: Optional[int] = None
    delete_after_days: Optional[int] = None
    noncurrent_delete_after_days: Optional[int] = 30
    keep_noncurrent_versions: Optional[int] = 3
    extra_labels: Optional[dict] = None
    s3: Optional[S3LandingArgs] = None
    depends_on: Sequence[pulumi.Resource] = ()

    def validate(self, prefix: str) -> None:
        require_env("DataLake", self.env)
        if not isinstance(self.location, str) or not self.location:
            raise ComponentArgsError("DataLake", "location", "a GCS location such as 'US' or 'europe-west1'", self.location)
        if not isinstance(self.force_destroy, bool):
            raise ComponentArgsError("DataLake", "force_destroy", "a bool", self.force_destroy)
        require_label_map("DataLake", "extra_labels", self.extra_labels)
        name = self.gcs_bucket_name(prefix)
        if not _BUCKET.match(name) or "goog" in name:
            raise ComponentArgsError(
                "DataLake", "bucket_name",
                "3-63 lower-case letters, digits, '-' or '_', starting and ending with a letter or digit, without 'goog'",
                name,
            )
        if self.s3 is not None:
            if not isinstance(self.s3, S3LandingArgs):
                raise ComponentArgsError("DataLake", "s3", "an S3LandingArgs or None", type(self.s3).__name__)
            if self.s3.bucket_name is not None:
                problem = s3_bucket_name_problem(self.s3.bucket_name)
                if problem:
                    raise ComponentArgsError("DataLake", "s3.bucket_name", f"a valid S3 bucket name: {problem}", self.s3.bucket_name)
            elif not self.project:
                raise ComponentArgsError(
                    "DataLake", "s3.bucket_name",
                    "a globally unique S3 bucket name, or DataLakeArgs.project to derive one (S3 names are global)",
                )
            else:  # the derived name must be valid for any account id
                s3_landing_bucket_name(self.project, prefix, "0" * 12)
            if self.s3.kms_key_arn is not None and not str(self.s3.kms_key_arn).startswith("arn:aws:kms:"):
                raise ComponentArgsError("DataLake", "s3.kms_key_arn", "a KMS key ARN 'arn:aws:kms:...' or None", self.s3.kms_key_arn)

    def gcs_bucket_name(self, prefix: str) -> str:
        if self.bucket_name:
            return self.bucket_name
        return f"{self.project}-{prefix}-landing" if self.project else f"{prefix}-landing"

    def s3_bucket_name(self, prefix: str, account_id: str) -> str:
        """The S3 landing bucket's name in the AWS account ``account_id``."""
        if self.s3 and self.s3.bucket_name:
            return self.s3.bucket_name
        return s3_landing_bucket_name(self.project, prefix, account_id)


class DataLake(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataLakeArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, DataLakeArgs):
            raise ComponentArgsError("DataLake", "args", "a DataLakeArgs", type(args).__name__)
        require_env("DataLake", args.env)
        prefix = prefixed(args.env, name)
        args.validate(prefix)
        rules = gcs_lifecycle_rules(
            nearline_after_days=args.nearline_after_days,
            coldline_after_days=args.coldline_after_days,
            delete_after_days=args.delete_after_days,
            noncurrent_delete_after_days=args.noncurrent_delete_after_days,
            keep_noncurrent_versions=args.keep_noncurrent_versions,
        )
        lbls = labels(args.env, COMPONENT_LABEL, args.extra_labels)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))

        self.bucket = gcp.storage.Bucket(
            f"{prefix}-landing",
            name=args.gcs_bucket_name(prefix),
            project=args.project,
            location=args.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            lifecycle_rules=rules,
            force_destroy=args.force_destroy,
            labels=lbls,
            opts=child,
        )
        self.bucket_name = self.bucket.name
        self.bucket_url = self.bucket.url
        self.landing_uri = f"gs://{args.gcs_bucket_name(prefix)}"
        self.env = args.env
        self.location = args.location

        self.s3_bucket = None
        self.s3_bucket_name = None
        self.s3_bucket_arn = None
        self.s3_access_key_id = None
        self.s3_secret_access_key = None
        self.s3_user = None
        if args.s3 is not None:
            self._s3(prefix, args, lbls)

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_url": self.bucket_url,
                "s3_bucket_name": self.s3_bucket_name,
                "s3_bucket_arn": self.s3_bucket_arn,
                "s3_access_key_id": self.s3_access_key_id,
                "s3_secret_access_key": self.s3_secret_access_key,
            }
        )

    def _s3(self, prefix: str, args: DataLakeArgs, lbls: dict) -> None:
        import pulumi_aws as aws  # only stacks with an S3 landing bucket need the AWS SDK loaded

        s3 = args.s3
        aws_opts = pulumi.ResourceOptions(parent=self, provider=s3.provider) if s3.provider else pulumi.ResourceOptions(parent=self)
        tags = {**lbls}
        if s3.bucket_name:
            name = s3.bucket_name
        else:  # S3 names are global: derive a unique one from the project, prefix and account
            invoke = pulumi.InvokeOptions(provider=s3.provider) if s3.provider else None
            account = aws.get_caller_identity_output(opts=invoke).account_id
            name = account.apply(lambda a: args.s3_bucket_name(prefix, a))
        bucket = aws.s3.Bucket(
            f"{prefix}-s3-landing",
            bucket=name,
            force_destroy=s3.force_destroy,
            tags=tags,
            opts=aws_opts,
        )
        dep = pulumi.ResourceOptions.merge(aws_opts, pulumi.ResourceOptions(depends_on=[bucket]))
        aws.s3.BucketOwnershipControls(
            f"{prefix}-s3-landing-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=dep,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{prefix}-s3-landing-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=dep,
        )
        aws.s3.BucketVersioning(
            f"{prefix}-s3-landing-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=dep,
        )
        if s3.kms_key_arn:
            sse = {"sse_algorithm": "aws:kms", "kms_master_key_id": s3.kms_key_arn}
        else:
            sse = {"sse_algorithm": "AES256"}
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{prefix}-s3-landing-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": sse, "bucket_key_enabled": bool(s3.kms_key_arn)}],
            opts=dep,
        )
        user = aws.iam.User(
            f"{prefix}-s3-landing-reader",
            name=f"{prefix}-s3-landing-reader",
            tags=tags,
            opts=aws_opts,
        )
        aws.iam.UserPolicy(
            f"{prefix}-s3-landing-read-only",
            user=user.name,
            policy=bucket.arn.apply(s3_read_only_policy),
            opts=aws_opts,
        )
        key = aws.iam.AccessKey(
            f"{prefix}-s3-landing-reader-key",
            user=user.name,
            opts=aws_opts,
        )
        self.s3_bucket = bucket
        self.s3_user = user
        self.s3_bucket_name = bucket.bucket
        self.s3_bucket_arn = bucket.arn
        self.s3_access_key_id = key.id
        self.s3_secret_access_key = pulumi.Output.secret(key.secret)
