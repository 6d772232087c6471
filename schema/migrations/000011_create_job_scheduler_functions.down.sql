-- The kit's jobs back to pg_cron where they were moved, then the functions of 000011.
DO $$
BEGIN
    IF to_regproc('ibcbench_use_scheduler') IS NOT NULL
       AND to_regclass('timescaledb_information.jobs') IS NOT NULL THEN
        PERFORM ibcbench_use_scheduler('pg_cron');
    END IF;
END
$$;
DROP FUNCTION IF EXISTS ibcbench_use_scheduler(text);
DROP FUNCTION IF EXISTS ibcbench_job_schedules();
DROP FUNCTION IF EXISTS ibcbench_cron_to_interval(text);
DROP PROCEDURE IF EXISTS ibcbench_run_job(integer, jsonb);
