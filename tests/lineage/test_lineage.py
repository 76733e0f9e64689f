"""Lineage from the specs: table level, column level (sqlglot on the rendered transform SQL),
and its pictures (Mermaid, DOT, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_sql.cli import main
from pipeline_sql.diagram import Diagram
from pipeline_sql.lineage import LineageError, build_lineage, table_diagram, tables_diagram, transform_hops
from pipeline_sql.naming import Naming
from pipeline_sql.spec import load_specs, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = load_specs(ROOT / "config" / "tables")
LAYER_PATH = ["landing", "staging", "archive", "delta", "transform", "dwh"]


@pytest.fixture(scope="module")
def lin():
    return build_lineage(SPECS, Naming(project="acme-data-dev", env="dev"), "gs://acme-dev-landing")


def test_email_domain_comes_from_email_through_all_five_layers(lin):
    (path,) = lin.trace("dwh.customers", "email_domain")
    assert path == [
        ("landing.customers", "email"), ("staging.customers", "email"), ("archive.customers", "email"),
        ("delta.customers", "email"), ("transform.customers", "email_domain"), ("dwh.customers", "email_domain"),
    ]
    (derive,) = lin.hops_into("transform.customers", "email_domain")
    assert derive.kind == "derived" and derive.detail == "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])"


def test_renames_and_casts_are_hops_of_their_own(lin):
    (path,) = lin.trace("dwh.customers", "is_active")
    assert [c for _, c in path] == ["active", "active", "is_active", "is_active", "is_active", "is_active"]
    assert [h.kind for h in lin.hops_into("archive.customers", "is_active")] == ["rename"]
    (cast,) = lin.hops_into("transform.customers", "is_active")
    assert (cast.kind, cast.detail) == ("cast", "SAFE_CAST AS BOOL")
    (ident,) = lin.hops_into("transform.customers", "email")
    assert ident.kind == "identity"


def test_every_dwh_business_column_traces_to_its_source_columns(lin):
    for spec in SPECS:
        derived_from = {n: set(src) for n, _, _, src in transform_hops(spec, lin.naming)}
        for c in spec.columns:
            assert lin.sources(f"dwh.{spec.table}", c.name) == [(f"landing.{spec.table}", c.source)]
            for path in lin.trace(f"dwh.{spec.table}", c.name):
                assert [ds.split(".")[0] for ds, _ in path] == LAYER_PATH
        for d in spec.transform:
            sources = {spec.column(n).source for n in derived_from[d.name]}
            assert {c for _, c in lin.sources(f"dwh.{spec.table}", d.name)} == sources and sources
    # multi-column derivations, resolved by sqlglot from the expressions
    assert {c for _, c in lin.sources("dwh.orders", "line_total")} == {"quantity", "unit_price", "discount"}
    assert {c for _, c in lin.sources("dwh.customers", "full_name")} == {"first_name", "last_name"}
    assert {c for _, c in lin.sources("dwh.products", "price_band")} == {"price"}


def test_sqlglot_resolves_what_the_expression_reads_not_what_it_mentions():
    spec = parse_spec({
        "table": "t", "source": {"format": "csv", "path": "t/"}, "key": ["id"],
        "columns": [{"source": "id", "name": "id", "type": "INT64"}, {"source": "a", "name": "a", "type": "STRING"},
                    {"source": "b", "name": "b", "type": "INT64"}],
        "transform": [{"name": "x", "type": "STRING", "expr": "CASE WHEN b > 1 THEN UPPER(a) ELSE 'a' END -- mentions id"},
                      {"name": "k", "type": "INT64", "expr": "42"}],
    })
    hops = {n: src for n, _, _, src in transform_hops(spec, Naming())}
    assert hops["x"] == ("a", "b")  # the comment's "id" and the literal 'a' are not columns
    assert hops["k"] == ()  # a constant comes from no column
    lin = build_lineage([spec])
    assert lin.trace("dwh.t", "k") == [[("transform.t", "k"), ("dwh.t", "k")]]


def test_row_hash_is_a_masking_hash_of_every_business_column(lin):
    hops = lin.hops_into("archive.orders", "_row_hash")
    assert {h.source[1] for h in hops} == {c.source for c in SPECS[1].columns} and {h.kind for h in hops} == {"hash"}


def test_table_level_steps_rejects_checks_and_relationships(lin):
    assert [s.layer for s in lin.steps if s.table == "orders"] == ["staging", "archive", "delta", "transform", "dwh", "checks", "rejects"]
    assert lin.step("orders", "delta").inputs == ("archive.orders", "dwh.orders")
    assert lin.step("orders", "checks").inputs == ("dwh.orders", "dwh.customers", "dwh.products")
    assert lin.step("orders", "checks").outputs == ("quality.check_results",)
    assert lin.step("orders", "rejects").outputs == ("quality.orders__rejects",)
    assert {(r.source, r.target, r.severity) for r in lin.references} == {
        (("dwh.orders", "customer_id"), ("dwh.customers", "customer_id"), "error"),
        (("dwh.orders", "sku"), ("dwh.products", "sku"), "warn"),
    }
    assert lin.datasets["landing.orders"].location == "gs://acme-dev-landing/orders/*"
    assert lin.datasets["dwh.orders"].location == "acme-data-dev.dev_dwh.orders"


def test_one_table_brings_only_the_tables_its_checks_reference():
    lin = build_lineage(SPECS, tables=["orders"])
    assert lin.tables == ("orders",)
    assert {d.table for d in lin.datasets.values()} == {"orders", "customers", "products", ""}
    assert "staging.customers" not in lin.datasets
    with pytest.raises(LineageError, match="nope: no such table; expected one of: customers, orders, products"):
        build_lineage(SPECS, tables=["nope"])
    with pytest.raises(LineageError, match="'nope' is not one of its columns"):
        lin.trace("dwh.orders", "nope")


def test_mermaid_of_customers_shows_the_derivation_in_every_layer(lin):
    text = table_diagram(lin, "customers").to_mermaid()
    for layer in ("staging", "archive", "delta", "transform", "dwh"):
        assert f'subgraph {layer}_customers["{layer}.customers"]' in text
        assert f'{layer}_customers_email("email<br/>' in text
    assert 'landing_customers_email --> staging_customers_email' in text
    assert 'staging_customers_email --> archive_customers_email' in text
    assert 'archive_customers_email --> delta_customers_email' in text
    assert """delta_customers_email ==>|"LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])"| transform_customers_email_domain""" in text
    assert "transform_customers_email_domain --> dwh_customers_email_domain" in text
    assert '-->|"rename"| archive_customers_customer_id' in text
    assert 'quality_customers__rejects[["quality.customers__rejects' in text
    assert "_row_hash" not in text  # bookkeeping columns stay out of the picture


def test_mermaid_escapes_and_relationships():
    lin = build_lineage(SPECS)
    text = table_diagram(lin, "products").to_mermaid()
    assert "unit_price #lt; 20" in text and "unit_price < 20" not in text  # '<' would open an HTML tag
    orders = table_diagram(lin, "orders").to_mermaid()
    assert 'dwh_orders_customer_id -.->|"relationships (error)"| dwh_customers_customer_id' in orders
    assert 'dwh_orders_sku -.->|"relationships (warn)"| dwh_products_sku' in orders
    all_tables = tables_diagram(lin).to_mermaid()
    assert 'dwh_orders -.->|"customer_id references customer_id"| dwh_customers' in all_tables
    assert 'dwh_customers -.->|"compare"| delta_customers' in all_tables


def test_dot_is_the_same_graph():
    lin = build_lineage(SPECS, tables=["customers"])
    d = table_diagram(lin, "customers")
    dot = d.to_dot("customers")
    assert dot.startswith("digraph customers {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(d.edges)
    assert "subgraph cluster_transform_customers {" in dot
    assert """delta_customers_email -> transform_customers_email_domain [label="LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])", penwidth="2"];""" in dot
    assert "lhead=cluster_quality" not in dot and "ltail=cluster_archive_customers" in dot


def test_diagram_refuses_unknown_ends_and_shapes():
    d = Diagram()
    d.node("a", "A")
    with pytest.raises(ValueError, match="'b' is neither a node nor a cluster"):
        d.edge("a", "b")
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        d.node("c", "C", "blob")


def test_cli_lineage_formats(capsys):
    assert main(["lineage", "customers"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR\n")
    assert main(["lineage", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph lineage_tables {")
    assert main(["lineage", "orders", "--format", "json", "--project", "acme-data-prod", "--env", "prod"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dwh_columns"]["orders"]["line_total"]["sources"] == ["landing.orders.discount", "landing.orders.quantity", "landing.orders.unit_price"]
    assert any(d["location"] == "acme-data-prod.prod_dwh.orders" for d in doc["datasets"])
    assert main(["lineage", "nope"]) == 1
    assert "nope: no such table" in capsys.readouterr().err
