-- flexyboots delta layer for $table: per key (compared as typed values), the latest valid
-- archive version (by $order_text) among the versions archived after the DWH's high-water mark,
-- kept only when the key is missing from the DWH or the version is newer than the DWH's and
-- its hash differs. A version whose non-NULL values fail their casts is never picked: it is
-- listed in $rejects. _through is the archive high-water mark this delta covers. One
-- statement (the SELECT after it only reports counts).
DECLARE mark TIMESTAMP DEFAULT (
  SELECT IFNULL(MAX(_through), TIMESTAMP '1970-01-01 00:00:00+00') FROM $dwh
);

CREATE OR REPLACE TABLE $delta AS
WITH latest AS (
  SELECT a.* FROM $archive AS a
  WHERE a._ingested_at > mark AND $valid
  QUALIFY ROW_NUMBER() OVER (PARTITION BY $typed_key_list ORDER BY $order_desc) = 1
)
SELECT l.*, (SELECT MAX(_ingested_at) FROM $archive) AS _through
FROM latest AS l
LEFT JOIN $dwh AS d ON $dwh_match
WHERE $dwh_key_missing OR (l._row_hash != d._row_hash AND ($newer_than_dwh));

-- what this delta holds, and the values of its window that failed their casts
SELECT
  (SELECT COUNT(*) FROM $delta) AS versions,
  (SELECT COUNT(*) FROM $rejects WHERE _ingested_at > mark) AS rejected;
