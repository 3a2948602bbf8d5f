-- The message log. One row per room ('' holds room-less global messages) with the last
-- offset given out; one row per message, its place in the room being `room_offset`
-- (1, 2, 3, ... without gaps). Times are Unix milliseconds. A deleted message keeps its
-- row as a tombstone (`deleted_at` set, content gone).
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    last_offset BIGINT NOT NULL
);

CREATE TABLE messages (
    room TEXT NOT NULL,
    room_offset BIGINT NOT NULL,
    id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    edited_at BIGINT,
    deleted_at BIGINT,
    PRIMARY KEY (room, room_offset)
);

-- Edits, deletes and `since` by id find a message by its id.
CREATE UNIQUE INDEX messages_by_id ON messages (id);
-- A user's messages, newest first.
CREATE INDEX messages_by_sender ON messages (sender_id, created_at);
-- The retention prune removes the oldest first.
CREATE INDEX messages_by_age ON messages (created_at);
