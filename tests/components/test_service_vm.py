"""ServiceVm and its presets under Pulumi mocks: private Shielded VMs, separate data disks,
least-privilege identities, Metabase's password in Secret Manager only."""

from __future__ import annotations

import pulumi
import pytest

from components.common import ComponentArgsError
from components.service_vm import (
    Airbyte,
    AirbyteArgs,
    Amundsen,
    AmundsenArgs,
    Metabase,
    MetabaseArgs,
    ServiceVm,
    ServiceVmArgs,
)
from components.testing import run_program

PROJECT = "acme-data-dev"
SUBNET = "projects/acme-data-dev/regions/europe-west1/subnetworks/dev-net-subnet"
COMMON = dict(env="dev", project=PROJECT, zone="europe-west1-b", subnetwork=SUBNET, network_tags=["dev-net-iap"])
INSTANCE = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
DS_IAM = "gcp:bigquery/datasetIamMember:DatasetIamMember"
DATASETS = {"staging": "dev_staging", "dwh": "dev_dwh", "archive": "dev_archive"}


@pytest.fixture(scope="module")
def platform():
    """All three presets plus a plain ServiceVm, in one program."""

    def program():
        plain = ServiceVm("tool", ServiceVmArgs(**COMMON, service="tool", startup_script="#!/bin/bash\necho hi\n"))
        ab = Airbyte("airbyte", AirbyteArgs(**COMMON, landing_bucket="acme-landing", staging_dataset_id=DATASETS["staging"]))
        mb = Metabase("metabase", MetabaseArgs(**COMMON, dwh_dataset_id=pulumi.Output.from_input(DATASETS["dwh"]), protect_data_disk=True))
        am = Amundsen("amundsen", AmundsenArgs(**COMMON, metadata_dataset_ids=DATASETS))
        pulumi.export("metabase_health", mb.health_check_path)
        pulumi.export("metabase_secret", mb.db_password_secret_id)
        pulumi.export("metabase_ip", mb.internal_ip)
        pulumi.export("emails", {"tool": plain.service_account_email, "airbyte": ab.service_account_email,
                                 "metabase": mb.service_account_email, "amundsen": am.service_account_email})
        pulumi.export("protected", {"metabase": mb.data_disk_protected, "airbyte": ab.data_disk_protected})

    return run_program(program, config={"gcp:project": PROJECT})


def _in(rec, component_name, type_=None):
    comp = rec.get(component_name)
    return [r for r in rec.children(comp) if type_ is None or r.type == type_]


def _member(email):
    return f"serviceAccount:{email}"


def test_inventory(platform):
    counts = platform.count_by_type()
    assert counts[INSTANCE] == 4 and counts[DISK] == 4
    assert counts["gcp:serviceaccount/account:Account"] == 4
    assert counts["gcp:secretmanager/secret:Secret"] == 1
    assert counts["gcp:secretmanager/secretVersion:SecretVersion"] == 1
    assert counts["gcp:secretmanager/secretIamMember:SecretIamMember"] == 1
    assert counts["random:index/randomPassword:RandomPassword"] == 1
    assert counts["gcp:storage/bucketIAMMember:BucketIAMMember"] == 1
    # airbyte staging, amundsen x3; Metabase's VM account gets no BigQuery role (its driver
    # cannot use it) and this Metabase has no BigQuery key
    assert counts[DS_IAM] == 1 + 3
    # 2 default project roles each + jobUser for airbyte
    assert counts[PROJECT_IAM] == 4 * 2 + 1
    assert "gcp:serviceaccount/key:Key" not in counts
    for comp, token in (("tool", "ServiceVm"), ("airbyte", "Airbyte"), ("metabase", "Metabase"), ("amundsen", "Amundsen")):
        assert platform.get(comp).type == f"flexyboots:service_vm:{token}"
        assert len(_in(platform, comp, INSTANCE)) == 1 and len(_in(platform, comp, DISK)) == 1


