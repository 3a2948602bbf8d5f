//! `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP endpoints and the
//! WebSocket upgrade routes. The realtime messages themselves are described by
//! docs/asyncapi.yaml.

use serde_json::{json, Value};

fn error_ref(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

/// `{"$ref": "#/components/schemas/NAME"}`.
fn ok_schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A server API operation: `method` on a route with `path_params`, the request body
/// schema (and whether it is required), whether it takes an Idempotency-Key, and the
/// 200 body's schema.
fn server_op(
    method: &str,
    summary: &str,
    body: Option<(&str, bool)>,
    idempotent: bool,
    ok: Value,
    path_params: &[&str],
) -> Value {
    let mut parameters: Vec<Value> = path_params
        .iter()
        .map(|name| {
            let schema = match *name {
                "room" => ok_schema("RoomName"),
                "id" => json!({ "type": "string", "format": "uuid" }),
                _ => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    if idempotent {
        parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false,
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
            "description": "The same key within 10 minutes publishes once; repeats answer the first result with Idempotent-Replayed: true" }));
    }
    let mut op = json!({
        "tags": ["Server API"],
        "summary": summary,
        "security": [ { "ServerApiKey": [] } ],
        "parameters": parameters,
        "responses": {
            "200": { "description": "Done", "content": { "application/json": { "schema": ok } } },
            "400": error_ref("Bad body, room, id or query (INVALID_PAYLOAD, MESSAGE_TOO_LARGE)"),
            "401": error_ref("API key missing or not accepted (AUTH_FAILED)"),
            "404": error_ref("The server API is off: no SERVER_API_KEYS (NOT_FOUND)"),
            "409": error_ref("A request with the same Idempotency-Key is still running (CONFLICT)"),
            "503": error_ref("The message log, Redis or another pod did not answer (UNAVAILABLE)")
        }
    });
    if let Some((schema, required)) = body {
        op["requestBody"] = json!({ "required": required,
            "content": { "application/json": { "schema": ok_schema(schema) } } });
    }
    json!({ method: op })
}

fn server_history() -> Value {
    let mut op = server_op(
        "get",
        "A page of any room's history (no room rules)",
        None,
        false,
        ok_schema("HistoryPage"),
        &["room"],
    );
    if let Some(params) = op["get"]["parameters"].as_array_mut() {
        params.push(json!({ "name": "before", "in": "query", "required": false, "schema": ok_schema("MessageRef") }));
        params.push(json!({ "name": "limit", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 } }));
    }
    op
}

fn upgrade(summary: &str, with_room: bool) -> Value {
    let mut parameters = vec![
        json!({ "name": "token", "in": "query", "required": false, "schema": { "type": "string" },
                "description": "JWT, for clients that cannot set headers" }),
        json!({ "name": "since", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/MessageRef" },
                "description": "The offset (or, for compatibility, the id) of the last message seen: the messages stored after it come first (needs a room)" }),
        json!({ "name": "name", "in": "query", "required": false, "schema": { "type": "string", "minLength": 1, "maxLength": 64 },
                "description": "A display name the client chose: taken, marked unverified, where no token names the user" }),
        json!({ "name": "format", "in": "query", "required": false, "schema": { "enum": ["realtime", "streamly"], "default": "realtime" },
                "description": "streamly: the connection speaks the Streamly dialect (seed 003) from the start, with no welcome frame" }),
    ];
    if with_room {
        parameters.push(json!({ "name": "room", "in": "path", "required": true,
            "schema": { "$ref": "#/components/schemas/RoomName" } }));
    } else {
        parameters.push(json!({ "name": "room", "in": "query", "required": false,
            "schema": { "$ref": "#/components/schemas/RoomName" } }));
    }
    json!({
        "get": {
            "tags": ["WebSocket"],
            "summary": summary,
            "description": "Upgrades to a WebSocket speaking the realtime.Message JSON protocol (docs/asyncapi.yaml). Everything is checked before the upgrade.",
            "parameters": parameters,
            "responses": {
                "101": { "description": "Switching Protocols: the WebSocket is open; the first frame is the welcome" },
                "400": error_ref("Invalid room name, since or query string (INVALID_PAYLOAD)"),
                "401": error_ref("Missing or invalid token (AUTH_FAILED)"),
                "403": error_ref("Origin not allowed or room forbidden (FORBIDDEN)"),
                "429": error_ref("Too many connection attempts or connections (RATE_LIMITED)")
            }
        }
    })
}

