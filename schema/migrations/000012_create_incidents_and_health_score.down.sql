-- Back to 000006's health score (a weighted average over the window) and no incident table.
DROP FUNCTION IF EXISTS calculate_network_health_score(text, integer);
-- A 0-100 health score per chain over the last `window_days` days of its own data (relative to the chain's
-- newest day, so historical datasets score too). NULL chain: every chain. Weights: success rate 50%,
-- speed 25% (100 at 0 s average clear time, 0 at 300 s and beyond), congestion 15%, stuck share 10%.
CREATE FUNCTION calculate_network_health_score(p_chain_id text DEFAULT NULL, window_days integer DEFAULT 7)
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

DROP TABLE IF EXISTS ibcbench_incidents;
