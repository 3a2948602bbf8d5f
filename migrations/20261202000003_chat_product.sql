-- The chat product: display names that clients chose, and read positions.

-- Whether a message's `sender_name` is the client's own choice (an anonymous
-- connection's `auth.name` or `?name=`): 1, or NULL/0 when a token or the application's
-- backend named the sender.
ALTER TABLE messages ADD COLUMN sender_unverified BIGINT;

-- A thread reply is stored in its thread's own room, `thread:{root id}` (offsets of its
-- own); this names the root's room.
ALTER TABLE messages ADD COLUMN thread_parent TEXT;

-- The text search finds a message by (its `data.content`, NULL for tombstones and
-- messages without one), kept beside `data` so neither database has to parse JSON to
-- index it.
ALTER TABLE messages ADD COLUMN search_text TEXT;

-- Where each user has read up to in each room (`message:read`): only moves forward.
-- Positions of anonymous users (a connection id) go a day after their last move.
CREATE TABLE read_positions (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    read_offset BIGINT NOT NULL,
    anonymous BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);

-- A user's rooms, most recently read first.
CREATE INDEX read_positions_by_user ON read_positions (user_id, updated_at);
-- The prune removes stale anonymous positions.
CREATE INDEX read_positions_by_age ON read_positions (anonymous, updated_at);

-- Reactions: one per user, emoji and message (`message:react`).
CREATE TABLE reactions (
    message_id TEXT NOT NULL,
    emoji TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- The retention prune removes the oldest first.
CREATE INDEX reactions_by_age ON reactions (created_at);
-- The count-limit prune removes a room's reactions whose messages went.
CREATE INDEX reactions_by_room ON reactions (room);
