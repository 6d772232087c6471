-- Open (pending or stuck, not deleted) operations by age. CONCURRENTLY, so this migration can be
-- applied to a live clearing_operations table without blocking writes; it stands alone in its file.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_clearing_operations_open
    ON clearing_operations (created_at) WHERE deleted_at IS NULL AND status IN ('pending', 'stuck');
