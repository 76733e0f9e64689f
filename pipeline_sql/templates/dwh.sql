-- flexyboots dwh layer for $table: MERGE on ($key_list), 1:1 from transform. A key never
-- moves back to an older version (by $order_text) and is replaced only when the hash differs.
-- A changed key's row is replaced (deleted, and its new version inserted with the key's first
-- _inserted_at) rather than updated in place: the same result, and an append is much cheaper
-- than an update on columnar storage. Each changed row records the archive high-water mark of
-- the delta it came from (_through): the next delta starts after the highest. One statement:
-- the MERGE.
DECLARE run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();

MERGE $dwh AS T
USING (
  WITH changed AS (
    -- the transform's versions new to the DWH, or newer than its row and with another hash
    SELECT S.*, D._inserted_at AS _first_inserted_at, D.$first_key IS NOT NULL AS _replaces
    FROM $transform AS S
    LEFT JOIN $dwh AS D ON $source_match
    WHERE D.$first_key IS NULL OR (D._row_hash != S._row_hash AND ($newer_than_target))
  )
  -- each changed key twice: once to delete the row it replaces, once (never matching) to insert
  SELECT *, $match_keys FROM changed WHERE _replaces
  UNION ALL
  SELECT *, $no_match_keys FROM changed
) AS S
ON $merge_match
WHEN MATCHED THEN DELETE
WHEN NOT MATCHED THEN INSERT ($insert_columns, _row_hash, _ingested_at, _batch_id, _through, _inserted_at, _updated_at)
VALUES ($insert_values, S._row_hash, S._ingested_at, S._batch_id, S._through, IFNULL(S._first_inserted_at, run_at), run_at);

-- what this run applied
SELECT
  (SELECT COUNT(*) FROM $transform) AS rows_in,
  COUNTIF(_inserted_at = run_at) AS inserted,
  COUNTIF(_updated_at = run_at AND _inserted_at != run_at) AS updated,
  COUNT(*) AS dwh_rows
FROM $dwh;
