INSERT INTO $batches (batch_id, source_file, content_sha256, rows_in, null_key_rows, rows_archived, archived_at, spec_version)
SELECT @batch_id, @source_file, @content_sha256, @rows_in, @null_key_rows,
  (SELECT COUNT(*) FROM $archive WHERE _batch_id = @batch_id), CURRENT_TIMESTAMP(), @spec_version
FROM (SELECT 1)
WHERE NOT EXISTS (SELECT 1 FROM $batches WHERE batch_id = @batch_id);
