-- One row per dataset span the kit loaded: what was generated (seed, parameters, checksums) and the
-- time span it covers. Loads are refused when they would overlap or repeat a span.
CREATE TABLE IF NOT EXISTS ibcbench_loads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    seed          bigint      NOT NULL,
    scale         text        NOT NULL,
    span_start    timestamptz NOT NULL,
    span_end      timestamptz NOT NULL,
    first_packet_id bigint    NOT NULL,
    last_packet_id  bigint    NOT NULL,
    rows          jsonb       NOT NULL,
    checksums     jsonb       NOT NULL,
    params        jsonb       NOT NULL,
    elapsed_s     double precision,
    CHECK (span_end > span_start)
);
