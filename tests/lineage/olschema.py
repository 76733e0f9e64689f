"""Validate OpenLineage events against the vendored OpenLineage JSON schemas (see
openlineage_spec/README.md): the event against ``OpenLineage.json#/$defs/RunEvent``, and
every facet against the schema file its ``_schemaURL`` names, which must be vendored."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

SPEC = Path(__file__).with_name("openlineage_spec")


def _load() -> tuple[Registry, dict[str, dict]]:
    docs = {}
    for f in [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]:
        doc = json.loads(f.read_text(encoding="utf-8"))
        docs[doc["$id"]] = doc
    registry = Registry().with_resources((i, Resource.from_contents(d)) for i, d in docs.items())
    return registry, docs


REGISTRY, DOCS = _load()
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


RUN_EVENT = _validator(f"{CORE}#/$defs/RunEvent")


def facet_schemas(event: dict) -> list[tuple[str, str, dict]]:
    """(where, _schemaURL, facet) of every facet in the event."""
    out = []

    def facets(where: str, block: dict | None) -> None:
        for name, facet in (block or {}).items():
            out.append((f"{where}.{name}", facet["_schemaURL"], facet))

    facets("run.facets", event["run"].get("facets"))
    facets("job.facets", event["job"].get("facets"))
    for kind in ("inputs", "outputs"):
        for i, ds in enumerate(event.get(kind) or []):
            facets(f"{kind}[{i}].facets", ds.get("facets"))
            facets(f"{kind}[{i}].inputFacets", ds.get("inputFacets"))
            facets(f"{kind}[{i}].outputFacets", ds.get("outputFacets"))
    return out


def errors(event: dict) -> list[str]:
    """Every schema violation of one event (empty: valid)."""
    found = [f"event: {e.json_path}: {e.message}" for e in RUN_EVENT.iter_errors(event)]
    if event.get("schemaURL", "").split("#")[0] != CORE:
        found.append(f"event: schemaURL {event.get('schemaURL')!r} is not the vendored {CORE}")
    for where, url, facet in facet_schemas(event):
        file = url.split("#")[0]
        if file not in DOCS:
            found.append(f"{where}: {url} is not vendored in {SPEC}")
            continue
        found += [f"{where}: {e.json_path}: {e.message}" for e in _validator(url).iter_errors(facet)]
    return found
