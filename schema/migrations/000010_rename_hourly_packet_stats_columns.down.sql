-- hourly_packet_stats back to the column names of 000005.
DO $$
DECLARE
    r record;
BEGIN
    IF to_regclass('hourly_packet_stats') IS NULL THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM (VALUES ('hour', 'bucket'),
                                   ('src_chain_id', 'source_chain'),
                                   ('avg_clear_time', 'avg_clear_time_seconds')) AS v(old_name, new_name)
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
