//! Who a new connection is, for both realtime transports: the token's identity when a
//! JWT key verifies it; otherwise, with the connect hook on, the application's answer;
//! otherwise anonymous (or refused under AUTH_ENABLED). A display name the client chose
//! (`auth.name`, `?name=`) is taken only where neither vouched for one, marked unverified.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::state::AppState;
use crate::chat::{display_name, ChatError, ConnId};
use crate::gate::{Admission, Credentials};
use crate::hooks::Handshake;

/// Headers the connect hook sees.
const HOOK_HEADERS: [&str; 3] = ["origin", "user-agent", "cookie"];

/// The identity of connection `conn` with `claimed` credentials and the display name the
/// client chose (checked here: a bad one refuses the connection); `handshake` makes what
/// the connect hook is shown (only called when it is asked).
pub async fn identify(
    ctx: &AppState,
    conn: ConnId,
    claimed: &Credentials<'_>,
    chosen_name: Option<&str>,
    handshake: impl FnOnce() -> Handshake,
) -> Result<Admission, ChatError> {
    let chosen_name = chosen_name.map(display_name).transpose()?;
    let verified = claimed.token.is_some() && ctx.gate.verifies_tokens();
    let mut admission = if verified || !ctx.hooks.connects() {
        ctx.gate.identify(conn, claimed.token, claimed.ip)?
    } else {
        let anonymous = ctx.gate.anonymous(conn, claimed.ip);
        let sender = ctx
            .hooks
            .connect(handshake(), anonymous, ctx.gate.auth_required())
            .await?;
        Admission {
            sender,
            expires_at: None,
        }
    };
    if let Some(name) = chosen_name {
        admission.sender.choose_name(name);
    }
    Ok(admission)
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
