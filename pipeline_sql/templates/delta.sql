-- flexyboots delta layer for $table: per key (compared as typed values), the latest valid
-- archive version (by $order_text) among the versions archived after the DWH's high-water mark,
-- kept only when the key is missing from the DWH or the version is newer than the DWH's and
-- its hash differs. A version whose non-NULL values fail their casts is never picked; the
-- window's such versions are kept with _valid = FALSE, counted, and listed in $rejects.
-- _through is the archive high-water mark this delta covers. The window is bounded by script
-- variables, so BigQuery reads only the archive's partitions after the mark. One statement
-- (the SELECT after it only reports counts).
DECLARE _mark TIMESTAMP DEFAULT (SELECT IFNULL(MAX(_through), TIMESTAMP '1970-01-01 00:00:00+00') FROM $dwh);
DECLARE _through_mark TIMESTAMP DEFAULT (SELECT MAX(_ingested_at) FROM $archive WHERE _ingested_at > _mark);

CREATE OR REPLACE TABLE $delta AS
WITH _checked AS (
  SELECT
$archived_columns,
    $valid AS _valid
  FROM $archive AS a
  WHERE a._ingested_at > _mark AND a._ingested_at <= _through_mark
),
_latest AS (
  SELECT * FROM _checked
  QUALIFY NOT _valid OR ROW_NUMBER() OVER (PARTITION BY _valid, $typed_key_list ORDER BY $order_desc) = 1
)
SELECT l.*, _through_mark AS _through
FROM _latest AS l
LEFT JOIN $dwh AS d ON $dwh_match
WHERE NOT l._valid OR $dwh_key_missing OR (l._row_hash != d._row_hash AND ($newer_than_dwh));

-- what this delta holds
SELECT COUNTIF(_valid) AS versions, COUNTIF(NOT _valid) AS rejected FROM $delta;
