-- flexyboots transform layer for $table: the planned DWH schema. SAFE_CAST to the declared
-- types plus derived columns. The delta holds only versions whose values cast (a version whose
-- non-NULL value fails its cast is listed in $rejects with column, value and reason, never
-- silently nulled). Columns in the order pipeline_sql.schema declares: typed, derived, then
-- bookkeeping. One statement (the SELECT after it only reports counts).
CREATE OR REPLACE TABLE $transform AS
WITH _typed AS (
  SELECT
$casts,
    d._row_hash,
    d._ingested_at,
    d._batch_id,
    d._source_file,
    d._through
  FROM $delta AS d
  WHERE d._valid
)
SELECT
$typed_columns$derived,
  _typed._row_hash,
  _typed._ingested_at,
  _typed._batch_id,
  _typed._source_file,
  _typed._through
FROM _typed;

SELECT COUNT(*) AS rows_in FROM $transform;
