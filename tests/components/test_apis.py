"""ProjectApis under Pulumi mocks."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pytest

from components.apis import PLATFORM_APIS, ProjectApis, ProjectApisArgs
from components.common import ComponentArgsError
from components.testing import run_program

SERVICE = "gcp:projects/service:Service"


def test_one_service_per_api_never_disabled_on_destroy():
    apis = ["compute.googleapis.com", "bigquery.googleapis.com", "secretmanager.googleapis.com"]
    rec = run_program(lambda: ProjectApis("apis", ProjectApisArgs(env="dev", apis=apis, project="acme-data-dev")))
    assert rec.count_by_type() == {"flexyboots:apis:ProjectApis": 1, SERVICE: 3}
    services = rec.of_type(SERVICE)
    assert sorted(s.inputs["service"] for s in services) == sorted(apis)
    for s in services:
        assert s.inputs["disableOnDestroy"] is False
        assert s.inputs["disableDependentServices"] is False
        assert s.inputs["project"] == "acme-data-dev"
        assert s.parent_type == "flexyboots:apis:ProjectApis"
        assert s.name.startswith("dev-apis-")


def test_default_is_the_platform_set_and_resources_are_usable_as_dependencies():
    def program():
        apis = ProjectApis("apis", ProjectApisArgs(env="prod"))
        assert set(apis.services) == set(PLATFORM_APIS) and apis.enabled == list(PLATFORM_APIS)
        gcp.compute.Network("vpc", auto_create_subnetworks=False,
                            opts=pulumi.ResourceOptions(depends_on=apis.depends_on("compute.googleapis.com")))
        with pytest.raises(KeyError, match="composer.googleapis.com"):
            apis.service("composer.googleapis.com")

    rec = run_program(program)
    assert len(rec.of_type(SERVICE)) == len(PLATFORM_APIS)
    compute = next(s for s in rec.of_type(SERVICE) if s.inputs["service"] == "compute.googleapis.com")
    assert rec.get("vpc").dependencies == [compute.urn]


@pytest.mark.parametrize("apis,field", [
    ([], "apis"),
    ("compute.googleapis.com", "apis"),
    (["compute"], r"apis\[0\]"),
    (["compute.googleapis.com", "compute.googleapis.com"], r"apis\[1\]"),
])
def test_validation_names_the_field(apis, field):
    with pytest.raises(ComponentArgsError, match=rf"^ProjectApis: {field}: "):
        ProjectApis("apis", ProjectApisArgs(env="dev", apis=apis))
