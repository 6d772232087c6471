-- Turns the hypertable back into a plain table with the same rows (TimescaleDB has no in-place way).
DO $$
BEGIN
    IF to_regclass('packet_flow') IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       OR NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                      WHERE hypertable_name = 'packet_flow' AND hypertable_schema = current_schema()) THEN
        RETURN;
    END IF;
    CREATE TABLE packet_flow_plain (LIKE packet_flow INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
    INSERT INTO packet_flow_plain SELECT * FROM packet_flow;
    DROP TABLE packet_flow;
    ALTER TABLE packet_flow_plain RENAME TO packet_flow;
    ALTER TABLE packet_flow ADD PRIMARY KEY (id, created_at);
END
$$;
