"""Network under Pulumi mocks: private VPC, NAT, IAP-only firewall."""

from __future__ import annotations

import pytest

from components.common import ComponentArgsError
from components.network import IAP_TCP_RANGE, Network, NetworkArgs
from components.testing import run_program

FW = "gcp:compute/firewall:Firewall"


@pytest.fixture(scope="module")
def rec():
    return run_program(
        lambda: Network("net", NetworkArgs(env="dev", region="europe-west1", service_ports=[8000, 3000, 5000], project="acme-data-dev"))
    )


def test_inventory(rec):
    assert rec.count_by_type() == {
        "flexyboots:network:Network": 1,
        "gcp:compute/network:Network": 1,
        "gcp:compute/subnetwork:Subnetwork": 1,
        "gcp:compute/router:Router": 1,
        "gcp:compute/routerNat:RouterNat": 1,
        FW: 2,
    }
    comp = rec.get("net")
    assert all(r.parent == comp.urn for r in rec.resources if r is not comp)
    assert all(r.name.startswith("dev-net-") for r in rec.resources if r is not comp)


def test_vpc_without_auto_subnets_and_subnet_with_private_google_access(rec):
    assert rec.get("dev-net-vpc").inputs["autoCreateSubnetworks"] is False
    subnet = rec.get("dev-net-subnet").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert subnet["ipCidrRange"] == "10.10.0.0/20" and subnet["region"] == "europe-west1"


def test_nat_covers_the_subnet(rec):
    nat = rec.get("dev-net-nat").inputs
    assert nat["natIpAllocateOption"] == "AUTO_ONLY"
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat["subnetworks"][0]["name"] == rec.get("dev-net-subnet").id
    assert nat["router"] == "dev-net-router"


def test_firewall_admits_only_iap_to_ssh_and_service_ports_by_tag(rec, violations):
    rules = {r.name: r.inputs for r in rec.of_type(FW)}
    assert set(rules) == {"dev-net-allow-iap-ssh", "dev-net-allow-iap-services"}
    for rule in rules.values():
        assert rule["sourceRanges"] == [IAP_TCP_RANGE] == ["35.235.240.0/20"]
        assert rule["targetTags"] == ["dev-net-iap"]
        assert rule["direction"] == "INGRESS"
    assert rules["dev-net-allow-iap-ssh"]["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert rules["dev-net-allow-iap-services"]["allows"] == [{"protocol": "tcp", "ports": ["3000", "5000", "8000"]}]
    assert violations(rec, "firewall-no-open-ingress") == []
    assert violations(rec) == []


def test_no_service_ports_means_ssh_rule_only():
    rec = run_program(lambda: Network("net", NetworkArgs(env="prod", region="europe-west1")))
    assert [r.name for r in rec.of_type(FW)] == ["prod-net-allow-iap-ssh"]


def test_outputs_resolve():
    import pulumi

    def program():
        net = Network("net", NetworkArgs(env="dev", region="europe-west1"))
        assert net.iap_tag == "dev-net-iap"
        pulumi.export("subnet", net.subnet_self_link)
        pulumi.export("network", net.network_id)

    rec = run_program(program)
    assert rec.exports["subnet"].endswith("/dev-net-subnet")
    assert rec.exports["network"] == "dev-net-vpc_id"


@pytest.mark.parametrize("over,field", [
    ({"region": "europe-west1-b"}, "region"),
    ({"subnet_cidr": "0.0.0.0/0"}, "subnet_cidr"),
    ({"subnet_cidr": "10.0.0.1/20"}, "subnet_cidr"),
    ({"service_ports": [22]}, r"service_ports\[0\]"),
    ({"service_ports": [70000]}, r"service_ports\[0\]"),
    ({"service_ports": [80, 80]}, "service_ports"),
    ({"env": "Dev"}, "env"),
])
def test_validation_names_the_field(over, field):
    args = {"env": "dev", "region": "europe-west1", **over}
    with pytest.raises(ComponentArgsError, match=rf"^Network: {field}: "):
        Network("net", NetworkArgs(**args))
