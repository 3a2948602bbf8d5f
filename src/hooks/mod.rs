//! Calls to the application's backend (Centrifugo-style proxies), each off unless its
//! URL is set: the connect hook (identity or refusal for connections without a token
//! to verify), the message hook (allow, refuse or replace a message before it is
//! stored), the RPC hook (client events chatwire does not know, answered by the
//! backend), and event webhooks ([`webhooks`]). JSON over HTTP, signed with
//! HOOK_SECRET ([`client`]). May depend on `chat` (it implements the chat's
//! `MessageFilter` and `Observer`) and `config`; transports call the connect and RPC
//! hooks.

pub mod client;
pub mod webhooks;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{ChatError, Draft, MessageFilter, Observer, RoomPattern, Sender, Verdict};
use crate::config::{Config, Secret};
use client::{HookClient, HookError};

/// Longest display name or user id a hook may give.
const MAX_ID_LEN: usize = 256;

/// The hooks the configuration turns on.
#[derive(Clone, Default)]
pub struct Hooks {
    connect: Option<Hook>,
    message: Option<Hook>,
    rpc: Option<Hook>,
    webhooks: Option<webhooks::Webhooks>,
}

#[derive(Clone)]
struct Hook {
    client: HookClient,
    url: Arc<str>,
}

impl Hook {
    async fn call(&self, name: &'static str, body: &Value) -> Result<Value, HookError> {
        self.client.call(name, &self.url, body).await
    }
}

/// What a connection shows at its handshake, for the connect hook.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// `socketio` or `ws`.
    pub transport: &'static str,
    /// The token it presented, if any (not verified).
    pub token: Option<String>,
    /// The client address.
    pub ip: String,
    /// A few headers: origin, user-agent, cookie.
    pub headers: serde_json::Map<String, Value>,
    /// socket.io: the handshake's `auth` payload; raw: the query string's parameters.
    pub auth: Value,
}

/// What the connect hook decided.
#[derive(Deserialize)]
struct ConnectAnswer {
    allow: bool,
    #[serde(default)]
    user: Option<UserAnswer>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    global: Option<bool>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct UserAnswer {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

/// The backend's refusal as the client sees it: `code` among the catalogue's, else
/// FORBIDDEN.
fn refusal(code: Option<&str>, reason: Option<String>) -> ChatError {
    let reason = reason.unwrap_or_else(|| "refused by the application".into());
    let reason = crate::chat::excerpt(&reason, 256).to_owned();
    match code {
        Some("AUTH_FAILED") => ChatError::AuthFailed(reason),
        Some("INVALID_PAYLOAD") => ChatError::InvalidPayload(reason),
        _ => ChatError::Forbidden(reason),
    }
}

impl Hooks {
    /// The hooks `config` turns on; an error names the setting.
    pub fn new(config: &Config) -> Result<Self, (&'static str, String)> {
        let urls = [
            &config.connect_hook_url,
            &config.message_hook_url,
            &config.rpc_hook_url,
            &config.webhook_url,
        ];
        if urls.iter().all(|u| u.is_empty()) {
            return Ok(Self::default());
        }
        // Each hook has calls of its own: a flood of slow RPCs never holds up logins or
        // messages.
        let client = || {
            HookClient::new(
                config.hook_secret.clone(),
                config.hook_timeout,
                config.hook_concurrency,
            )
            .map_err(|e| ("HOOK_TIMEOUT", e))
        };
        let hook = |url: &Secret| -> Result<Option<Hook>, (&'static str, String)> {
            if url.is_empty() {
                return Ok(None);
            }
            Ok(Some(Hook {
                client: client()?,
                url: Arc::from(url.expose()),
            }))
        };
        let webhooks = if config.webhook_url.is_empty() {
            None
        } else {
            Some(webhooks::Webhooks::start(
                client()?,
                config.webhook_url.expose().to_owned(),
                config.webhook_queue,
            ))
        };
        Ok(Self {
            connect: hook(&config.connect_hook_url)?,
            message: hook(&config.message_hook_url)?,
            rpc: hook(&config.rpc_hook_url)?,
            webhooks,
        })
    }

    /// Whether the connect hook is on.
    pub fn connects(&self) -> bool {
        self.connect.is_some()
    }

    /// Whether the RPC hook is on.
    pub fn serves_rpc(&self) -> bool {
        self.rpc.is_some()
    }

    /// The chat's message filter, when the message hook is on.
    pub fn message_filter(&self) -> Option<Arc<dyn MessageFilter>> {
        self.message
            .clone()
            .map(|hook| Arc::new(MessageHook(hook)) as Arc<dyn MessageFilter>)
    }

    /// The chat's observer, when webhooks are on.
    pub fn observer(&self) -> Option<Arc<dyn Observer>> {
        self.webhooks
            .clone()
            .map(|w| Arc::new(w) as Arc<dyn Observer>)
    }

    /// Delivers what the webhooks still hold, within `limit` (the drain).
    pub async fn drain(&self, limit: std::time::Duration) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.drain(limit).await;
        }
    }

