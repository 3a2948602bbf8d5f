-- Channels: a room as a record (`POST /api/rooms`). Times are Unix milliseconds;
-- `private` is 1 when only the channel's members may join it.
CREATE TABLE channels (
    room TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    topic TEXT NOT NULL,
    private BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A private channel's members (its creator included).
CREATE TABLE channel_members (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room, user_id)
);

-- The channels a user may see.
CREATE INDEX channel_members_by_user ON channel_members (user_id);

-- Deleting a channel deletes its threads' replies.
CREATE INDEX messages_by_thread_parent ON messages (thread_parent);
