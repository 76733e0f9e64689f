-- flexyboots archive layer for $table: permanent full history. Only renames (source -> target
-- name); adds _row_hash (NULL-safe, over the renamed business columns), _ingested_at,
-- _batch_id and _source_file. A version is inserted only when (key, _row_hash) is not archived
-- yet, so loading the same file twice adds nothing. Rows with a NULL key are not archived; the
-- SELECT at the end reports them with the batch. One statement: the INSERT.
DECLARE run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();
-- the batch in staging as the staging layer described it; a staging layer that writes no
-- description (an amazon_s3 transfer) gets one batch per archive run
DECLARE v_batch_id STRING DEFAULT IFNULL(
  (SELECT ANY_VALUE(batch_id) FROM $staging_batch),
  CONCAT('run-', FORMAT_TIMESTAMP('%Y%m%dT%H%M%E6S', run_at))
);
DECLARE v_source_file STRING DEFAULT (SELECT ANY_VALUE(source_file) FROM $staging_batch);

INSERT INTO $archive ($archive_columns)
WITH renamed AS (
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
  -- rows with the same key and hash are the same version: keep one
  SELECT DISTINCT * FROM keyed
)
SELECT
$fresh_columns,
  fresh._row_hash,
  run_at AS _ingested_at,
  v_batch_id AS _batch_id,
  v_source_file AS _source_file
FROM fresh
WHERE NOT EXISTS (
  SELECT 1 FROM $archive AS a
  WHERE $archive_match
);

-- what this batch did (the runner prints it and keeps it in $batches)
SELECT
  v_batch_id AS batch_id,
  v_source_file AS source_file,
  (SELECT ANY_VALUE(content_sha256) FROM $staging_batch) AS content_sha256,
  (SELECT COUNT(*) FROM $staging) AS rows_in,
  (SELECT COUNT(*) FROM $staging WHERE $source_key_null) AS null_key_rows,
  (SELECT COUNT(*) FROM $archive WHERE _batch_id = v_batch_id) AS rows_archived;