    /// Asks the connect hook about `handshake`: the identity it names for `anonymous`
    /// (the connection as it would be without a token), or its refusal. `auth_required`:
    /// an answer without a user is refused.
    pub async fn connect(
        &self,
        handshake: Handshake,
        anonymous: Sender,
        auth_required: bool,
    ) -> Result<Sender, ChatError> {
        let Some(hook) = &self.connect else {
            return Ok(anonymous);
        };
        let body = json!({
            "transport": handshake.transport,
            "conn": anonymous.conn,
            "token": handshake.token,
            "ip": handshake.ip,
            "headers": handshake.headers,
            "auth": handshake.auth,
        });
        let answer = hook
            .call("connect", &body)
            .await
            .map_err(|e| e.to_client("connect"))?;
        let answer: ConnectAnswer = serde_json::from_value(answer)
            .map_err(|e| HookError::Invalid(e.to_string()).to_client("connect"))?;
        if !answer.allow {
            return Err(refusal(answer.code.as_deref(), answer.reason));
        }
        let mut sender = anonymous;
        match answer.user {
            Some(user) if !user.id.is_empty() && user.id.len() <= MAX_ID_LEN => {
                sender.user = user.id;
                sender.name = user
                    .name
                    .filter(|n| !n.is_empty())
                    .map(|n| crate::chat::excerpt(&n, MAX_ID_LEN).to_owned());
                // Room grants stay as for a token without claims: every room under
                // ROOM_ACL=none, none under claims unless the answer names them.
                sender.anonymous = false;
                if sender.allowed_rooms.is_none() {
                    sender.may_post_globally = true;
                }
            }
            Some(_) => {
                return Err(
                    HookError::Invalid("user.id must be 1-256 bytes".into()).to_client("connect")
                )
            }
            None if auth_required => {
                return Err(ChatError::AuthFailed(
                    "the application named no user for this connection".into(),
                ))
            }
            None => {}
        }
        if let Some(rooms) = answer.rooms {
            let patterns = rooms
                .iter()
                .map(|r| RoomPattern::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| HookError::Invalid(e.to_string()).to_client("connect"))?;
            sender.allowed_rooms = Some(Arc::from(patterns));
        }
        if let Some(global) = answer.global {
            sender.may_post_globally = global;
        }
        Ok(sender)
    }

    /// Forwards the client's call `method(params)` to the RPC hook; the backend's
    /// `result`, or its `error` (`{code, message}`) as the client's error.
    pub async fn rpc(
        &self,
        sender: &Sender,
        transport: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, ChatError> {
        let Some(hook) = &self.rpc else {
            return Err(ChatError::invalid(format!(
                "unknown event \"rpc:{}\": no RPC hook is set",
                crate::chat::excerpt(method, 64)
            )));
        };
        if method.is_empty() || method.len() > 128 {
            return Err(ChatError::invalid("the RPC method must be 1-128 bytes"));
        }
        let body = json!({
            "method": method,
            "params": params,
            "user": { "id": sender.user, "name": sender.name, "anonymous": sender.anonymous },
            "conn": sender.conn,
            "transport": transport,
        });
        let answer = hook
            .call("rpc", &body)
            .await
            .map_err(|e| e.to_client("rpc"))?;
        match answer {
            Value::Object(mut fields) => {
                if let Some(error) = fields.remove("error").filter(|e| !e.is_null()) {
                    let code = error.get("code").and_then(Value::as_str);
                    let message = error
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    return Err(refusal(code, message));
                }
                Ok(fields.remove("result").unwrap_or(Value::Null))
            }
            Value::Null => Ok(Value::Null),
            _ => Err(HookError::Invalid("expected an object".into()).to_client("rpc")),
        }
    }
}

/// The message hook as the chat's [`MessageFilter`].
struct MessageHook(Hook);

#[derive(Deserialize)]
struct MessageAnswer {
    allow: bool,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl MessageFilter for MessageHook {
    fn check(&self, draft: Draft) -> BoxFuture<'static, Result<Verdict, ChatError>> {
        let hook = self.0.clone();
        Box::pin(async move {
            let body = json!({
                "room": draft.room,
                "user": draft.user,
                "content": draft.content,
                "edit": draft.edit,
            });
            let answer = hook
                .call("message", &body)
                .await
                .map_err(|e| e.to_client("message"))?;
            let answer: MessageAnswer = serde_json::from_value(answer)
                .map_err(|e| HookError::Invalid(e.to_string()).to_client("message"))?;
            Ok(match (answer.allow, answer.content) {
                (false, _) => Verdict::Refuse(refusal(answer.code.as_deref(), answer.reason)),
                (true, Some(content)) if content != draft.content => Verdict::Replace(content),
                (true, _) => Verdict::Allow,
            })
        })
    }
}
