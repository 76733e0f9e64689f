-- flexyboots full refresh of $table: rebuild transform and DWH from the whole archive with the
-- current spec (after a change of a column's type, a derived column, version_by or the DWH's
-- partitioning). Run on demand only. The delta holds, per key (compared as typed values), the
-- latest valid archived version (by $order_text), and the window's invalid versions (counted,
-- listed in the rejects view); the transform layer's own statement types it; one MERGE then makes
-- the DWH equal to the transform: every row rewritten, a key without a valid version removed.
-- _through is the whole archive's high-water mark, so the next delta starts after it.
DECLARE _run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();
DECLARE _through_mark TIMESTAMP DEFAULT (SELECT MAX(_ingested_at) FROM $archive);

CREATE OR REPLACE TABLE $delta AS
WITH _checked AS (
  SELECT
$archived_columns,
    $valid AS _valid
  FROM $archive AS a
)
SELECT *, _through_mark AS _through FROM _checked
QUALIFY NOT _valid OR ROW_NUMBER() OVER (PARTITION BY _valid, $typed_key_list ORDER BY $order_desc) = 1;

$transform_sql

MERGE $dwh AS _T
USING $transform AS _S
ON $merge_match
WHEN MATCHED THEN UPDATE SET
    $update_set
WHEN NOT MATCHED BY TARGET THEN INSERT ($insert_columns)
VALUES ($insert_values)
WHEN NOT MATCHED BY SOURCE THEN DELETE;

-- what the refresh applied
SELECT
  (SELECT COUNT(*) FROM $transform) AS rows_in,
  (SELECT COUNTIF(NOT _valid) FROM $delta) AS rejected,
  COUNT(*) AS dwh_rows
FROM $dwh;
