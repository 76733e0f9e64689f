-- flexyboots dwh layer for $table: MERGE on ($key_list), 1:1 from transform. A key never
-- moves back to an older version (by $order_text) and is replaced only when the hash differs.
-- A changed key's row is replaced (deleted, and its new version inserted with the key's first
-- _inserted_at) rather than updated in place: the same result, and an append is much cheaper
-- than an update on columnar storage. Each changed row records the archive high-water mark of
-- the delta it came from (_through): the next delta starts after the highest. One statement:
-- the MERGE.
DECLARE _run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();

MERGE $dwh AS _T
USING (
  WITH _changed AS (
    -- the transform's versions new to the DWH, or newer than its row and with another hash
    SELECT _S.*, _D._inserted_at AS _first_inserted_at, _D.$first_key IS NOT NULL AS _replaces
    FROM $transform AS _S
    LEFT JOIN $dwh AS _D ON $source_match
    WHERE _D.$first_key IS NULL OR (_D._row_hash != _S._row_hash AND ($newer_than_target))
  )
  -- each changed key twice: once (_delete) to delete the row it replaces, once (never matching)
  -- to insert (a join with two rows rather than a UNION ALL, which reads _changed twice)
  SELECT _changed.*, $merge_keys
  FROM _changed CROSS JOIN UNNEST([TRUE, FALSE]) AS _delete
  WHERE NOT _delete OR _replaces
) AS _S
ON $merge_match
WHEN MATCHED THEN DELETE
WHEN NOT MATCHED THEN INSERT ($insert_columns, _row_hash, _ingested_at, _batch_id, _through, _inserted_at, _updated_at)
VALUES ($insert_values, _S._row_hash, _S._ingested_at, _S._batch_id, _S._through, IFNULL(_S._first_inserted_at, _run_at), _run_at);

-- what this run applied
SELECT
  (SELECT COUNT(*) FROM $transform) AS rows_in,
  COUNTIF(_inserted_at = _run_at) AS inserted,
  COUNTIF(_updated_at = _run_at AND _inserted_at != _run_at) AS updated,
  COUNT(*) AS dwh_rows
FROM $dwh;
