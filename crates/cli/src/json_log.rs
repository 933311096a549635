//! `TRADEFLOW_LOG_FORMAT=json`: one JSON object per log line, for Loki or any log shipper.
//! Each line has `timestamp` (RFC 3339, UTC), `level`, `target`, the event's fields (`message`
//! among them) and the fields of every span it happened in, outermost first, inner ones
//! winning: a stage's handler logs inside the bus's `handle` span, so its lines carry
//! `stream`, `group`, `partition` and `first_id` (the batch's first message id) as top-level
//! keys a shipper can index. Built on tracing-subscriber's layers with serde_json, which the
//! binary already has, instead of a JSON formatter crate.

use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A span's fields, kept in its extensions from creation (and later `record`s).
struct SpanFields(Map<String, Value>);

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    // `%value` (Display) and `?value` (Debug) fields, and the message, arrive here.
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

/// The layer; `W` makes the writer of each line (stderr in the binary).
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Visitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = tradeflow_core::time::now_ms();
        let timestamp = format!("{}.{:03}Z", tradeflow_core::time::iso_utc(now), now.rem_euclid(1000));
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                spans.push(Value::from(span.name()));
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.clone());
                }
            }
        }
        if !spans.is_empty() {
            line.insert("spans".into(), spans.into());
        }
        // The event's own fields last: they win over a span's of the same name.
        event.record(&mut Visitor(&mut line));
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // A log line that cannot be written has nowhere to be reported.
        let _ = self.make_writer.make_writer().write_all(text.as_bytes());
    }
}

/// Whether TRADEFLOW_LOG_FORMAT asks for JSON (`json`) rather than the default text (unset,
/// empty or `text`); anything else is refused, not ignored.
pub fn wants_json() -> Result<bool, String> {
    match std::env::var("TRADEFLOW_LOG_FORMAT") {
        Err(_) => Ok(false),
        Ok(v) if v.is_empty() || v == "text" => Ok(false),
        Ok(v) if v == "json" => Ok(true),
        Ok(v) => Err(format!("TRADEFLOW_LOG_FORMAT={v:?}: expected \"text\" or \"json\"")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn each_line_is_one_object_with_the_spans_message_id_stream_and_group() {
        let out = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle", stream = %"md.candles", group = %"inference", partition = 3u32,
                first_id = %"candle:BTCUSD:1h:0", count = 2usize);
            let _in = span.enter();
            tracing::warn!(model = "rsi", "late \"signal\"");
            tracing::info!("second");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "late \"signal\"");
        assert_eq!(first["model"], "rsi");
        assert_eq!(first["stream"], "md.candles");
        assert_eq!(first["group"], "inference");
        assert_eq!(first["first_id"], "candle:BTCUSD:1h:0");
        assert_eq!(first["partition"], 3);
        assert_eq!(first["spans"], serde_json::json!(["handle"]));
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'), "{first}");
        assert_eq!(lines[1]["message"], "second");
    }
}