/// The OpenAPI document.
pub fn document() -> Value {
    let history = json!({
        "get": {
            "tags": ["History"],
            "summary": "A page of a room's history, read from the message log",
            "parameters": [
                { "name": "room", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/RoomName" } },
                { "name": "before", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/MessageRef" },
                  "description": "The page ends just before this message: an offset or a message id (none: the newest)" },
                { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 } },
                { "name": "token", "in": "query", "required": false, "schema": { "type": "string" } }
            ],
            "responses": {
                "200": { "description": "Messages, oldest first", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HistoryPage" } } } },
                "400": error_ref("Bad room, before or limit (INVALID_PAYLOAD)"),
                "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                "403": error_ref("Room not allowed for this user (FORBIDDEN)"),
                "429": error_ref("Too many reads (RATE_LIMITED)"),
                "503": error_ref("The message log did not answer in time or failed (UNAVAILABLE); retry after Retry-After")
            }
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chatwire",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Realtime chat over Socket.IO and raw WebSocket. HTTP endpoints and WebSocket upgrade routes; realtime messages are in docs/asyncapi.yaml."
        },
        "tags": [
            { "name": "WebSocket", "description": "Raw WebSocket upgrade routes" },
            { "name": "History", "description": "Chat history and rooms" },
            { "name": "Channels", "description": "Rooms as records: title, topic, private with members. A user (a token) or the server API (an API key in Authorization: Bearer)" },
            { "name": "Operations", "description": "Health, readiness, metrics" }
        ],
        "paths": {
            "/ws": upgrade("Raw WebSocket, global or ?room=", false),
            "/ws/{room}": upgrade("Raw WebSocket joined to a room", true),
            "/api/chat-api/ws": upgrade("Raw WebSocket, global or ?room= (prefixed)", false),
            "/api/chat-api/ws/{room}": upgrade("Raw WebSocket joined to a room (prefixed)", true),
            "/api/rooms/{room}/messages": history,
            "/api/rooms/{room}/unread": { "get": { "tags": ["History"], "summary": "The caller's read position and unread count in a room (message:read moves it)",
                "parameters": [
                    { "name": "room", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/RoomName" } },
                    { "name": "token", "in": "query", "required": false, "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "Position and count", "content": { "application/json": { "schema": {
                        "allOf": [ ok_schema("Unread"), { "type": "object", "required": ["status", "room"], "properties": {
                            "status": { "const": "ok" }, "room": { "type": "string" } } } ] } } } },
                    "400": error_ref("Bad room name (INVALID_PAYLOAD)"),
                    "401": error_ref("No token, or an invalid one: read positions belong to users (AUTH_FAILED)"),
                    "403": error_ref("Room not allowed for this user (FORBIDDEN)"),
                    "429": error_ref("Too many reads (RATE_LIMITED)"),
                    "503": error_ref("The database did not answer (UNAVAILABLE)") } } },
            "/api/rooms/{room}/search": { "get": { "tags": ["History"], "summary": "The room's stored messages with every word of q, newest first",
                "parameters": [
                    { "name": "room", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/RoomName" } },
                    { "name": "q", "in": "query", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 200 } },
                    { "name": "before", "in": "query", "required": false, "schema": { "type": "string", "format": "uuid" },
                      "description": "The id of the last message of the page before" },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 } },
                    { "name": "token", "in": "query", "required": false, "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "Matches, newest first", "content": { "application/json": { "schema": ok_schema("HistoryPage") } } },
                    "400": error_ref("Bad room, q, before or limit (INVALID_PAYLOAD)"),
                    "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                    "403": error_ref("Room not allowed for this user (FORBIDDEN)"),
                    "429": error_ref("Too many reads (RATE_LIMITED)"),
                    "503": error_ref("The database did not answer (UNAVAILABLE)") } } },
            "/api/unread": { "get": { "tags": ["History"], "summary": "The caller's rooms with a read position, most recently read first (at most 100), with unread counts",
                "parameters": [ { "name": "token", "in": "query", "required": false, "schema": { "type": "string" } } ],
                "responses": {
                    "200": { "description": "Rooms", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["status", "rooms"], "properties": {
                            "status": { "const": "ok" },
                            "rooms": { "type": "array", "items": { "allOf": [ ok_schema("Unread"), { "type": "object", "required": ["room"],
                                "properties": { "room": { "type": "string" } } } ] } } } } } } },
                    "401": error_ref("No token, or an invalid one: read positions belong to users (AUTH_FAILED)"),
                    "429": error_ref("Too many reads (RATE_LIMITED)"),
                    "503": error_ref("The database did not answer (UNAVAILABLE)") } } },
            "/api/rooms": rooms_routes(),
            "/api/rooms/{room}": room_routes(),
            "/api/cluster/sockets": { "get": { "tags": ["Operations"], "summary": "Socket.IO sockets and rooms on every pod",
                "responses": { "200": { "description": "Listing", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "503": error_ref("Cluster request failed") } } },
            "/health": { "get": { "tags": ["Operations"], "summary": "Liveness and counters",
                "responses": { "200": { "description": "Always 200 while the process serves", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["status", "redis"], "properties": {
                        "status": { "const": "ok" }, "redis": { "enum": ["disabled", "up", "down"] },
                        "connections": { "type": "object" }, "rooms": { "type": "integer" },
                        "dropped": { "type": "integer" }, "undelivered": { "type": "integer" }, "version": { "type": "string" } } } } } } } } },
            "/ready": { "get": { "tags": ["Operations"], "summary": "Readiness for traffic",
                "responses": { "200": { "description": "Ready" }, "503": { "description": "Draining, or Redis configured but unreachable" } } } },
            "/metrics": { "get": { "tags": ["Operations"], "summary": "Prometheus metrics",
                "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/openapi.json": { "get": { "tags": ["Operations"], "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/api/server/publish": server_op("post", "Publish a message to a room or to everyone, as the server or on behalf of a user",
                Some(("PublishRequest", true)), true, ok_schema("PublishAck"), &[]),
            "/api/server/broadcast": server_op("post", "Publish one message to each of many rooms",
                Some(("BroadcastRequest", true)), false,
                json!({ "type": "object", "required": ["status", "results"], "properties": {
                    "status": { "const": "ok" },
                    "results": { "type": "array", "items": { "type": "object" } } } }), &[]),
            "/api/server/users/{user}/disconnect": server_op("post", "End every connection of a user on every pod (each hears session:ended first)",
                Some(("Reason", false)), false, ok_schema("CommandAck"), &["user"]),
            "/api/server/users/{user}/connections": server_op("get", "A user's connections on every pod",
                None, false, connections_schema(), &["user"]),
            "/api/server/rooms": server_op("get", "Every room with members and its member count, across pods",
                None, false, json!({ "type": "object" }), &[]),
            "/api/server/rooms/{room}/kick": server_op("post", "Remove a user from a room on every pod (the room hears room:removed first)",
                Some(("KickRequest", true)), false, ok_schema("CommandAck"), &["room"]),
            "/api/server/rooms/{room}/presence": server_op("get", "Who is online in a room, across pods",
                None, false, json!({ "type": "object" }), &["room"]),
            "/api/server/rooms/{room}/messages": server_history(),
            "/api/server/rooms/{room}/messages/{id}": {
                "patch": server_op("patch", "Replace any message's content (moderation); the room gets message:updated",
                    Some(("EditRequest", true)), false, json!({ "type": "object" }), &["room", "id"])["patch"].clone(),
                "delete": server_op("delete", "Delete any message (moderation; its tombstone stays); the room gets message:deleted",
                    None, false, json!({ "type": "object" }), &["room", "id"])["delete"].clone()
            },
            "/api/server/sockets": server_op("get", "Socket.IO sockets and rooms on every pod, unfiltered",
                None, false, json!({ "type": "object" }), &[])
        },
        "security": [],
        "components": {
            "securitySchemes": {
                "ServerApiKey": { "type": "http", "scheme": "bearer",
                    "description": "One of SERVER_API_KEYS (never a user's token)" }
            },
            "schemas": {
                "PublishRequest": { "type": "object", "additionalProperties": false, "properties": {
                    "room": { "anyOf": [ { "$ref": "#/components/schemas/RoomName" }, { "type": "null" } ], "description": "Absent or null: to everyone" },
                    "type": { "enum": ["notification", "system", "chat"], "description": "Default: notification as the server, chat with from" },
                    "from": { "type": "string", "description": "The user id it is sent as (absent: the server)" },
                    "name": { "type": "string", "description": "Display name kept beside it" },
                    "content": { "type": "string" },
                    "data": { "type": "object", "description": "More of the message's data; content is put in it" } } },
                "BroadcastRequest": { "type": "object", "additionalProperties": false, "required": ["rooms"], "properties": {
                    "rooms": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "$ref": "#/components/schemas/RoomName" } },
                    "type": { "enum": ["notification", "system", "chat"] },
                    "from": { "type": "string" }, "name": { "type": "string" },
                    "content": { "type": "string" }, "data": { "type": "object" } } },
                "Reason": { "type": "object", "additionalProperties": false, "properties": {
                    "reason": { "type": "string", "maxLength": 256 } } },
                "KickRequest": { "type": "object", "additionalProperties": false, "required": ["user"], "properties": {
                    "user": { "type": "string" }, "reason": { "type": "string", "maxLength": 256 } } },
                "EditRequest": { "type": "object", "additionalProperties": false, "required": ["content"], "properties": {
                    "content": { "type": "string" } } },
                "PublishAck": { "type": "object", "required": ["status", "id", "offset", "timestamp"], "properties": {
                    "status": { "const": "ok" }, "id": { "type": "string", "format": "uuid" },
                    "room": { "anyOf": [ { "$ref": "#/components/schemas/RoomName" }, { "type": "null" } ] },
                    "offset": { "type": "integer", "minimum": 1 }, "timestamp": { "type": "string", "format": "date-time" },
                    "degraded": { "const": true, "description": "Stored, but not published to other pods yet (they read it from the log)" } } },
                "CommandAck": { "type": "object", "required": ["status"], "properties": {
                    "status": { "const": "ok" },
                    "degraded": { "const": true, "description": "Done on this pod; other pods may not have it" } } },
                "RoomName": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$" },
                "MessageRef": { "description": "A place in a room's log: an offset (digits) or, for compatibility, a message id",
                    "anyOf": [ { "type": "string", "pattern": "^[0-9]+$" }, { "type": "string", "format": "uuid" } ] },
                "Error": { "type": "object", "required": ["status", "code", "message"], "properties": {
                    "status": { "const": "error" },
                    "code": { "enum": ["AUTH_FAILED", "FORBIDDEN", "RATE_LIMITED", "INVALID_PAYLOAD", "CHANNEL_ERROR", "MESSAGE_TOO_LARGE", "INTERNAL", "UNAVAILABLE", "CONFLICT", "NOT_FOUND"] },
                    "message": { "type": "string" },
                    "retry_after_ms": { "type": "integer", "minimum": 1 } } },
                "Message": { "type": "object", "required": ["id", "type", "from", "data", "timestamp"], "properties": {
                    "id": { "type": "string", "format": "uuid" },
                    "type": { "enum": ["chat", "presence", "notification", "system", "error", "ping", "pong", "typing"] },
                    "room": { "$ref": "#/components/schemas/RoomName" },
                    "from": { "type": "string" },
                    "user": { "type": "object", "required": ["id", "name"], "description": "The sender as others see them, when the sender has a display name",
                        "properties": { "id": { "type": "string" }, "name": { "type": "string" }, "unverified": { "const": true } } },
                    "data": { "type": "object", "description": "{\"content\"} ({\"content\",\"edited_at\"} once edited); a deleted message's tombstone: {\"deleted\":true,\"deleted_at\"}" },
                    "timestamp": { "type": "string", "format": "date-time" },
                    "offset": { "type": "integer", "minimum": 1, "description": "The message's place in its room (1, 2, 3, ... without gaps), given by the message log" },
                    "reactions": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 1 }, "description": "Each emoji's count of reactions, when there are any" } } },
                "Unread": { "type": "object", "required": ["read_offset", "unread", "last_offset"], "properties": {
                    "read_offset": { "type": "integer", "minimum": 0, "description": "The offset the user has read up to (0: nothing yet)" },
                    "unread": { "type": "integer", "minimum": 0, "maximum": 999, "description": "Messages after it sent by others and not deleted, counted up to 999" },
                    "last_offset": { "type": "integer", "minimum": 0, "description": "The room's last offset" } } },
                "HistoryPage": { "type": "object", "required": ["status", "messages", "has_more"], "properties": {
                    "status": { "const": "ok" },
                    "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
                    "has_more": { "type": "boolean" } } }
            }
        }
    });
    if let (Some(schemas), Value::Object(more)) = (
        doc["components"]["schemas"].as_object_mut(),
        channel_schemas(),
    ) {
        schemas.extend(more);
    }
    doc
}

