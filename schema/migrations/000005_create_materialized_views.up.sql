-- mv_user_statistics: per wallet, refreshed CONCURRENTLY by pg_cron (000007), hence the unique index.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_user_statistics AS
SELECT wallet_address,
       count(*)                                                   AS total_operations,
       count(*) FILTER (WHERE status = 'completed')               AS completed_operations,
       count(*) FILTER (WHERE status IN ('refunded', 'failed'))   AS failed_operations,
       count(*) FILTER (WHERE status IN ('pending', 'stuck'))     AS open_operations,
       coalesce(sum(amount_usd), 0)::numeric(20,2)                AS total_volume_usd,
       count(DISTINCT destination_chain)                          AS destination_chains,
       min(created_at)                                            AS first_operation_at,
       max(created_at)                                            AS last_operation_at
FROM clearing_operations
WHERE deleted_at IS NULL
GROUP BY wallet_address
WITH DATA;

CREATE UNIQUE INDEX IF NOT EXISTS mv_user_statistics_wallet_key ON mv_user_statistics (wallet_address);
CREATE INDEX IF NOT EXISTS mv_user_statistics_volume ON mv_user_statistics (total_volume_usd DESC);

-- hourly_packet_stats: per hour and source chain. Three shapes, the same columns:
--  * TimescaleDB Community edition: a continuous aggregate with a refresh policy;
--  * TimescaleDB Apache edition (no continuous aggregates): a plain materialized view over time_bucket,
--    with a unique index, refreshed CONCURRENTLY by pg_cron (000007);
--  * no TimescaleDB: the same plain view over date_trunc.
-- `ibcbench db status` and `ibcbench schema version` say which one this database has.
DO $$
DECLARE
    has_tsdb boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    licensed boolean := coalesce(current_setting('timescaledb.license', true), '') = 'timescale';
    bucket   text;
BEGIN
    IF to_regclass('hourly_packet_stats') IS NOT NULL THEN
        RETURN;
    END IF;
    IF has_tsdb AND licensed THEN
        EXECUTE $cagg$
            CREATE MATERIALIZED VIEW hourly_packet_stats
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT time_bucket(INTERVAL '1 hour', created_at)        AS bucket,
                   source_chain,
                   count(*)                                          AS packet_count,
                   count(*) FILTER (WHERE status = 'acknowledged')   AS acknowledged_count,
                   count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_count,
                   avg(clear_time_seconds)                           AS avg_clear_time_seconds
            FROM packet_flow
            GROUP BY 1, 2
            WITH NO DATA
        $cagg$;
        PERFORM add_continuous_aggregate_policy('hourly_packet_stats',
            start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
            schedule_interval => INTERVAL '5 minutes');
        CREATE INDEX IF NOT EXISTS hourly_packet_stats_chain_bucket
            ON hourly_packet_stats (source_chain, bucket DESC);
        RAISE NOTICE 'ibcbench: hourly_packet_stats is a continuous aggregate';
    ELSE
        bucket := CASE WHEN has_tsdb THEN 'time_bucket(INTERVAL ''1 hour'', created_at)'
                       ELSE 'date_trunc(''hour'', created_at)' END;
        EXECUTE format($mv$
            CREATE MATERIALIZED VIEW hourly_packet_stats AS
            SELECT %s                                                AS bucket,
                   source_chain,
                   count(*)                                          AS packet_count,
                   count(*) FILTER (WHERE status = 'acknowledged')   AS acknowledged_count,
                   count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_count,
                   avg(clear_time_seconds)                           AS avg_clear_time_seconds
            FROM packet_flow
            GROUP BY 1, 2
            WITH DATA
        $mv$, bucket);
        CREATE UNIQUE INDEX IF NOT EXISTS hourly_packet_stats_bucket_chain_key
            ON hourly_packet_stats (bucket, source_chain);
        CREATE INDEX IF NOT EXISTS hourly_packet_stats_chain_bucket
            ON hourly_packet_stats (source_chain, bucket DESC);
        IF has_tsdb THEN
            RAISE NOTICE 'ibcbench: TimescaleDB Apache edition has no continuous aggregates; hourly_packet_stats is a plain materialized view refreshed by pg_cron';
        ELSE
            RAISE NOTICE 'ibcbench: no TimescaleDB; hourly_packet_stats is a plain materialized view refreshed by pg_cron';
        END IF;
    END IF;
END
$$;
