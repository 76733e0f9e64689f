-- flexyboots dwh layer for $table: MERGE on ($key_list), 1:1 from transform. A key never
-- moves back to an older version (by $order_text) and is updated only when the hash differs.
-- In the same transaction: the rejects of the transform are recorded once each, and the
-- archive high-water mark the transform covered is marked applied. One transaction.
DECLARE run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();
BEGIN TRANSACTION;

MERGE $dwh AS T
USING (SELECT * FROM $transform WHERE _valid) AS S
ON $merge_match
WHEN MATCHED AND T._row_hash != S._row_hash AND ($newer_than_target) THEN UPDATE SET
$update_set,
  _row_hash = S._row_hash,
  _ingested_at = S._ingested_at,
  _batch_id = S._batch_id,
  _updated_at = run_at
WHEN NOT MATCHED THEN INSERT ($insert_columns, _row_hash, _ingested_at, _batch_id, _inserted_at, _updated_at)
VALUES ($insert_values, S._row_hash, S._ingested_at, S._batch_id, run_at, run_at);

INSERT INTO $rejects ($reject_key_columns, column_name, value, reason, _row_hash, _batch_id, _source_file, _ingested_at, rejected_at)
SELECT $reject_key_values, r.column_name, r.value, r.reason, t._row_hash, t._batch_id, t._source_file, t._ingested_at, run_at
FROM $transform AS t CROSS JOIN UNNEST(t._rejects) AS r
WHERE NOT t._valid
  AND NOT EXISTS (
    SELECT 1 FROM $rejects AS x
    WHERE x._row_hash = t._row_hash AND x.column_name = r.column_name AND $reject_key_match
  );

INSERT INTO $applied (through, applied_at, rows_in, inserted, updated, rejected)
SELECT
  m.through,
  run_at,
  (SELECT COUNT(*) FROM $transform),
  (SELECT COUNT(*) FROM $dwh WHERE _inserted_at = run_at),
  (SELECT COUNT(*) FROM $dwh WHERE _updated_at = run_at AND _inserted_at != run_at),
  (SELECT COUNT(*) FROM $rejects WHERE rejected_at = run_at)
FROM (SELECT MAX(_through) AS through FROM $transform) AS m
WHERE m.through IS NOT NULL
  AND m.through > (SELECT IFNULL(MAX(through), TIMESTAMP '1970-01-01 00:00:00+00') FROM $applied);

COMMIT TRANSACTION;

-- what this run applied (no row when there was nothing new to apply)
SELECT rows_in, inserted, updated, rejected, (SELECT COUNT(*) FROM $dwh) AS dwh_rows
FROM $applied WHERE applied_at = run_at;
