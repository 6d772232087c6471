-- pg_cron maintenance jobs, named 'ibcbench-*'. pg_cron lives in one database per server
-- (cron.database_name); in any other database this migration schedules nothing and says so.
DO $$
DECLARE
    cron_db text := current_setting('cron.database_name', true);
    is_cagg boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron') THEN
        RAISE NOTICE 'ibcbench: pg_cron is not installed on this server; maintenance jobs not scheduled';
        RETURN;
    END IF;
    IF cron_db IS DISTINCT FROM current_database() THEN
        RAISE NOTICE 'ibcbench: pg_cron runs in database %, not %; maintenance jobs not scheduled here',
            coalesce(cron_db, '(pg_cron not preloaded)'), current_database();
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        CREATE EXTENSION pg_cron;
        INSERT INTO ibcbench_created_extensions (extname) VALUES ('pg_cron') ON CONFLICT DO NOTHING;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = ''hourly_packet_stats'' AND view_schema = current_schema())'
            INTO is_cagg;
    END IF;

    PERFORM cron.schedule('ibcbench-analyze', '17 * * * *', 'ANALYZE');
    PERFORM cron.schedule('ibcbench-refresh-user-statistics', '*/15 * * * *',
        'REFRESH MATERIALIZED VIEW CONCURRENTLY mv_user_statistics');
    IF NOT is_cagg THEN
        -- the continuous aggregate refreshes through its own policy; the plain view needs this job
        PERFORM cron.schedule('ibcbench-refresh-hourly-packet-stats', '*/5 * * * *',
            'REFRESH MATERIALIZED VIEW CONCURRENTLY hourly_packet_stats');
    END IF;
    PERFORM cron.schedule('ibcbench-reindex-bloated', '30 3 * * *',
        'SELECT count(*) FROM reindex_bloated_indexes()');
    PERFORM cron.schedule('ibcbench-archive-packet-flow', '45 3 * * 0',
        'SELECT archive_old_packets()');
    PERFORM cron.schedule('ibcbench-cleanup-cron-history', '0 4 * * *',
        $cmd$DELETE FROM cron.job_run_details WHERE end_time < now() - INTERVAL '7 days'$cmd$);
END
$$;
