-- Extensions the schema uses, created only where the server has them. The ones this migration
-- creates are recorded, so that the down migration drops those and nothing it did not create.
CREATE TABLE IF NOT EXISTS ibcbench_created_extensions (
    extname    text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    ext text;
BEGIN
    FOREACH ext IN ARRAY ARRAY['timescaledb', 'pg_stat_statements', 'hypopg', 'pgstattuple', 'dblink']
    LOOP
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = ext)
           AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = ext) THEN
            EXECUTE format('CREATE EXTENSION %I', ext);
            INSERT INTO ibcbench_created_extensions (extname) VALUES (ext) ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RAISE NOTICE 'ibcbench: TimescaleDB is not available on this server; packet_flow will be a plain table';
    END IF;
END
$$;
