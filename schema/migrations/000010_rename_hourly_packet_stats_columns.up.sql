-- hourly_packet_stats with the seed's column names, so that the seed's queries run as pasted:
--   bucket -> hour, source_chain -> src_chain_id, avg_clear_time_seconds -> avg_clear_time (seconds);
-- packet_count keeps its name, and the kit's extra columns (acknowledged_count, failed_count) stay.
-- A rename, not a rebuild, in all three shapes 000005 creates (continuous aggregate, plain materialized
-- view over time_bucket or date_trunc): the data, the refresh policy, the pg_cron refresh job and the
-- indexes (whose names keep the old words) carry over. Re-runnable: only old names are renamed.
DO $$
DECLARE
    r record;
BEGIN
    IF to_regclass('hourly_packet_stats') IS NULL THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM (VALUES ('bucket', 'hour'),
                                   ('source_chain', 'src_chain_id'),
                                   ('avg_clear_time_seconds', 'avg_clear_time')) AS v(old_name, new_name)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = to_regclass('hourly_packet_stats') AND attname = r.old_name
                     AND NOT attisdropped) THEN
            EXECUTE format('ALTER MATERIALIZED VIEW hourly_packet_stats RENAME COLUMN %I TO %I',
                           r.old_name, r.new_name);
        END IF;
    END LOOP;
END
$$;
