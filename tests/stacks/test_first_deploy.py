"""What a first `pulumi up` on a new project needs, proven on the dev, prod and S3 plans.

* Every grant to a Google-managed service agent waits for a resource that creates that agent
  (``gcp.projects.ServiceIdentity``), which waits for the agent's API; the transfer configs,
  Composer and the DAG wait for those grants. "Waits for" follows the recorded dependencies
  transitively, parents included (``Recording.waits_for``).
* No VM runs an image set that mixes versions: the images in each VM's compose file are
  exactly one whole set from ``components.images``, each by the content digest the registry
  returned for its tag (``image@sha256:...``), never by a tag alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.images import IMAGE_SETS, service_references, split_reference
from components.testing import registry_digest
from components.service_agents import AGENT_EMAIL, SERVICE_AGENTS

S3_TABLES = Path(__file__).resolve().parent / "tables_s3"
S3_ON = {"flexyboots:datalake": {"s3": {"enabled": True, "region": "eu-west-1"}}}
IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"


VARIANTS = ["dev", "prod", "dev+s3", "dev+amundsen"]


@pytest.fixture(params=VARIANTS)
def variant(request):
    return request.param


@pytest.fixture
def plan(variant, plans):
    if variant == "dev+s3":
        return plans("dev", tables=S3_TABLES, **S3_ON)
    if variant == "dev+amundsen":
        return plans("dev", **{"flexyboots:services": {"amundsen": {"enabled": True}}})
    return plans(variant)


def _members(r) -> list[str]:
    m = r.inputs.get("member")
    return [m] if isinstance(m, str) else list(r.inputs.get("members") or [])


def _agent_grants(plan):
    return [(r, m) for r in plan.resources if "role" in r.inputs for m in _members(r) if AGENT_EMAIL.match(m.split(":", 1)[-1])]


def _of(plan, type_):
    return [r for r in plan.resources if r.type == type_]


def test_every_grant_to_a_google_agent_waits_for_the_resource_that_creates_it(plan):
    grants = _agent_grants(plan)
    assert grants, "the platform grants to the Data Transfer agent (and Composer's in prod)"
    identities = {r.outputs["member"]: r for r in _of(plan, IDENTITY)}
    apis = {r.inputs["service"]: r for r in _of(plan, "gcp:projects/service:Service")}
    for grant, member in grants:
        identity = identities.get(member)
        assert identity is not None, f"{grant.name} grants {grant.inputs['role']} to {member}, which nothing creates"
        assert identity.urn in plan.waits_for(grant), f"{grant.name} does not wait for {identity.name}"
        # API -> identity
        assert apis[identity.inputs["service"]].urn in plan.waits_for(identity), identity.name
    # each identity is one the platform knows, with its service agent role granted to it
    for identity in identities.values():
        agent = SERVICE_AGENTS[identity.inputs["service"]]
        assert any(g.inputs["role"] == agent.role and m == identity.outputs["member"] for g, m in grants)


def test_transfer_configs_composer_and_the_dag_come_after_the_agent_grants(plan, variant):
    grants = _agent_grants(plan)
    dts = [g for g, m in grants if "gcp-sa-bigquerydatatransfer" in m]
    configs = _of(plan, "gcp:bigquery/dataTransferConfig:DataTransferConfig")
    assert configs
    shared = {g.urn for g in dts if g.type != "gcp:serviceaccount/iAMMember:IAMMember"}  # agent role + publisher
    assert len(shared) == 2
    for cfg in configs:
        waits = plan.waits_for(cfg)
        assert shared <= waits, cfg.name
        layer = cfg.name.rsplit("-", 1)[1]
        token = [g for g in dts if g.name == f"{plan.stack}-dts-{layer}-agent-token-creator"]
        assert len(token) == 1 and token[0].urn in waits, cfg.name
    composer = [g for g, m in grants if "cloudcomposer-accounts" in m]
    envs = _of(plan, "gcp:composer/environment:Environment")
    if variant == "prod":
        assert envs and len(composer) == 2
        dags = _of(plan, "gcp:storage/bucketObject:BucketObject")  # the DAG file and its manifest
        assert len(dags) == 2
        for dag in dags:
            for target in (envs[0], dag):
                assert {g.urn for g in composer} <= plan.waits_for(target), target.name
            # the DAG runs the six steps (the manual-only full refresh is not part of it)
            assert {c.urn for c in configs if not c.name.endswith("-refresh")} <= plan.waits_for(dag)
    else:
        assert not envs and not composer


def test_the_order_check_would_catch_an_assumed_agent(plans):
    """Not a tautology: a grant naming the agent without the identity is reported."""
    plan = plans("dev")
    (identity,) = _of(plan, IDENTITY)
    grant = next(g for g, _ in _agent_grants(plan))
    assert identity.urn in plan.waits_for(grant)
    topic = next(r for r in plan.resources if r.type == "gcp:pubsub/topic:Topic")
    assert identity.urn not in plan.waits_for(topic)


_COMPOSE = re.compile(r"<<'COMPOSE'\n(.*?)COMPOSE\n", re.S)


def test_no_vm_mixes_image_versions(plan, variant):
    vms = _of(plan, "gcp:compute/instance:Instance")
    assert vms
    sets = {frozenset(service_references(s)): name for name, s in IMAGE_SETS.items()}
    seen = set()
    for vm in vms:
        script = vm.inputs["metadataStartupScript"]
        for compose in _COMPOSE.findall(script):
            refs = [svc["image"] for svc in yaml.safe_load(compose)["services"].values()]
            tags = frozenset(ref.partition("@")[0] for ref in refs)
            assert tags in sets, f"{vm.name} runs {sorted(tags)}, not one whole image set from components.images"
            for ref in refs:  # by digest: the one the registry answered for that tag
                tag, _, digest = ref.partition("@")
                assert split_reference(ref)[2] and digest == registry_digest(tag), f"{vm.name}: {ref} is not pinned by digest"
            seen.add(sets[tags])
    expected = {"dev": {"metabase"}, "dev+s3": {"metabase"}, "prod": {"metabase", "amundsen"}, "dev+amundsen": {"amundsen"}}
    assert seen == expected[variant]
