-- packet_flow becomes a hypertable on created_at (1-day chunks) where TimescaleDB is installed in this
-- database; without TimescaleDB it stays a plain table and this migration does nothing.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable(
            'packet_flow',
            by_range('created_at', INTERVAL '1 day'),
            if_not_exists => true,
            migrate_data => true
        );
    ELSE
        RAISE NOTICE 'ibcbench: no TimescaleDB, packet_flow stays a plain table';
    END IF;
END
$$;