/// The answer of `GET /api/server/users/{user}/connections`.
fn connections_schema() -> Value {
    let connection = json!({ "type": "object", "required": ["pod", "conn", "transport", "rooms"], "properties": {
        "pod": { "type": "string" }, "conn": { "type": "string" }, "transport": { "enum": ["socketio", "ws"] },
        "rooms": { "type": "array", "items": { "type": "string" } },
        "address": { "type": ["string", "null"], "description": "The client's address (X-Forwarded-For from TRUSTED_PROXIES)" },
        "connected_at": { "type": ["string", "null"], "format": "date-time" } } });
    json!({ "type": "object", "required": ["status", "user", "connections", "complete"], "properties": {
        "status": { "const": "ok" }, "user": { "type": "string" }, "complete": { "type": "boolean" },
        "connections": { "type": "array", "items": connection } } })
}

/// `/api/rooms`: the listing and the create.
fn rooms_routes() -> Value {
    json!({
                "get": { "tags": ["Channels"], "summary": "Rooms with members across pods, and a page of the channels the caller may see",
                    "description": "A user (a token) sees public channels and the private ones they are a member of; the server API (an API key) sees all.",
                    "parameters": [
                        { "name": "after", "in": "query", "required": false, "schema": { "type": "string" }, "description": "The room of the last channel of the page before" },
                        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 } },
                        { "name": "token", "in": "query", "required": false, "schema": { "type": "string" } }
                    ],
                    "responses": { "200": { "description": "Rooms and channels", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["status", "rooms", "channels", "has_more"], "properties": {
                            "status": { "const": "ok" },
                            "rooms": { "type": "array", "items": { "type": "object", "required": ["room", "members"], "properties": {
                                "room": { "type": "string" }, "members": { "type": "integer", "minimum": 0 } } } },
                            "channels": { "type": "array", "items": ok_schema("Channel") },
                            "has_more": { "type": "boolean" } } } } } },
                        "400": error_ref("Bad after or limit (INVALID_PAYLOAD)"),
                        "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                        "429": error_ref("Too many reads (RATE_LIMITED)"),
                        "503": error_ref("The database or, across pods, Redis did not answer (UNAVAILABLE); retry after Retry-After") } },
                "post": { "tags": ["Channels"], "summary": "Create a channel (a user, as its creator; or the server API)",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": ok_schema("NewChannel") } } },
                    "responses": {
                        "201": { "description": "Created; the room's members hear channel:updated", "content": { "application/json": { "schema": ok_schema("ChannelBody") } } },
                        "400": error_ref("Bad body, room, title, topic or members (INVALID_PAYLOAD)"),
                        "401": error_ref("No token (anonymous callers create no channels) or an invalid one (AUTH_FAILED)"),
                        "403": error_ref("Room not allowed for this user, or in use (messages or members: only the server API makes it a channel) (FORBIDDEN)"),
                        "409": error_ref("The room has a channel already (CONFLICT)"),
                        "429": error_ref("Too many writes (RATE_LIMITED, the user's message rate)"),
                        "503": error_ref("The database did not answer (UNAVAILABLE)") } } })
}

