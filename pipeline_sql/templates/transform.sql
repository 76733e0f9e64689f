-- flexyboots transform layer for $table: the planned DWH schema. SAFE_CAST to the declared
-- types plus derived columns. A row whose non-NULL value fails its cast is kept here with
-- _valid = FALSE and its failures in _rejects (column, value, reason); the dwh layer records
-- them in $rejects in the same transaction as the merge. Nothing is silently nulled or
-- dropped. One statement (the SELECT after it only reports counts).
CREATE OR REPLACE TABLE $transform AS
WITH typed AS (
  SELECT
$casts,
    d._row_hash,
    d._ingested_at,
    d._batch_id,
    d._source_file,
    d._through,
    d._valid,
    ARRAY_CONCAT(
$reject_arrays
    ) AS _rejects
  FROM $delta AS d
)
SELECT
  typed.*$derived
FROM typed;

SELECT COUNT(*) AS rows_in, COUNTIF(_valid) AS typed, COUNTIF(NOT _valid) AS rejected FROM $transform;
