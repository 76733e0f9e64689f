CREATE OR REPLACE TABLE $staging_batch AS
SELECT
  $batch_id AS batch_id,
  $source_file AS source_file,
  $content_sha256 AS content_sha256,
  $landed_at AS landed_at;