/// `/api/rooms/{room}`: one channel's read, change and delete.
fn room_routes() -> Value {
    json!({
                "parameters": [
                    { "name": "room", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/RoomName" } }
                ],
                "get": { "tags": ["Channels"], "summary": "The room's channel",
                    "responses": {
                        "200": { "description": "The channel", "content": { "application/json": { "schema": ok_schema("ChannelBody") } } },
                        "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                        "404": error_ref("No channel, or a private one the caller is not a member of (NOT_FOUND)"),
                        "503": error_ref("The database did not answer (UNAVAILABLE)") } },
                "patch": { "tags": ["Channels"], "summary": "Change a channel (its creator, or the server API)",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": ok_schema("ChannelChange") } } },
                    "responses": {
                        "200": { "description": "Changed; members hear channel:updated and connections it no longer admits leave the room", "content": { "application/json": { "schema": ok_schema("ChannelBody") } } },
                        "400": error_ref("Bad body, or removing the creator (INVALID_PAYLOAD)"),
                        "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                        "403": error_ref("Not the creator (FORBIDDEN)"),
                        "404": error_ref("No channel, or a private one the caller is not a member of (NOT_FOUND)"),
                        "429": error_ref("Too many writes (RATE_LIMITED)"),
                        "503": error_ref("The database did not answer (UNAVAILABLE)") } },
                "delete": { "tags": ["Channels"], "summary": "Delete a channel and its messages (its creator, or the server API)",
                    "responses": {
                        "200": { "description": "Deleted; members hear channel:deleted and leave the room", "content": { "application/json": { "schema": {
                            "type": "object", "required": ["status", "room"], "properties": { "status": { "const": "ok" }, "room": { "type": "string" } } } } } },
                        "401": error_ref("Token missing or invalid (AUTH_FAILED)"),
                        "403": error_ref("Not the creator (FORBIDDEN)"),
                        "404": error_ref("No channel, or a private one the caller is not a member of (NOT_FOUND)"),
                        "429": error_ref("Too many writes (RATE_LIMITED)"),
                        "503": error_ref("The database did not answer (UNAVAILABLE)") } } })
}

/// The schemas of the channel routes.
fn channel_schemas() -> Value {
    json!({
                "Channel": { "type": "object", "required": ["room", "title", "topic", "private", "created_by", "created_at", "updated_at", "members"], "properties": {
                    "room": { "$ref": "#/components/schemas/RoomName" },
                    "title": { "type": "string", "minLength": 1, "maxLength": 100 },
                    "topic": { "type": "string", "maxLength": 500 },
                    "private": { "type": "boolean", "description": "Only members may join and read it" },
                    "created_by": { "type": "string", "description": "The creator's user id (server: the server API)" },
                    "created_at": { "type": "string", "format": "date-time" },
                    "updated_at": { "type": "string", "format": "date-time" },
                    "members": { "type": "array", "items": { "type": "string" }, "maxItems": 1000, "description": "A private channel's members, sorted, the creator included; empty for a public one" } } },
                "ChannelBody": { "type": "object", "required": ["status", "channel"], "properties": {
                    "status": { "const": "ok" }, "channel": { "$ref": "#/components/schemas/Channel" } } },
                "NewChannel": { "type": "object", "additionalProperties": false, "required": ["room"], "properties": {
                    "room": { "$ref": "#/components/schemas/RoomName", "description": "Not a user:, thread: or presence:global room" },
                    "title": { "type": "string", "description": "Default: the room's name" },
                    "topic": { "type": "string" },
                    "private": { "type": "boolean", "default": false },
                    "members": { "type": "array", "items": { "type": "string" }, "description": "A private channel's members besides the creator" },
                    "created_by": { "type": "string", "description": "Server API only: the user it is created for (default server)" } } },
                "ChannelChange": { "type": "object", "additionalProperties": false, "properties": {
                    "title": { "type": "string" }, "topic": { "type": "string" }, "private": { "type": "boolean" },
                    "add_members": { "type": "array", "items": { "type": "string" } },
                    "remove_members": { "type": "array", "items": { "type": "string" }, "description": "Never the creator" } } }
    })
}
