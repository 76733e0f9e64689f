"""flexyboots ETL core: table specs -> five-layer BigQuery SQL, and the runner that executes it.

Pure except :mod:`pipeline_sql.engine` and :mod:`pipeline_sql.runner`; never imports Pulumi.
"""
