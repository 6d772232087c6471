-- The load journal: one row per load attempt, written on a connection of its own outside the load's
-- transaction, so an interrupted load leaves a trace (ibcbench_loads only ever holds committed loads).
-- A row starts 'running' with the load's backend (pid and start time); it ends 'committed', 'skipped'
-- (the same folder again), 'failed' (with the one-line reason) or 'interrupted' (Ctrl-C). A load that
-- was killed leaves 'running': the next load finds that its backend is gone and marks it 'abandoned'
-- (or 'committed' when ibcbench_loads holds its row: it was cut off after COMMIT).
CREATE TABLE ibcbench_load_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    source        text        NOT NULL,
    checksums     jsonb,
    backend_pid   integer     NOT NULL,
    backend_start timestamptz,
    status        text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'committed', 'skipped', 'failed', 'interrupted', 'abandoned')),
    message       text,
    CHECK ((status = 'running') = (ended_at IS NULL))
);

-- the committed load of an attempt (NULL for loads before the journal)
ALTER TABLE ibcbench_loads ADD COLUMN attempt_id bigint
    REFERENCES ibcbench_load_attempts (id) ON DELETE SET NULL;
