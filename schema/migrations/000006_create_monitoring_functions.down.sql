DROP FUNCTION IF EXISTS archive_old_packets(interval);
DROP FUNCTION IF EXISTS reindex_bloated_indexes(numeric, bigint, boolean);
DROP FUNCTION IF EXISTS calculate_network_health_score(text, integer);
DROP FUNCTION IF EXISTS analyze_query_performance(text);
DROP FUNCTION IF EXISTS check_index_effectiveness();
DROP TABLE IF EXISTS ibcbench_maintenance_log;
