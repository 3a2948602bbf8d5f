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

fn upgrade(summary: &str, with_room: bool) -> Value {
    let mut parameters = vec![
        json!({ "name": "token", "in": "query", "required": false, "schema": { "type": "string" },
                "description": "JWT, for clients that cannot set headers" }),
        json!({ "name": "since", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/MessageRef" },
                "description": "The offset (or, for compatibility, the id) of the last message seen: the messages stored after it come first (needs a room)" }),
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
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chatwire",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Realtime chat over Socket.IO and raw WebSocket. HTTP endpoints and WebSocket upgrade routes; realtime messages are in docs/asyncapi.yaml."
        },
        "tags": [
            { "name": "WebSocket", "description": "Raw WebSocket upgrade routes" },
            { "name": "History", "description": "Chat history and rooms" },
            { "name": "Operations", "description": "Health, readiness, metrics" }
        ],
        "paths": {
            "/ws": upgrade("Raw WebSocket, global or ?room=", false),
            "/ws/{room}": upgrade("Raw WebSocket joined to a room", true),
            "/api/chat-api/ws": upgrade("Raw WebSocket, global or ?room= (prefixed)", false),
            "/api/chat-api/ws/{room}": upgrade("Raw WebSocket joined to a room (prefixed)", true),
            "/api/rooms/{room}/messages": history,
            "/api/rooms": { "get": { "tags": ["History"], "summary": "Rooms with members, across pods",
                "responses": { "200": { "description": "Rooms and member counts", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["status", "rooms"], "properties": {
                        "status": { "const": "ok" },
                        "rooms": { "type": "array", "items": { "type": "object", "required": ["room", "members"], "properties": {
                            "room": { "type": "string" }, "members": { "type": "integer", "minimum": 0 } } } } } } } } },
                    "503": error_ref("Redis did not answer, across pods (UNAVAILABLE); retry after Retry-After") } } },
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
                "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } }
        },
        "components": {
            "schemas": {
                "RoomName": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$" },
                "MessageRef": { "description": "A place in a room's log: an offset (digits) or, for compatibility, a message id",
                    "anyOf": [ { "type": "string", "pattern": "^[0-9]+$" }, { "type": "string", "format": "uuid" } ] },
                "Error": { "type": "object", "required": ["status", "code", "message"], "properties": {
                    "status": { "const": "error" },
                    "code": { "enum": ["AUTH_FAILED", "FORBIDDEN", "RATE_LIMITED", "INVALID_PAYLOAD", "CHANNEL_ERROR", "MESSAGE_TOO_LARGE", "INTERNAL", "UNAVAILABLE"] },
                    "message": { "type": "string" },
                    "retry_after_ms": { "type": "integer", "minimum": 1 } } },
                "Message": { "type": "object", "required": ["id", "type", "from", "data", "timestamp"], "properties": {
                    "id": { "type": "string", "format": "uuid" },
                    "type": { "enum": ["chat", "presence", "notification", "system", "error", "ping", "pong", "typing"] },
                    "room": { "$ref": "#/components/schemas/RoomName" },
                    "from": { "type": "string" },
                    "data": { "type": "object", "description": "{\"content\"} ({\"content\",\"edited_at\"} once edited); a deleted message's tombstone: {\"deleted\":true,\"deleted_at\"}" },
                    "timestamp": { "type": "string", "format": "date-time" },
                    "offset": { "type": "integer", "minimum": 1, "description": "The message's place in its room (1, 2, 3, ... without gaps), given by the message log" } } },
                "HistoryPage": { "type": "object", "required": ["status", "messages", "has_more"], "properties": {
                    "status": { "const": "ok" },
                    "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
                    "has_more": { "type": "boolean" } } }
            }
        }
    })
}
