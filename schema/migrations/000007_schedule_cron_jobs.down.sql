-- Unschedules the 'ibcbench-*' jobs; drops pg_cron only if 000007 created it.
DO $$
DECLARE
    job_name text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    FOR job_name IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname LIKE ''ibcbench-%'' AND database = current_database()'
    LOOP
        PERFORM cron.unschedule(job_name);
    END LOOP;
    IF to_regclass('ibcbench_created_extensions') IS NOT NULL
       AND EXISTS (SELECT 1 FROM ibcbench_created_extensions WHERE extname = 'pg_cron') THEN
        DROP EXTENSION pg_cron;
        DELETE FROM ibcbench_created_extensions WHERE extname = 'pg_cron';
    END IF;
END
$$;
