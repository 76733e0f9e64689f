-- flexyboots staging layer for $table: a 1:1 copy of the files that landed since the last
-- run, every column STRING with its source name, no logic. Rebuilt each run (it may expire).
-- Files land under <prefix>/dt=YYYY-MM-DD/ (dt: the UTC date the file landed). A run reads
-- only the folders from the date one schedule interval before
-- @run_time to the date of @run_time: a file that lands between two runs is in the next
-- run's window (landing near midnight, in two windows: the archive's rule makes the second
-- read add nothing), so a run reads the new files, never the landing history. A file put in
-- an older folder after its window passed is read by a backfill run for that date (which
-- archives only what the archive does not hold yet). The local runner loads one new file at
-- a time with a load job instead (external tables do not run on the embedded engine).
DECLARE _window_start DATE DEFAULT $window_start;
DECLARE _window_end DATE DEFAULT $window_end;

CREATE OR REPLACE EXTERNAL TABLE $landed (
$staging_columns
)
WITH PARTITION COLUMNS (dt DATE)
OPTIONS (
$load_options
);

-- (the window is written out below, not read from the variables: a source column may be named
-- like a variable, and inside that FROM the column would win)
CREATE OR REPLACE TABLE $staging AS
SELECT
$source_columns
FROM $landed
WHERE dt BETWEEN $window_start AND $window_end;
$batch_descriptor
