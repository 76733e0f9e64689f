-- flexyboots archive layer for $table: permanent full history. Only renames (source -> target
-- name); adds _row_hash (NULL-safe, over the renamed business columns), _ingested_at,
-- _batch_id and _source_file. A version is inserted only when (key, _row_hash) is not archived
-- yet, so loading the same file twice adds nothing. Rows with a NULL key are not archived; the
-- SELECT at the end reports them with the batch. One statement: the INSERT.
DECLARE _run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();

INSERT INTO $archive ($archive_columns)
WITH _batch AS (
$batch_select
),
_renamed AS (
  SELECT
$renames
  FROM $staging
),
_keyed AS (
  SELECT *, $row_hash AS _row_hash
  FROM _renamed
  WHERE $key_not_null
),
_fresh AS (
  -- rows with the same key and hash are the same version: keep one
  SELECT DISTINCT * FROM _keyed
)
SELECT
$fresh_columns,
  _fresh._row_hash,
  _run_at AS _ingested_at,
  _batch.batch_id AS _batch_id,
  _batch.source_file AS _source_file
FROM _fresh CROSS JOIN _batch
WHERE NOT EXISTS (
  SELECT 1 FROM $archive AS a
  WHERE $archive_match
);

-- what this batch did (the runner prints it and keeps it in $batches)
SELECT
  _batch.batch_id,
  _batch.source_file,
  _batch.content_sha256,
  (SELECT COUNT(*) FROM $staging) AS rows_in,
  (SELECT COUNT(*) FROM $staging WHERE $source_key_null) AS null_key_rows,
  (SELECT COUNT(*) FROM $archive WHERE _batch_id = _batch.batch_id) AS rows_archived
FROM (
$batch_select
) AS _batch;
