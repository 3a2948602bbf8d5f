-- Keys of server API requests that take effect once (the `Idempotency-Key` header):
-- held while the request runs (`result` NULL), then with its result as JSON, until
-- `expires_at` (Unix milliseconds).
CREATE TABLE request_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result TEXT,
    expires_at BIGINT NOT NULL
);

-- The retention prune removes expired keys.
CREATE INDEX request_keys_by_expiry ON request_keys (expires_at);
