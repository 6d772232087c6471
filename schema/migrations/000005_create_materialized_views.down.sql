DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates
                   WHERE view_name = 'hourly_packet_stats' AND view_schema = current_schema()) THEN
        DROP MATERIALIZED VIEW hourly_packet_stats CASCADE;
    END IF;
END
$$;
DROP MATERIALIZED VIEW IF EXISTS hourly_packet_stats;
DROP MATERIALIZED VIEW IF EXISTS mv_user_statistics;
