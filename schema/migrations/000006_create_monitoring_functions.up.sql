-- Monitoring and maintenance functions. Re-applied as a whole (CREATE OR REPLACE).

CREATE TABLE IF NOT EXISTS ibcbench_maintenance_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    job           text        NOT NULL,
    object_name   text,
    action        text        NOT NULL,
    detail        text,
    rows_affected bigint,
    elapsed_ms    double precision
);

-- Every index of the current schema (hypertable chunk indexes folded into their hypertable's index) with
-- its use since the last stats reset, its size and a verdict: constraint, redundant, unused, rarely used,
-- effective.
CREATE OR REPLACE FUNCTION check_index_effectiveness()
RETURNS TABLE (
    table_name        text,
    index_name        text,
    index_scans       bigint,
    tuples_read       bigint,
    tuples_fetched    bigint,
    index_size_bytes  bigint,
    table_seq_scans   bigint,
    index_scan_pct    numeric,
    verdict           text
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    chunk_map text := 'SELECT NULL::oid AS chunk_index, NULL::oid AS parent_index WHERE false';
    table_map text := 'SELECT NULL::oid AS chunk_table, NULL::oid AS parent_table WHERE false';
BEGIN
    IF to_regclass('_timescaledb_catalog.chunk_index') IS NOT NULL THEN
        chunk_map := $m$
            SELECT format('%I.%I', c.schema_name, ci.index_name)::regclass::oid AS chunk_index,
                   format('%I.%I', h.schema_name, ci.hypertable_index_name)::regclass::oid AS parent_index
            FROM _timescaledb_catalog.chunk_index ci
            JOIN _timescaledb_catalog.chunk c ON c.id = ci.chunk_id
            JOIN _timescaledb_catalog.hypertable h ON h.id = ci.hypertable_id
            WHERE NOT c.dropped
        $m$;
        table_map := $m$
            SELECT format('%I.%I', c.schema_name, c.table_name)::regclass::oid AS chunk_table,
                   format('%I.%I', h.schema_name, h.table_name)::regclass::oid AS parent_table
            FROM _timescaledb_catalog.chunk c
            JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
            WHERE NOT c.dropped
        $m$;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH chunk_map AS (%s),
        table_map AS (%s),
        stats AS (
            SELECT coalesce(m.parent_index, s.indexrelid)  AS indexrelid,
                   sum(s.idx_scan)::bigint                AS idx_scan,
                   sum(s.idx_tup_read)::bigint            AS idx_tup_read,
                   sum(s.idx_tup_fetch)::bigint           AS idx_tup_fetch,
                   sum(pg_relation_size(s.indexrelid))::bigint AS size
            FROM pg_stat_user_indexes s
            LEFT JOIN chunk_map m ON m.chunk_index = s.indexrelid
            GROUP BY 1
        ),
        idx AS (
            SELECT st.*, i.indrelid, i.indisunique, i.indisprimary, array_to_string((i.indkey::int2[])[0:i.indnkeyatts - 1], ' ') AS keys,
                   i.indpred IS NOT NULL AS partial, i.indnatts > i.indnkeyatts AS covering, ic.relname::text AS index_name,
                   tc.relname::text AS table_name, tc.relnamespace
            FROM stats st
            JOIN pg_index i ON i.indexrelid = st.indexrelid
            JOIN pg_class ic ON ic.oid = st.indexrelid
            JOIN pg_class tc ON tc.oid = i.indrelid
        ),
        tables AS (
            SELECT coalesce(tm.parent_table, t.relid) AS relid, sum(t.seq_scan)::bigint AS seq_scan
            FROM pg_stat_user_tables t
            LEFT JOIN table_map tm ON tm.chunk_table = t.relid
            GROUP BY 1
        )
        SELECT idx.table_name, idx.index_name, idx.idx_scan, idx.idx_tup_read, idx.idx_tup_fetch, idx.size,
               coalesce(tb.seq_scan, 0),
               round(100.0 * idx.idx_scan / nullif(idx.idx_scan + coalesce(tb.seq_scan, 0), 0), 2),
               CASE
                   WHEN idx.indisprimary OR idx.indisunique THEN 'constraint'
                   WHEN EXISTS (
                       SELECT 1 FROM idx o
                       WHERE o.indrelid = idx.indrelid AND o.indexrelid <> idx.indexrelid
                         AND NOT idx.partial AND NOT o.partial AND NOT idx.covering
                         AND (o.keys = idx.keys AND o.indexrelid < idx.indexrelid
                              OR o.keys LIKE idx.keys || ' %%')
                   ) THEN 'redundant'
                   WHEN idx.idx_scan = 0 THEN 'unused'
                   WHEN idx.idx_scan < coalesce(tb.seq_scan, 0) / 10 THEN 'rarely used'
                   ELSE 'effective'
               END
        FROM idx
        LEFT JOIN tables tb ON tb.relid = idx.indrelid
        WHERE idx.relnamespace = current_schema()::regnamespace
        ORDER BY idx.table_name, idx.index_name
    $q$, chunk_map, table_map);
END
$$;

-- Statements from pg_stat_statements in this database whose text contains `pattern` (a plain substring,
-- case-insensitive), the most expensive first.
CREATE OR REPLACE FUNCTION analyze_query_performance(pattern text DEFAULT '')
RETURNS TABLE (
    queryid            bigint,
    query              text,
    calls              bigint,
    total_exec_ms      double precision,
    mean_exec_ms       double precision,
    stddev_exec_ms     double precision,
    rows_returned      bigint,
    shared_blks_hit    bigint,
    shared_blks_read   bigint,
    cache_hit_pct      numeric,
    share_of_total_pct numeric
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ext_schema text;
BEGIN
    SELECT n.nspname INTO ext_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements';
    IF ext_schema IS NULL THEN
        RAISE EXCEPTION 'pg_stat_statements is not installed in this database: CREATE EXTENSION pg_stat_statements (it must also be in shared_preload_libraries)';
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH s AS (
            SELECT * FROM %I.pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ), total AS (SELECT nullif(sum(total_exec_time), 0) AS t FROM s)
        SELECT s.queryid, s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.stddev_exec_time,
               s.rows, s.shared_blks_hit, s.shared_blks_read,
               round(100.0 * s.shared_blks_hit / nullif(s.shared_blks_hit + s.shared_blks_read, 0), 2),
               round((100.0 * s.total_exec_time / total.t)::numeric, 2)
        FROM s, total
        WHERE s.query ILIKE '%%' || replace(replace(replace($1, '\', '\\'), '%%', '\%%'), '_', '\_') || '%%'
        ORDER BY s.total_exec_time DESC
        LIMIT 50
    $q$, ext_schema) USING coalesce(pattern, '');
END
$$;

-- A 0-100 health score per chain over the last `window_days` days of its own data (relative to the chain's
-- newest day, so historical datasets score too). NULL chain: every chain. Weights: success rate 50%,
-- speed 25% (100 at 0 s average clear time, 0 at 300 s and beyond), congestion 15%, stuck share 10%.
CREATE OR REPLACE FUNCTION calculate_network_health_score(p_chain_id text DEFAULT NULL, window_days integer DEFAULT 7)
RETURNS TABLE (
    chain_id               text,
    health_score           numeric,
    success_rate           numeric,
    avg_clear_time_seconds double precision,
    avg_congestion_score   numeric,
    stuck_packets          bigint,
    total_packets          bigint,
    days_observed          integer,
    grade                  text
)
LANGUAGE sql STABLE AS $$
    WITH latest AS (
        SELECT ns.chain_id, max(ns.date) AS last_date
        FROM network_stats ns
        WHERE p_chain_id IS NULL OR ns.chain_id = p_chain_id
        GROUP BY ns.chain_id
    ),
    stats AS (
        SELECT l.chain_id,
               sum(ns.total_packets)::bigint AS total_packets,
               100.0 * sum(ns.successful_packets) / nullif(sum(ns.successful_packets + ns.failed_packets), 0) AS success_rate,
               sum(ns.avg_clear_time_seconds * ns.total_packets) / nullif(sum(ns.total_packets), 0) AS avg_clear,
               count(*)::integer AS days_observed,
               l.last_date
        FROM latest l
        JOIN network_stats ns ON ns.chain_id = l.chain_id
             AND ns.date > l.last_date - window_days
        GROUP BY l.chain_id, l.last_date
    ),
    congestion AS (
        SELECT s.chain_id, avg(cp.congestion_score) AS congestion
        FROM stats s
        JOIN channel_performance cp ON cp.chain_id = s.chain_id
             AND cp.hour >= (s.last_date - window_days + 1)::timestamptz
        GROUP BY s.chain_id
    ),
    stuck AS (
        SELECT s.chain_id, count(pf.*) AS stuck
        FROM stats s
        LEFT JOIN packet_flow pf ON pf.source_chain = s.chain_id AND pf.status = 'stuck'
             AND pf.created_at >= (s.last_date - window_days + 1)::timestamptz
        GROUP BY s.chain_id
    ),
    scored AS (
        SELECT s.*, coalesce(c.congestion, 0) AS congestion, coalesce(k.stuck, 0) AS stuck,
               round((
                   0.50 * coalesce(s.success_rate, 0)
                 + 0.25 * greatest(0, 100 - coalesce(s.avg_clear, 300) / 3.0)
                 + 0.15 * (100 - coalesce(c.congestion, 0))
                 + 0.10 * greatest(0, 100 - 10000.0 * coalesce(k.stuck, 0) / nullif(s.total_packets, 0))
               )::numeric, 2) AS score
        FROM stats s
        LEFT JOIN congestion c USING (chain_id)
        LEFT JOIN stuck k USING (chain_id)
    )
    SELECT chain_id, score, round(success_rate::numeric, 2), avg_clear, round(congestion::numeric, 2), stuck,
           total_packets, days_observed,
           CASE WHEN score >= 90 THEN 'healthy' WHEN score >= 75 THEN 'degraded' ELSE 'unhealthy' END
    FROM scored
    ORDER BY score DESC, chain_id
$$;

-- B-tree indexes whose leaf density (pgstattuple's pgstatindex) is below 100 - min_bloat_pct; each is
-- rebuilt with REINDEX INDEX CONCURRENTLY through a dblink loopback connection (REINDEX CONCURRENTLY
-- cannot run inside a function's transaction). dry_run only reports. Every action is logged.
CREATE OR REPLACE FUNCTION reindex_bloated_indexes(
    min_bloat_pct numeric DEFAULT 30, min_size_bytes bigint DEFAULT 1048576, dry_run boolean DEFAULT false)
RETURNS TABLE (index_name text, size_bytes bigint, leaf_density numeric, action text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    density numeric;
    started timestamptz;
    conn text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple') THEN
        RAISE EXCEPTION 'pgstattuple is not installed in this database: CREATE EXTENSION pgstattuple';
    END IF;
    conn := format('dbname=%s port=%s host=%s user=%s', quote_literal(current_database()),
                   current_setting('port'),
                   quote_literal(split_part(current_setting('unix_socket_directories'), ',', 1)),
                   quote_literal(current_user));
    FOR r IN
        SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS qname, pg_relation_size(c.oid) AS size
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_am am ON am.oid = c.relam
        WHERE c.relkind = 'i' AND am.amname = 'btree'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT IN ('cron', '_timescaledb_catalog', '_timescaledb_config')
          AND pg_relation_size(c.oid) >= min_size_bytes
        ORDER BY pg_relation_size(c.oid) DESC
    LOOP
        SELECT avg_leaf_density INTO density FROM pgstatindex(r.oid::regclass);
        IF density IS NULL OR density = 'NaN' OR density >= 100 - min_bloat_pct THEN
            CONTINUE;
        END IF;
        index_name := r.qname; size_bytes := r.size; leaf_density := round(density, 2);
        IF dry_run THEN
            action := 'would reindex';
        ELSIF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'dblink') THEN
            action := 'needs REINDEX INDEX CONCURRENTLY (dblink not installed)';
        ELSE
            started := clock_timestamp();
            BEGIN
                EXECUTE 'SELECT dblink_exec($1, $2)' USING conn, format('REINDEX INDEX CONCURRENTLY %s', r.qname);
                action := 'reindexed';
            EXCEPTION WHEN OTHERS THEN
                action := 'reindex failed: ' || SQLERRM;
            END;
            INSERT INTO ibcbench_maintenance_log (job, object_name, action, detail, elapsed_ms)
            VALUES ('reindex_bloated_indexes', r.qname, action,
                    format('leaf density %s%%, size %s', round(density, 2), pg_size_pretty(r.size)),
                    extract(epoch FROM clock_timestamp() - started) * 1000);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Archival: packets older than `retention` before the NEWEST packet (not before now(), so a historical
-- benchmark dataset is never wiped by the schedule) are dropped: whole chunks with drop_chunks on a
-- hypertable, a DELETE on a plain table. Returns the number of chunks or rows removed.
CREATE OR REPLACE FUNCTION archive_old_packets(retention interval DEFAULT INTERVAL '180 days')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    newest timestamptz;
    cutoff timestamptz;
    removed bigint := 0;
    started timestamptz := clock_timestamp();
    is_hyper boolean := false;
BEGIN
    SELECT max(created_at) INTO newest FROM packet_flow;
    IF newest IS NULL THEN
        RETURN 0;
    END IF;
    cutoff := newest - retention;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = ''packet_flow'' AND hypertable_schema = current_schema())'
            INTO is_hyper;
    END IF;
    IF is_hyper THEN
        EXECUTE 'SELECT count(*) FROM drop_chunks(''packet_flow'', older_than => $1)' INTO removed USING cutoff;
    ELSE
        DELETE FROM packet_flow WHERE created_at < cutoff;
        GET DIAGNOSTICS removed = ROW_COUNT;
    END IF;
    INSERT INTO ibcbench_maintenance_log (job, object_name, action, detail, rows_affected, elapsed_ms)
    VALUES ('archive_old_packets', 'packet_flow', CASE WHEN is_hyper THEN 'drop_chunks' ELSE 'delete' END,
            format('older than %s (newest %s - %s)', cutoff, newest, retention), removed,
            extract(epoch FROM clock_timestamp() - started) * 1000);
    RETURN removed;
END
$$;