def test_vms_are_private_shielded_tagged_and_labelled(platform, violations):
    assert violations(platform, "vm-no-external-ip") == []
    for vm in platform.of_type(INSTANCE):
        i = vm.inputs
        assert i["networkInterfaces"] == [{"subnetwork": SUBNET, "accessConfigs": []}]
        assert i["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True}
        assert i["tags"] == ["dev-net-iap"]
        assert i["allowStoppingForUpdate"] is True
        assert i["metadata"]["enable-oslogin"] == "TRUE"
        assert i["metadataStartupScript"].startswith("#!/bin/bash")
        assert i["bootDisk"]["initializeParams"]["image"] == "debian-cloud/debian-12"
    assert violations(platform, "labels-required") == []
    assert platform.get("dev-airbyte-vm").inputs["labels"]["component"] == "airbyte"
    assert violations(platform) == []


def test_external_ip_only_when_asked(violations):
    rec = run_program(lambda: ServiceVm("tool", ServiceVmArgs(**COMMON, service="tool", external_ip=True)))
    assert len(violations(rec, "vm-no-external-ip")) == 1


def test_data_disk_is_separate_attached_and_protected_when_asked(platform):
    for name in ("tool", "airbyte", "metabase", "amundsen"):
        disk = platform.get(f"dev-{name}-data")
        vm = platform.get(f"dev-{name}-vm")
        assert disk.type == DISK and disk.inputs["zone"] == "europe-west1-b"
        assert vm.inputs["attachedDisks"] == [{"source": disk.outputs["selfLink"], "deviceName": "data", "mode": "READ_WRITE"}]
        assert disk.protect is (name == "metabase")
    assert platform.exports["protected"] == {"metabase": True, "airbyte": False}


def test_each_vm_runs_as_its_own_service_account(platform):
    emails = platform.exports["emails"]
    assert emails["airbyte"] == f"dev-airbyte@{PROJECT}.iam.gserviceaccount.com"
    assert len(set(emails.values())) == 4
    for name, email in emails.items():
        assert platform.get(f"dev-{name}-vm").inputs["serviceAccount"]["email"] == email


def test_no_owner_editor_or_project_wide_data_roles(platform, violations):
    assert violations(platform, "iam-no-primitive-or-admin-roles", "iam-project-roles-allowlist") == []
    project_roles = {(r.inputs["member"], r.inputs["role"]) for r in platform.of_type(PROJECT_IAM)}
    assert {role for _, role in project_roles} <= {"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/bigquery.jobUser"}
    emails = platform.exports["emails"]
    job_users = {m for m, role in project_roles if role == "roles/bigquery.jobUser"}
    assert job_users == {_member(emails["airbyte"])}


def test_airbyte_writes_landing_bucket_and_staging_only(platform):
    email = platform.exports["emails"]["airbyte"]
    bucket = _in(platform, "airbyte", "gcp:storage/bucketIAMMember:BucketIAMMember")
    assert [(b.inputs["bucket"], b.inputs["role"], b.inputs["member"]) for b in bucket] == [
        ("acme-landing", "roles/storage.objectAdmin", _member(email))]
    ds = _in(platform, "airbyte", DS_IAM)
    assert [(d.inputs["datasetId"], d.inputs["role"]) for d in ds] == [("dev_staging", "roles/bigquery.dataEditor")]
    script = platform.get("dev-airbyte-vm").inputs["metadataStartupScript"]
    assert "abctl local install" in script and "--low-resource-mode" not in script


def test_metabase_password_lives_in_secret_manager_only(platform):
    email = platform.exports["emails"]["metabase"]
    version = platform.of_type("gcp:secretmanager/secretVersion:SecretVersion")[0]
    password = version.inputs["secretData"]
    assert version.has_secret("secretData")  # a Pulumi secret, never plaintext in state
    assert platform.of_type("random:index/randomPassword:RandomPassword")[0].inputs["special"] is False
    secret = platform.of_type("gcp:secretmanager/secret:Secret")[0]
    assert secret.inputs["secretId"] == platform.exports["metabase_secret"] == "dev-metabase-db-password"
    assert secret.inputs["labels"]["managed-by"] == "pulumi"
    access = platform.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")[0].inputs
    assert access == {"project": PROJECT, "secretId": "dev-metabase-db-password",
                      "role": "roles/secretmanager.secretAccessor", "member": _member(email)}
    vm = platform.get("dev-metabase-vm")
    everything = repr(vm.inputs)
    assert password and password not in everything
    for r in platform.resources:  # the password appears nowhere but the secret version
        if r is not version and r.type != "random:index/randomPassword:RandomPassword":
            assert password not in repr(r.inputs) + repr(r.outputs), r.name
    script = vm.inputs["metadataStartupScript"]
    assert "gcloud secrets versions access latest --secret=dev-metabase-db-password" in script
    assert "MB_DB_TYPE: postgres" in script
    # the VM starts only after the secret and the accessor grant exist
    deps = set(vm.dependencies)
    assert version.urn in deps
    assert platform.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")[0].urn in deps


def test_metabase_health_and_no_bigquery_without_a_key(platform):
    assert platform.exports["metabase_health"] == "/api/health"
    assert platform.exports["metabase_ip"].startswith("10.10.0.")
    assert _in(platform, "metabase", DS_IAM) == []
    assert "bigquery-reader" not in platform.get("dev-metabase-vm").inputs["metadataStartupScript"]


@pytest.fixture(scope="module")
def metabase_with_key():
    def program():
        mb = Metabase("metabase", MetabaseArgs(**COMMON, dwh_dataset_id=DATASETS["dwh"], bigquery_key=True))
        pulumi.export("reader", mb.bigquery_reader_email)
        pulumi.export("vm_sa", mb.service_account_email)
        pulumi.export("key_secret", mb.bigquery_key_secret_id)

    return run_program(program, config={"gcp:project": PROJECT})


def test_metabase_reads_the_dwh_with_a_read_only_key_kept_in_secret_manager(metabase_with_key):
    rec = metabase_with_key
    reader, vm_sa = rec.exports["reader"], rec.exports["vm_sa"]
    assert reader == f"dev-metabase-bq@{PROJECT}.iam.gserviceaccount.com" and reader != vm_sa
    # the reader: dataViewer on dwh and jobUser, nothing else anywhere
    grants = {(r.type, r.inputs.get("datasetId"), r.inputs["role"]) for r in rec.resources
              if r.inputs.get("member") == _member(reader)}
    assert grants == {(DS_IAM, "dev_dwh", "roles/bigquery.dataViewer"), (PROJECT_IAM, None, "roles/bigquery.jobUser")}
    # one key, for the reader; its private key only ever in the secret version (a Pulumi secret)
    (key,) = rec.of_type("gcp:serviceaccount/key:Key")
    assert key.inputs["serviceAccountId"] == f"projects/{PROJECT}/serviceAccounts/{reader}"
    assert "privateKey" in key.additional_secret_outputs
    private = key.outputs["privateKey"]
    (version,) = [v for v in rec.of_type("gcp:secretmanager/secretVersion:SecretVersion") if v.inputs["secretData"] == private]
    assert version.has_secret("secretData") and version.inputs["isSecretDataBase64"] is True
    for r in rec.resources:
        if r not in (key, version):
            assert private not in repr(r.inputs), r.name
    assert private not in repr(rec.redacted_exports()) and "[secret]" in repr(version.redacted_inputs())
    # only the VM's account may read it
    secret = rec.get("dev-metabase-bigquery-reader-key-secret")
    assert secret.inputs["secretId"] == rec.exports["key_secret"] == "dev-metabase-bigquery-reader-key"
    access = rec.get("dev-metabase-bigquery-reader-key-accessor").inputs
    assert access["member"] == _member(vm_sa) and access["secretId"] == "dev-metabase-bigquery-reader-key"
    # read at boot (the VM waits for the key's version and access), mounted read-only
    vm = rec.get("dev-metabase-vm")
    assert version.urn in vm.dependencies and rec.get("dev-metabase-bigquery-reader-key-accessor").urn in vm.dependencies
    script = vm.inputs["metadataStartupScript"]
    assert "gcloud secrets versions access latest --secret=dev-metabase-bigquery-reader-key" in script
    assert "/run/flexyboots/metabase-bigquery-reader.json:/run/secrets/bigquery-reader.json:ro" in script
    # the VM's own account still has no BigQuery role
    assert not [r for r in rec.resources if r.inputs.get("member") == _member(vm_sa) and "bigquery" in r.inputs["role"]]


def test_amundsen_reads_metadata_only(platform):
    ds = _in(platform, "amundsen", DS_IAM)
    assert {(d.inputs["datasetId"], d.inputs["role"]) for d in ds} == {
        (v, "roles/bigquery.metadataViewer") for v in DATASETS.values()}
    assert not [r for r in _in(platform, "amundsen", PROJECT_IAM) if r.inputs["role"] == "roles/bigquery.jobUser"]
    assert "vm.max_map_count=262144" in platform.get("dev-amundsen-vm").inputs["metadataStartupScript"]


def test_depends_on_reaches_the_children():
    import pulumi_gcp as gcp

    def program():
        api = gcp.projects.Service("compute-api", service="compute.googleapis.com")
        ServiceVm("tool", ServiceVmArgs(**COMMON, service="tool", depends_on=[api]))

    rec = run_program(program)
    api = rec.get("compute-api")
    assert api.urn in rec.get("dev-tool-vm").dependencies
    assert api.urn in rec.get("dev-tool-sa").dependencies


# -- minimum sizes -----------------------------------------------------------------------------

def test_airbyte_refuses_small_machine_unless_low_resource_mode():
    with pytest.raises(ComponentArgsError, match=r"^Airbyte: machine_type: .*4 vCPUs and 8 GB.*low_resource_mode=True"):
        Airbyte("airbyte", AirbyteArgs(**COMMON, machine_type="e2-standard-2", landing_bucket="b", staging_dataset_id="d"))
    rec = run_program(lambda: Airbyte("airbyte", AirbyteArgs(
        **COMMON, machine_type="e2-standard-2", low_resource_mode=True, landing_bucket="b", staging_dataset_id="d")))
    assert "--low-resource-mode" in rec.get("dev-airbyte-vm").inputs["metadataStartupScript"]
    with pytest.raises(ComponentArgsError, match=r"^Airbyte: machine_type: .*low-resource-mode still needs"):
        Airbyte("airbyte", AirbyteArgs(**COMMON, machine_type="e2-medium", low_resource_mode=True, landing_bucket="b", staging_dataset_id="d"))


@pytest.mark.parametrize("machine_type,ok", [
    ("e2-standard-2", True), ("e2-highmem-2", True), ("custom-2-8192", True),
    ("e2-medium", False), ("n1-standard-2", False), ("custom-4-6144", False),
])
def test_amundsen_needs_8_gb(machine_type, ok):
    args = AmundsenArgs(**COMMON, machine_type=machine_type, metadata_dataset_ids=DATASETS, es_heap_mb=1024, neo4j_heap_mb=1024)
    if ok:
        rec = run_program(lambda: Amundsen("amundsen", args))
        assert rec.get("dev-amundsen-vm").inputs["machineType"] == machine_type
    else:
        with pytest.raises(ComponentArgsError, match=r"^Amundsen: machine_type: a machine type with at least 2 vCPUs and 8 GB"):
            Amundsen("amundsen", args)


def test_unknown_machine_type_is_a_clear_error():
    with pytest.raises(ComponentArgsError, match=r"^Metabase: machine_type: a known machine type .*custom-<vCPUs>-<memory MB>"):
        Metabase("metabase", MetabaseArgs(**COMMON, machine_type="z9-mega-1", dwh_dataset_id="d"))


# -- validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,args_cls,over,field", [
    (ServiceVm, ServiceVmArgs, {"service": "a-service-name-that-is-way-too-long"}, "service"),
    (ServiceVm, ServiceVmArgs, {"zone": "europe-west1"}, "zone"),
    (ServiceVm, ServiceVmArgs, {"project": "Acme"}, "project"),
    (ServiceVm, ServiceVmArgs, {"subnetwork": None}, "subnetwork"),
    (ServiceVm, ServiceVmArgs, {"network_tags": "dev-net-iap"}, "network_tags"),
    (ServiceVm, ServiceVmArgs, {"network_tags": ["Bad Tag"]}, r"network_tags\[0\]"),
    (ServiceVm, ServiceVmArgs, {"data_disk_gb": 5}, "data_disk_gb"),
    (ServiceVm, ServiceVmArgs, {"data_disk_type": "floppy"}, "data_disk_type"),
    (ServiceVm, ServiceVmArgs, {"external_ip": "no"}, "external_ip"),
    (ServiceVm, ServiceVmArgs, {"project_roles": ["roles/editor"]}, r"project_roles\[0\]"),
    (ServiceVm, ServiceVmArgs, {"project_roles": ["roles/bigquery.admin"]}, r"project_roles\[0\]"),
    (Airbyte, AirbyteArgs, {"staging_dataset_id": "d"}, "landing_bucket"),
    (Airbyte, AirbyteArgs, {"landing_bucket": "b"}, "staging_dataset_id"),
    (Metabase, MetabaseArgs, {}, "dwh_dataset_id"),
    (Metabase, MetabaseArgs, {"dwh_dataset_id": "d", "db_user": "Bad-User"}, "args: db_user"),
    (Amundsen, AmundsenArgs, {}, "metadata_dataset_ids"),
    (Amundsen, AmundsenArgs, {"metadata_dataset_ids": DATASETS, "es_heap_mb": 8000}, "es_heap_mb"),
    # image sets are taken whole: a single newer image cannot be slipped in
    (Amundsen, AmundsenArgs, {"metadata_dataset_ids": DATASETS, "images": {"search": "amundsendev/amundsen-search:2.11.1"}},
     "args: images"),
    (Metabase, MetabaseArgs, {"dwh_dataset_id": "d", "bigquery_key": "yes"}, "bigquery_key"),
])
def test_validation_names_the_field(cls, args_cls, over, field):
    component = cls.__name__
    with pytest.raises(ComponentArgsError, match=rf"^{component}: {field}: "):
        cls("svc", args_cls(**{**COMMON, **over}))


