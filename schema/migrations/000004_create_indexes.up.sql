-- Secondary indexes for the service's query patterns. The seed's named indexes first, then the
-- composite, covering and partial ones its queries need. Plain CREATE INDEX: the tables are new here
-- (CREATE INDEX CONCURRENTLY is not supported on hypertables anyway).

-- wallet history: WHERE wallet_address = $1 ORDER BY created_at DESC LIMIT n
CREATE INDEX IF NOT EXISTS idx_clearing_operations_wallet_created
    ON clearing_operations (wallet_address, created_at DESC);
-- wallet by status: WHERE wallet_address = $1 AND status = $2
CREATE INDEX IF NOT EXISTS idx_clearing_operations_wallet_status
    ON clearing_operations (wallet_address, status);
-- packets by status over time: WHERE status = $1 AND created_at > $2
CREATE INDEX IF NOT EXISTS idx_packet_flow_status_created
    ON packet_flow (status, created_at DESC);
-- packet lookup: WHERE source_chain = $1 AND source_channel = $2 AND sequence = $3
CREATE INDEX IF NOT EXISTS idx_packet_flow_channel_sequence
    ON packet_flow (source_chain, source_channel, sequence);
-- network stats for a chain over a date range; covering, so the range scan never visits the heap
CREATE INDEX IF NOT EXISTS idx_network_stats_chain_date
    ON network_stats (chain_id, date DESC)
    INCLUDE (total_packets, successful_packets, failed_packets, success_rate, avg_clear_time_seconds);
-- relayer leaderboard: WHERE date = $1 ORDER BY reputation_score DESC LIMIT n
CREATE INDEX IF NOT EXISTS idx_relayer_performance_reputation
    ON relayer_performance (date DESC, reputation_score DESC);

-- partial: stuck packets in a recent window; tiny, since stuck packets are well under 1%
CREATE INDEX IF NOT EXISTS idx_packet_flow_stuck
    ON packet_flow (created_at DESC)
    INCLUDE (source_chain, source_channel, sequence)
    WHERE status = 'stuck';
-- a sender's packets over time
CREATE INDEX IF NOT EXISTS idx_packet_flow_sender_created
    ON packet_flow (sender, created_at DESC);
-- channel dashboards: WHERE chain_id = $1 AND channel_id = $2 AND hour >= $3 is served by the UNIQUE key;
-- the congestion overview scans recent hours across channels
CREATE INDEX IF NOT EXISTS idx_channel_performance_hour_congestion
    ON channel_performance (hour DESC, congestion_score DESC);
