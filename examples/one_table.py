"""One table's five-layer pipeline on its own: a landing bucket, a layered warehouse, the
per-layer identities and the table's tables and scheduled queries.

The TablePipeline takes the Warehouse and the DataLake themselves, so the SQL's project,
datasets, BigQuery location and landing bucket are theirs (a mismatch is refused before
anything is created). tests/stacks/test_example.py runs it under mocks.
"""

import pulumi

from components.datalake import DataLake, DataLakeArgs
from components.table_pipeline import PipelineRuntime, PipelineRuntimeArgs, TablePipeline, TablePipelineArgs
from components.warehouse import Warehouse, WarehouseArgs
from pipeline_sql.spec import load_spec

project = pulumi.Config("gcp").require("project")

lake = DataLake("lake", DataLakeArgs(env="sandbox", project=project, location="EU", nearline_after_days=None))
warehouse = Warehouse("warehouse", WarehouseArgs(env="sandbox", project=project, location="EU"))
runtime = PipelineRuntime(
    "pipelines",
    PipelineRuntimeArgs(env="sandbox", project=project, datasets=warehouse.dataset_ids, landing_bucket=lake.bucket_name),
)
customers = TablePipeline(
    "customers",
    TablePipelineArgs(spec=load_spec("config/tables/customers.yaml"), warehouse=warehouse, runtime=runtime, datalake=lake),
)

pulumi.export("transfer_configs", customers.transfer_config_names)