def test_args_class_must_match_the_preset():
    with pytest.raises(ComponentArgsError, match=r"^Metabase: args: a MetabaseArgs"):
        Metabase("metabase", ServiceVmArgs(**COMMON))


# -- images by digest ------------------------------------------------------------------------------

def _compose_images(script):
    import re

    import yaml

    (compose,) = re.findall(r"<<'COMPOSE'\n(.*?)COMPOSE\n", script, re.S)
    return {name: svc["image"] for name, svc in yaml.safe_load(compose)["services"].items()}


def test_vm_scripts_run_every_image_by_the_digest_resolved_at_deploy_time(platform):
    from components import images
    from components.testing import registry_digest

    for vm, image_set in (("dev-metabase-vm", images.METABASE), ("dev-amundsen-vm", images.AMUNDSEN)):
        script = platform.get(vm).inputs["metadataStartupScript"]
        refs = set(_compose_images(script).values())
        assert refs == {f"{ref}@{registry_digest(ref)}" for ref in images.service_references(image_set)}, vm
        for ref in image_set.references():  # no image by its tag alone
            assert f'image: "{ref}"' not in script
    # Airbyte: abctl pulls its own images (none of ours in its script)
    assert "image:" not in platform.get("dev-airbyte-vm").inputs["metadataStartupScript"]
    # the lookups need no Docker daemon on the deployer's machine
    registries = {p.name: p.inputs for p in platform.providers if p.type == "pulumi:providers:docker"}
    assert registries == {f"dev-{s}-registry": {"disableDockerDaemonCheck": "true"} for s in ("metabase", "amundsen")}


def test_moving_a_tag_is_a_new_digest_in_the_script():
    """Upgrading is a change of tags; the preview then shows the old and the new digest."""
    from components import images
    from components.images import image_set_from_tags
    from components.testing import registry_digest

    moved = image_set_from_tags({"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16"}, images.METABASE)

    def program():
        Metabase("metabase", MetabaseArgs(**COMMON, dwh_dataset_id="d", images=moved))

    rec = run_program(program, config={"gcp:project": PROJECT})
    refs = _compose_images(rec.get("dev-metabase-vm").inputs["metadataStartupScript"])
    assert refs["metabase"] == f"metabase/metabase:v0.51.1@{registry_digest('metabase/metabase:v0.51.1')}"
    assert refs["postgres"] == f"postgres:16@{registry_digest('postgres:16')}"
    assert registry_digest("metabase/metabase:v0.51.1") != registry_digest("metabase/metabase:v0.50.36")
