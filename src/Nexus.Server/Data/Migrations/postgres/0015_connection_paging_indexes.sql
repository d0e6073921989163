-- Issue 20 (scale): GET /v1/connections pages by keyset, newest first: ORDER BY created_at DESC, id DESC after the
-- (created_at, id) of the previous page's last row. With id in the index the position is an index range for a
-- workspace's list (ix_connections_workspace_page) and for a key that sees every workspace (ix_connections_created):
-- a page costs the same at the millionth row as at the first, instead of a scan of every row before it.
CREATE INDEX ix_connections_workspace_page ON connections (workspace_id, created_at, id);
CREATE INDEX ix_connections_created ON connections (created_at, id);
DROP INDEX ix_connections_workspace;
