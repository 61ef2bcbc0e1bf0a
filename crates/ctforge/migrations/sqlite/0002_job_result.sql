-- A job's result as JSON (e.g. the per-container outcomes of a bulk action), written by the
-- worker holding the job's lease and kept across retries. (SQLite)
ALTER TABLE jobs ADD COLUMN result_json TEXT;
