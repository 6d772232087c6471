ALTER TABLE ibcbench_loads DROP COLUMN IF EXISTS attempt_id;
DROP TABLE IF EXISTS ibcbench_load_attempts;
