//! LOG_FORMAT=json: one JSON object a line with the spec's fields: `timestamp`, `level`,
//! `event` (the log message), `userId` (a `user` field), `channelId` (a `room` field)
//! and `metadata` (every other field, plus the target).

use std::fmt;

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(RFC3339_MILLIS)
        .unwrap_or_default()
}

/// The JSON line formatter.
pub struct SpecJson;

#[derive(Default)]
struct Fields {
    event: Option<String>,
    user: Option<String>,
    room: Option<String>,
    metadata: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.event = Some(as_text(value)),
            "user" => self.user = Some(as_text(value)),
            "room" => self.room = Some(as_text(value)),
            name => {
                self.metadata.insert(name.to_owned(), value);
            }
        }
    }
}

fn as_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, json!(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for SpecJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        fields
            .metadata
            .insert("target".into(), json!(meta.target()));
        let mut line = json!({
            "timestamp": now_rfc3339(),
            "level": meta.level().as_str().to_ascii_lowercase(),
            "event": fields.event.unwrap_or_default(),
            "metadata": fields.metadata,
        });
        if let Some(user) = fields.user {
            line["userId"] = json!(user);
        }
        if let Some(room) = fields.room {
            line["channelId"] = json!(room);
        }
        writeln!(writer, "{line}")
    }
}
