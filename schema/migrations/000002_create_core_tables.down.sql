DROP TABLE IF EXISTS packet_flow;
DROP TABLE IF EXISTS relayer_performance;
DROP TABLE IF EXISTS channel_performance;
DROP TABLE IF EXISTS network_stats;
DROP TABLE IF EXISTS clearing_operations;
DROP FUNCTION IF EXISTS ibcbench_touch_updated_at();
