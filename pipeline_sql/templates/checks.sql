-- flexyboots quality checks for $table, on the DWH table: each failing rule fails the run with
-- its name (ERROR() works on BigQuery and on the embedded engine alike). One statement.
$check_statements
