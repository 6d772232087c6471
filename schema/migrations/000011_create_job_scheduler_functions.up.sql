-- The kit's maintenance jobs (000007) can run as TimescaleDB jobs instead of pg_cron, where the server
-- has them (the Community edition: add_job). The user chooses, and can go back:
--   SELECT * FROM ibcbench_use_scheduler('timescaledb');   -- or 'pg_cron'; `ibcbench db jobs --scheduler`
--   SELECT * FROM ibcbench_job_schedules();                -- both schedules, one row per kit job
-- A TimescaleDB job runs ibcbench_run_job with the pg_cron job's command in its config, and keeps the cron
-- schedule there too, so moving back is lossless. A job's failures are in
-- timescaledb_information.job_errors and job_stats; `ibcbench db status` shows them. This migration only
-- creates the functions: nothing moves until the user asks.

CREATE OR REPLACE PROCEDURE ibcbench_run_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE config->>'command';
END
$$;

-- A cron schedule of the forms the kit uses ('M * * * *', '*/N * * * *', 'M H * * *', 'M H * * D') as
-- a fixed interval and its next start; NULLs for any other form (such a job stays in pg_cron).
CREATE OR REPLACE FUNCTION ibcbench_cron_to_interval(cron text, OUT every interval, OUT first_run timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    f text[] := regexp_split_to_array(trim(cron), '\s+');
BEGIN
    IF coalesce(array_length(f, 1), 0) <> 5 THEN
        RETURN;
    END IF;
    IF f[1] ~ '^\*/\d+$' AND f[2:5] = ARRAY['*', '*', '*', '*'] THEN
        every := make_interval(mins => substr(f[1], 3)::int);
        first_run := date_trunc('hour', now());
        WHILE first_run <= now() LOOP
            first_run := first_run + every;
        END LOOP;
    ELSIF f[1] ~ '^\d+$' AND f[2:5] = ARRAY['*', '*', '*', '*'] THEN
        every := INTERVAL '1 hour';
        first_run := date_trunc('hour', now()) + make_interval(mins => f[1]::int);
    ELSIF f[1] ~ '^\d+$' AND f[2] ~ '^\d+$' AND f[3:4] = ARRAY['*', '*'] AND f[5] ~ '^(\*|[0-6])$' THEN
        first_run := date_trunc('day', now()) + make_interval(hours => f[2]::int, mins => f[1]::int);
        IF f[5] = '*' THEN
            every := INTERVAL '1 day';
        ELSE
            every := INTERVAL '7 days';
            first_run := first_run
                + make_interval(days => (f[5]::int - extract(dow FROM first_run)::int + 7) % 7);
        END IF;
    ELSE
        RETURN;
    END IF;
    IF first_run <= now() THEN
        first_run := first_run + every;
    END IF;
END
$$;

-- The kit's jobs in this database, wherever they run: (job_name, scheduler, schedule).
CREATE OR REPLACE FUNCTION ibcbench_job_schedules()
RETURNS TABLE (job_name text, scheduler text, schedule text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        RETURN QUERY EXECUTE $q$
            SELECT jobname::text, 'pg_cron'::text, schedule::text FROM cron.job
            WHERE jobname LIKE 'ibcbench-%' AND database = current_database()$q$;
    END IF;
    IF to_regclass('timescaledb_information.jobs') IS NOT NULL THEN
        RETURN QUERY EXECUTE $q$
            SELECT config->>'name', 'timescaledb'::text,
                   format('every %s (cron %s)', schedule_interval, config->>'cron')
            FROM timescaledb_information.jobs
            WHERE proc_name = 'ibcbench_run_job'$q$;
    END IF;
END
$$;

-- Move the kit's maintenance jobs to 'timescaledb' or back to 'pg_cron', in one transaction. pg_cron's own
-- history clean-up and notebook 06's demo jobs stay in pg_cron.
CREATE OR REPLACE FUNCTION ibcbench_use_scheduler(target text)
RETURNS TABLE (job_name text, scheduler text, schedule text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    t record;
    license text := coalesce(current_setting('timescaledb.license', true), '');
BEGIN
    IF target IS NULL OR target NOT IN ('pg_cron', 'timescaledb') THEN
        RAISE EXCEPTION 'scheduler % is unknown: use pg_cron or timescaledb', coalesce(target, 'NULL');
    END IF;
    IF target = 'timescaledb' THEN
        IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') OR license <> 'timescale' THEN
            RAISE EXCEPTION 'TimescaleDB jobs need the Community edition (timescaledb.license=timescale), this database has %: the kit''s jobs stay in pg_cron',
                CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                     THEN 'the ' || license || ' edition' ELSE 'no TimescaleDB' END;
        END IF;
        IF to_regclass('cron.job') IS NOT NULL THEN
            FOR r IN EXECUTE $q$
                SELECT jobid, jobname, schedule, command FROM cron.job
                WHERE jobname LIKE 'ibcbench-%' AND jobname NOT LIKE 'ibcbench-demo-%'
                  AND jobname <> 'ibcbench-cleanup-cron-history' AND database = current_database()
                ORDER BY jobname$q$
            LOOP
                SELECT * INTO t FROM ibcbench_cron_to_interval(r.schedule);
                CONTINUE WHEN t.every IS NULL;
                PERFORM add_job('ibcbench_run_job', t.every,
                    config => jsonb_build_object('name', r.jobname, 'cron', r.schedule, 'command', r.command),
                    initial_start => t.first_run, fixed_schedule => true);
                PERFORM cron.unschedule(r.jobid);
            END LOOP;
        END IF;
    ELSIF to_regclass('timescaledb_information.jobs') IS NOT NULL THEN
        FOR r IN EXECUTE $q$
            SELECT job_id, config FROM timescaledb_information.jobs
            WHERE proc_name = 'ibcbench_run_job' ORDER BY job_id$q$
        LOOP
            IF to_regclass('cron.job') IS NULL THEN
                RAISE EXCEPTION 'pg_cron is not in this database (cron.database_name is %): the kit''s jobs stay TimescaleDB jobs',
                    coalesce(current_setting('cron.database_name', true), 'unset');
            END IF;
            PERFORM cron.schedule(r.config->>'name', r.config->>'cron', r.config->>'command');
            PERFORM delete_job(r.job_id);
        END LOOP;
    END IF;
    RETURN QUERY SELECT * FROM ibcbench_job_schedules() s ORDER BY s.job_name;
END
$$;
