-- flexyboots archive layer for $table: permanent full history. Only renames (source -> target
-- name); adds _row_hash (NULL-safe, over the renamed business columns), _ingested_at,
-- _batch_id and _source_file. A version is inserted only when (key, _row_hash) is not archived
-- yet, so loading the same file twice adds nothing. Rows with a NULL key are not archived; they
-- are counted in $batches with the batch. One transaction.
DECLARE run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();
BEGIN TRANSACTION;

INSERT INTO $archive ($archive_columns)
WITH batch AS (
  SELECT ANY_VALUE(batch_id) AS batch_id, ANY_VALUE(source_file) AS source_file
  FROM $staging_batch
),
renamed AS (
  SELECT
$renames
  FROM $staging
),
keyed AS (
  SELECT *, $row_hash AS _row_hash
  FROM renamed
  WHERE $key_not_null
),
fresh AS (
  SELECT * FROM keyed
  QUALIFY ROW_NUMBER() OVER (PARTITION BY $key_and_hash ORDER BY _row_hash) = 1
)
SELECT
$fresh_columns,
  fresh._row_hash,
  run_at AS _ingested_at,
  batch.batch_id AS _batch_id,
  batch.source_file AS _source_file
FROM fresh CROSS JOIN batch
WHERE NOT EXISTS (
  SELECT 1 FROM $archive AS a
  WHERE $archive_match
);

INSERT INTO $batches (batch_id, source_file, content_sha256, rows_in, null_key_rows, rows_archived, archived_at)
SELECT
  b.batch_id,
  b.source_file,
  b.content_sha256,
  (SELECT COUNT(*) FROM $staging) AS rows_in,
  (SELECT COUNT(*) FROM $staging WHERE $source_key_null) AS null_key_rows,
  (SELECT COUNT(*) FROM $archive WHERE _batch_id = b.batch_id) AS rows_archived,
  run_at AS archived_at
FROM $staging_batch AS b
WHERE NOT EXISTS (SELECT 1 FROM $batches AS x WHERE x.batch_id = b.batch_id);

COMMIT TRANSACTION;

-- what this batch did (the runner prints it; a scheduled query ignores it)
SELECT b.batch_id, b.source_file, b.rows_in, b.null_key_rows, b.rows_archived
FROM $batches AS b JOIN $staging_batch AS s ON b.batch_id = s.batch_id;
