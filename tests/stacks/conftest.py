"""Plans of the real stacks (stacks/Pulumi.<stack>.yaml) run once per test session under mocks.

The table specs come from tests/stacks/tables (fixtures), so that sample-data changes in
config/tables do not move the infrastructure inventory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TABLES = HERE / "tables"
TABLES_ARG = "tests/stacks/tables"
#: a spec whose files land on S3 (for the stack variant with the S3 landing bucket)
TABLES_S3 = HERE / "tables_s3"


@pytest.fixture(scope="session")
def plans():
    from stacks.plan import run_stack

    cache: dict = {}

    def get(stack: str, tables: Path = TABLES, **overrides):
        key = (stack, str(tables), tuple(sorted((k, repr(v)) for k, v in overrides.items())))
        if key not in cache:
            cache[key] = run_stack(stack, overrides=overrides or None, tables_dir=str(tables))
            cache[key].tables_dir = TABLES_ARG if tables == TABLES else str(tables)
        return cache[key]

    return get
