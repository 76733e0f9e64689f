"""Fixtures shared by every test folder.

``gsql``: the process's one GoogleSQL (ZetaSQL) analyzer, see :mod:`pipeline_sql.googlesql`. Its
compiled module comes from the cache ``make setup`` prepares (``.cache/zetasql/``), so starting it
costs well under a second. ``assert_googlesql_clean(statements, catalog)`` analyzes and fails with
every problem listed. To analyze new SQL in a test::

    from pipeline_sql.googlesql import Catalog
    from pipeline_sql.statements import Statement

    def test_my_sql(assert_googlesql_clean):
        sql = render_my_thing(spec, naming)
        assert_googlesql_clean([Statement("my_thing", sql, spec.table, (("run_time", "TIMESTAMP"),))],
                               Catalog.for_specs([spec], [naming]))
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gsql():
    from pipeline_sql.googlesql import GoogleSQL

    return GoogleSQL.shared()


@pytest.fixture(scope="session")
def assert_googlesql_clean(gsql):
    def check(statements, catalog):
        result = gsql.analyze(statements, catalog)
        assert not result.problems, f"{len(result.problems)} statements BigQuery would refuse:\n\n" + "\n\n".join(
            map(str, result.problems)
        )
        return result

    return check
