-- The incidents planted in the generated traffic (data_gen.incidents), as each load's manifest lists
-- them, and a network health score that sees trouble an average over a week hides.
CREATE TABLE ibcbench_incidents (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_id                 bigint      NOT NULL REFERENCES ibcbench_loads (id) ON DELETE CASCADE,
    kind                    text        NOT NULL
        CHECK (kind IN ('chain_halt', 'relayer_outage', 'congestion', 'client_expiry')),
    chain_id                text        NOT NULL,
    channel_id              text,
    counterparty_chain_id   text,
    counterparty_channel_id text,
    relayer                 text,
    started_at              timestamptz NOT NULL,
    ended_at                timestamptz NOT NULL,
    detail                  jsonb       NOT NULL DEFAULT '{}',
    CHECK (ended_at > started_at)
);

-- The score of 000006 averaged a week: a two-hour halt moved it by half a point, and every chain landed
-- between 91 and 92.5. This one adds the hours in trouble. A chain's hour counts every channel hour of
-- channel_performance it is either end of (a halted chain sends nothing: its trouble shows in what is sent
-- to it). An hour is in trouble when, smoothed with 20 pseudo-packets of normal traffic (99% acknowledged,
-- 60 s to clear, 0.15% open), fewer than 80% of its packets were acknowledged, or they took more than 240 s
-- on average (each channel hour's average capped at 900 s, so one channel's hours-late acknowledgements do
-- not drown its counterparty's hour), or more than 3% are still open (stuck). The last two hours of the data
-- are not judged (their packets could not have finished yet). Weights: success rate 30%, speed 15% (100 at
-- 0 s, 0 at 300 s), congestion 10%, stuck share 5%, and 40% for steadiness: 100 less 25 per hour in trouble.
-- So a chain with no trouble scores about 95, each hour in trouble costs 10 points, four or more cost 40.
-- A chain without channel hours in the window falls back to network_stats' figures of what it sent.
DROP FUNCTION calculate_network_health_score(text, integer);
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
    grade                  text,
    trouble_hours          integer
)
LANGUAGE sql STABLE AS $$
    WITH latest AS (
        SELECT ns.chain_id, max(ns.date) AS last_date
        FROM network_stats ns
        WHERE p_chain_id IS NULL OR ns.chain_id = p_chain_id
        GROUP BY ns.chain_id
    ),
    stats AS (
        SELECT l.chain_id, sum(ns.total_packets)::bigint AS total_packets, count(*)::integer AS days_observed,
               100.0 * sum(ns.successful_packets) / nullif(sum(ns.successful_packets + ns.failed_packets), 0)
                   AS sent_success_rate,
               sum(ns.avg_clear_time_seconds * ns.total_packets) / nullif(sum(ns.total_packets), 0) AS sent_avg_clear,
               l.last_date, (l.last_date - window_days + 1)::timestamptz AS since
        FROM latest l
        JOIN network_stats ns ON ns.chain_id = l.chain_id AND ns.date > l.last_date - window_days
        GROUP BY l.chain_id, l.last_date
    ),
    sides AS (
        SELECT s.chain_id, cp.hour, cp.packets_sent, cp.packets_acknowledged,
               cp.packets_failed + cp.packets_timed_out AS failed, cp.packets_pending, cp.avg_clear_time_seconds,
               cp.congestion_score
        FROM stats s JOIN channel_performance cp ON cp.chain_id = s.chain_id AND cp.hour >= s.since
        UNION ALL
        SELECT s.chain_id, cp.hour, cp.packets_sent, cp.packets_acknowledged,
               cp.packets_failed + cp.packets_timed_out, cp.packets_pending, cp.avg_clear_time_seconds,
               cp.congestion_score
        FROM stats s JOIN channel_performance cp ON cp.counterparty_chain_id = s.chain_id AND cp.hour >= s.since
    ),
    hourly AS (
        SELECT sd.chain_id, sd.hour,
               sum(sd.packets_sent) AS sent, sum(sd.packets_acknowledged) AS acked, sum(sd.failed) AS failed,
               sum(sd.packets_pending) AS open,
               sum(sd.packets_acknowledged + sd.failed) AS finished,
               sum(coalesce(sd.avg_clear_time_seconds, 0) * (sd.packets_acknowledged + sd.failed)) AS clear_sum,
               sum(least(coalesce(sd.avg_clear_time_seconds, 0), 900) * (sd.packets_acknowledged + sd.failed))
                   AS clear_sum_capped,
               sum(sd.congestion_score * sd.packets_sent) AS congestion_sum
        FROM sides sd
        GROUP BY sd.chain_id, sd.hour
    ),
    trouble AS (
        SELECT h.chain_id,
               count(*) FILTER (WHERE
                   (h.acked + 20 * 0.99) / (h.sent + 20) < 0.80
                   OR (h.clear_sum_capped + 20 * 60.0) / (h.finished + 20) > 240
                   OR (h.open + 20 * 0.0015) / (h.sent + 20) > 0.03
               )::integer AS hours
        FROM hourly h
        WHERE h.hour < (SELECT max(hour) FROM channel_performance) - interval '1 hour'
        GROUP BY h.chain_id
    ),
    totals AS (
        SELECT h.chain_id,
               100.0 * sum(h.acked) / nullif(sum(h.acked + h.failed), 0) AS success_rate,
               sum(h.clear_sum) / nullif(sum(h.finished), 0) AS avg_clear,
               sum(h.congestion_sum) / nullif(sum(h.sent), 0) AS congestion
        FROM hourly h
        GROUP BY h.chain_id
    ),
    stuck AS (
        SELECT s.chain_id, count(pf.*) AS stuck
        FROM stats s
        LEFT JOIN packet_flow pf ON pf.source_chain = s.chain_id AND pf.status = 'stuck'
             AND pf.created_at >= s.since
        GROUP BY s.chain_id
    ),
    scored AS (
        SELECT s.chain_id, s.total_packets, s.days_observed,
               coalesce(t.success_rate, s.sent_success_rate) AS success_rate,
               coalesce(t.avg_clear, s.sent_avg_clear) AS avg_clear,
               coalesce(t.congestion, 0) AS congestion, coalesce(k.stuck, 0) AS stuck,
               coalesce(tr.hours, 0) AS hours,
               round((
                   0.30 * coalesce(t.success_rate, s.sent_success_rate, 0)
                 + 0.15 * greatest(0, 100 - coalesce(t.avg_clear, s.sent_avg_clear, 300) / 3.0)
                 + 0.10 * (100 - coalesce(t.congestion, 0))
                 + 0.05 * greatest(0, 100 - 10000.0 * coalesce(k.stuck, 0) / nullif(s.total_packets, 0))
                 + 0.40 * greatest(0, 100 - 25.0 * coalesce(tr.hours, 0))
               )::numeric, 2) AS score
        FROM stats s
        LEFT JOIN totals t USING (chain_id)
        LEFT JOIN stuck k USING (chain_id)
        LEFT JOIN trouble tr USING (chain_id)
    )
    SELECT chain_id, score, round(success_rate::numeric, 2), avg_clear, round(congestion::numeric, 2), stuck,
           total_packets, days_observed,
           CASE WHEN score >= 90 THEN 'healthy' WHEN score >= 75 THEN 'degraded' ELSE 'unhealthy' END,
           hours
    FROM scored
    ORDER BY score DESC, chain_id
$$;
