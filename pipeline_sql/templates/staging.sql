-- flexyboots staging layer for $table: a 1:1 copy of the landed files, every column STRING
-- with its source name, no logic. Rebuilt each run (the table may expire).
-- On BigQuery this script loads every file under $uri; the local runner loads one new file at
-- a time with a load job instead (LOAD DATA does not run on the embedded engine).
LOAD DATA OVERWRITE $staging (
$staging_columns
)
FROM FILES (
$load_options
);
$batch_descriptor
