"""A new stack from two components: a landing bucket and a layered warehouse for a sandbox.

Run it as a Pulumi program (``main: examples/two_components.py`` in a Pulumi.yaml, or copy it
into your own project); tests/stacks/test_example.py runs it under mocks.
"""

import pulumi

from components.datalake import DataLake, DataLakeArgs
from components.warehouse import Warehouse, WarehouseArgs

project = pulumi.Config("gcp").require("project")

lake = DataLake("lake", DataLakeArgs(env="sandbox", project=project, location="EU", nearline_after_days=None, delete_after_days=14))
warehouse = Warehouse("warehouse", WarehouseArgs(env="sandbox", project=project, location="EU"))

pulumi.export("landing_bucket", lake.bucket_name)
pulumi.export("datasets", warehouse.dataset_ids)
