"""The VM compose files validate against the Compose Specification's JSON schema, the schema
Docker Compose v2 itself validates every file with before loading it.

``tests/data/compose-spec.json`` is ``schema/compose-spec.json`` of github.com/compose-spec/
compose-go at tag v2.13.0 (commit 0670a1c375c19defea19147bd82eb126a7c33b29, 2026-06-29): the
file compose-go embeds and checks in ``schema.Validate`` (draft 2020-12; it also registers a
``duration`` format, which this schema version uses nowhere). What only Docker confirms
(pulling, networking, interpolation at ``up``) is listed in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from components import images, services, startup_scripts as ss

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "data" / "compose-spec.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
D = "sha256:" + "b" * 64


def _problems(doc) -> list[str]:
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


COMPOSE_FILES = {
    "metabase": ss.compose_metabase(),
    "metabase+bigquery_key": ss.compose_metabase(bigquery_key=True),
    "metabase pinned": ss.compose_metabase(images=images.METABASE.pinned({"metabase": D, "postgres": D})),
    "amundsen": ss.compose_amundsen(es_heap_mb=2048),
    "amundsen pinned": ss.compose_amundsen(images=images.AMUNDSEN.pinned({r: D for r in images.AMUNDSEN.roles})),
}


def test_the_schema_is_compose_gos():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["title"] == "Compose Specification" and "services" in SCHEMA["properties"]


@pytest.mark.parametrize("name", sorted(COMPOSE_FILES))
def test_every_vm_compose_file_is_valid_compose(name):
    assert _problems(yaml.safe_load(COMPOSE_FILES[name])) == []


def test_the_schema_would_catch_a_broken_file():
    """Not a tautology: what Compose refuses, this check refuses too."""
    doc = yaml.safe_load(COMPOSE_FILES["metabase"])
    doc["services"]["metabase"]["depends_on"]["postgres"]["condition"] = "service_ready"
    doc["services"]["postgres"]["healthcheck"]["tests"] = doc["services"]["postgres"]["healthcheck"].pop("test")
    doc["services"]["metabase"]["restart_policy"] = "always"
    problems = _problems(doc)
    assert any("service_ready" in p for p in problems)
    assert any("postgres/healthcheck" in p and "'tests'" in p for p in problems)  # the docker provider's spelling
    assert any("restart_policy" in p for p in problems)


def test_the_plan_scripts_compose_files_are_valid_compose():
    """The files the components really write, digests included (a whole program under mocks)."""
    import re

    from components.service_vm import Amundsen, AmundsenArgs, Metabase, MetabaseArgs
    from components.testing import run_program

    common = dict(env="dev", project="acme-data-dev", zone="europe-west1-b", subnetwork="s")

    def program():
        Metabase("metabase", MetabaseArgs(**common, dwh_dataset_id="d", bigquery_key=True))
        Amundsen("amundsen", AmundsenArgs(**common, metadata_dataset_ids={"dwh": "d"}))

    rec = run_program(program, config={"gcp:project": "acme-data-dev"})
    docs = [
        yaml.safe_load(text)
        for vm in rec.of_type("gcp:compute/instance:Instance")
        for text in re.findall(r"<<'COMPOSE'\n(.*?)COMPOSE\n", vm.inputs["metadataStartupScript"], re.S)
    ]
    assert len(docs) == 2
    for doc in docs:
        assert _problems(doc) == [], doc["name"]
        assert all("@sha256:" in svc["image"] for svc in doc["services"].values())
    assert services.compose(services.metabase(), data_root="/d")["name"] == "metabase"
