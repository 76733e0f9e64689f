-- flexyboots dwh layer for $table: MERGE on ($key_list), 1:1 from transform. A key never
-- moves back to an older version (by $order_text) and is updated only when the hash differs.
-- Each changed row records the archive high-water mark of the delta it came from (_through):
-- the next delta starts after the highest. One statement: the MERGE.
DECLARE _run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();

MERGE $dwh AS _T
USING $transform AS _S
ON $merge_match
WHEN MATCHED AND _T._row_hash != _S._row_hash AND ($newer_than_target) THEN UPDATE SET
$update_set,
  _row_hash = _S._row_hash,
  _ingested_at = _S._ingested_at,
  _batch_id = _S._batch_id,
  _through = _S._through,
  _updated_at = _run_at
WHEN NOT MATCHED THEN INSERT ($insert_columns, _row_hash, _ingested_at, _batch_id, _through, _inserted_at, _updated_at)
VALUES ($insert_values, _S._row_hash, _S._ingested_at, _S._batch_id, _S._through, _run_at, _run_at);

-- what this run applied
SELECT
  (SELECT COUNT(*) FROM $transform) AS rows_in,
  COUNTIF(_inserted_at = _run_at) AS inserted,
  COUNTIF(_updated_at = _run_at AND _inserted_at != _run_at) AS updated,
  COUNT(*) AS dwh_rows
FROM $dwh;
