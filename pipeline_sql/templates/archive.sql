-- flexyboots archive layer for $table: permanent full history. Only renames (source -> target
-- name); adds _row_hash (NULL-safe, over the renamed business columns), _ingested_at,
-- _batch_id and _source_file. A version is inserted only when (key, _row_hash) is not archived
-- yet, so loading the same file twice adds nothing. Rows with a NULL key are not archived; the
-- SELECT at the end reports them with the batch. One statement: the INSERT.
DECLARE _run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();
-- The archived rows a new row can match are those of its key. For a batch of at most
-- $max_keys keys their values bound the comparison below, so BigQuery reads only the
-- archive's blocks holding them (the archive is clustered by key); a bigger batch (an initial
-- load, a full snapshot) compares with the key and hash columns of the whole archive.
-- (At most $max_keys + 1 distinct keys are collected: more means a big batch.)
DECLARE _batch_keys ARRAY<STRING> DEFAULT (
  SELECT IF(COUNT(*) <= $max_keys, ARRAY_AGG(_key), NULL)
  FROM (SELECT DISTINCT $first_key_source AS _key FROM $staging WHERE $first_key_source IS NOT NULL LIMIT $max_keys_1)
);

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
  -- rows with the same key and hash are the same version (the hash covers every column): one each
  SELECT
$fresh_select
  FROM _keyed
  GROUP BY $key_and_hash
)
SELECT
$fresh_columns,
  _fresh._row_hash,
  _run_at AS _ingested_at,
  _batch.batch_id AS _batch_id,
  _batch.source_file AS _source_file
FROM _fresh CROSS JOIN _batch
-- the versions not archived yet: an anti-join written as LEFT JOIN ... IS NULL (the same rows
-- as NOT EXISTS; on the embedded engine the correlated NOT EXISTS copied every new row first:
-- 1.4 s of CPU more at 1M rows)
LEFT JOIN (
  SELECT $key_and_hash FROM $archive
  WHERE (_batch_keys IS NULL OR $first_key IN UNNEST(_batch_keys))
) AS a
  ON $archive_match
WHERE a._row_hash IS NULL;

-- what this run did (the runner prints it; its record in $batches counts every version of the
-- batch); rows_archived reads only this run's partition
SELECT
  _batch.batch_id,
  _batch.source_file,
  _batch.content_sha256,
  (SELECT COUNT(*) FROM $staging) AS rows_in,
  (SELECT COUNT(*) FROM $staging WHERE $source_key_null) AS null_key_rows,
  (SELECT COUNT(*) FROM $archive WHERE _ingested_at = _run_at) AS rows_archived
FROM (
$batch_select
) AS _batch;
