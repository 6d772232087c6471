DROP INDEX CONCURRENTLY IF EXISTS idx_clearing_operations_open;
