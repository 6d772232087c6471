-- Drops only the extensions that 000001 created (recorded in ibcbench_created_extensions).
DO $$
DECLARE
    ext text;
BEGIN
    IF to_regclass('ibcbench_created_extensions') IS NULL THEN
        RETURN;
    END IF;
    FOR ext IN SELECT extname FROM ibcbench_created_extensions ORDER BY created_at DESC
    LOOP
        EXECUTE format('DROP EXTENSION IF EXISTS %I', ext);
    END LOOP;
END
$$;

DROP TABLE IF EXISTS ibcbench_created_extensions;
