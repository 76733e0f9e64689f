-- flexyboots transform layer for $table: the planned DWH schema. SAFE_CAST to the declared
-- types plus derived columns. The delta holds only versions whose values cast (a version whose
-- non-NULL value fails its cast is listed in $rejects with column, value and reason, never
-- silently nulled). One statement (the SELECT after it only reports counts).
CREATE OR REPLACE TABLE $transform AS
WITH typed AS (
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
  typed.*$derived
FROM typed;

SELECT COUNT(*) AS rows_in FROM $transform;
