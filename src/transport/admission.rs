//! Who a new connection is, for both realtime transports: the token's identity when a
//! JWT key verifies it; otherwise, with the connect hook on, the application's answer;
//! otherwise anonymous (or refused under AUTH_ENABLED).

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::state::AppState;
use crate::chat::{ChatError, ConnId};
use crate::gate::{Admission, Credentials};
use crate::hooks::Handshake;

/// Headers the connect hook sees.
const HOOK_HEADERS: [&str; 3] = ["origin", "user-agent", "cookie"];

/// The identity of connection `conn` with `claimed` credentials; `handshake` makes what
/// the connect hook is shown (only called when it is asked).
pub async fn identify(
    ctx: &AppState,
    conn: ConnId,
    claimed: &Credentials<'_>,
    handshake: impl FnOnce() -> Handshake,
) -> Result<Admission, ChatError> {
    let verified = claimed.token.is_some() && ctx.gate.verifies_tokens();
    if verified || !ctx.hooks.connects() {
        return ctx.gate.identify(conn, claimed.token, claimed.ip);
    }
    let anonymous = ctx.gate.anonymous(conn, claimed.ip);
    let sender = ctx
        .hooks
        .connect(handshake(), anonymous, ctx.gate.auth_required())
        .await?;
    Ok(Admission {
        sender,
        expires_at: None,
    })
}

/// The headers of `headers` the connect hook sees.
pub fn hook_headers(headers: &HeaderMap) -> Map<String, Value> {
    HOOK_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), Value::String(value.to_owned())))
        })
        .collect()
}
