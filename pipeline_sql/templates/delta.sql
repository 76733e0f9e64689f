-- flexyboots delta layer for $table: per key, the latest valid archive version (by $order_text)
-- among the versions archived after the DWH's last applied high-water mark, kept only when the
-- key is missing from the DWH or the version is newer than the DWH's and its hash differs; plus
-- every version in that window whose non-NULL values fail their casts (they become rejects).
-- _through records the high-water mark this delta covers. One statement (the SELECT after
-- it only reports counts).
CREATE OR REPLACE TABLE $delta AS
WITH applied AS (
  SELECT IFNULL(MAX(through), TIMESTAMP '1970-01-01 00:00:00+00') AS mark FROM $applied
),
candidates AS (
  SELECT a.* FROM $archive AS a CROSS JOIN applied
  WHERE a._ingested_at > applied.mark
),
through AS (
  SELECT MAX(_ingested_at) AS mark FROM candidates
),
checked AS (
  SELECT c.*, $valid AS _valid, through.mark AS _through
  FROM candidates AS c CROSS JOIN through
),
latest AS (
  SELECT * FROM checked
  WHERE _valid
  QUALIFY ROW_NUMBER() OVER (PARTITION BY $typed_key_list ORDER BY $order_desc) = 1
)
SELECT l.* FROM latest AS l
LEFT JOIN $dwh AS d ON $dwh_match
WHERE $dwh_key_missing OR (l._row_hash != d._row_hash AND ($newer_than_dwh))
UNION ALL
SELECT * FROM checked WHERE NOT _valid;

SELECT COUNTIF(_valid) AS valid, COUNTIF(NOT _valid) AS invalid FROM $delta;
