//! The log line format: the same text as tracing-subscriber's default ("full") format without
//! colours, produced with less work; on a terminal, the level is coloured.
//!
//! Why not the default formatter: it sends every piece of a line (level, span names, braces,
//! colons, field names) through `nu_ansi_term` styles and `core::fmt` even with colours off,
//! escapes messages one `char` at a time and formats the whole timestamp on every line. With
//! one request-log line per request, that was about a fifth of the instructions of a cached
//! catalog read (callgrind, `docs/benchmarks.md`). Nor could it write the request a line
//! belongs to, which is a task-local, not a span. [`FormatEvent`] and [`FormatFields`] are
//! tracing-subscriber's own extension points for this; the tests check that the lines are the
//! default formatter's, byte for byte.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Event lines: `<RFC 3339 time> <LEVEL> <span{fields}>:...: <target>: <message> <fields>`,
/// where the first "span" is the request being served
/// ([`request_context`](super::request_context)), written as a span named `request` would be.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainLines;

/// Fields of events and spans: `message` first as text, then `name=value` separated by spaces.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<S, N> FormatEvent<S, N> for PlainLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records bridged from the `log` crate carry their real target in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());

        write_timestamp(&mut writer, SystemTime::now())?;
        if writer.has_ansi_escapes() {
            // On a terminal, the level in the default format's colour.
            writer.write_str(level_colour(meta.level()))?;
            writer.write_str(level_name(meta.level()))?;
            writer.write_str(ANSI_RESET)?;
        } else {
            writer.write_str(level_name(meta.level()))?;
        }
        writer.write_char(' ')?;
        // The request, then the spans, from the outermost in.
        let mut any = super::request_context::write_current(&mut writer)?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                any = true;
                writer.write_str(span.metadata().name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
        }
        if any {
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // A span's fields are written into a new, empty `String` (tracing-subscriber's
        // `FormattedFields`), which would grow three or four times for the request span alone:
        // they are written into this thread's reused buffer instead and copied once. (A field
        // whose `Debug` logs something itself finds the buffer taken and is written directly.)
        FIELDS_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                record_all(Writer::new(&mut *buffer), fields)?;
                writer.write_str(&buffer)
            }
            Err(_) => record_all(writer, fields),
        })
    }
}

thread_local! {
    static FIELDS_BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

fn record_all<R: RecordFields>(writer: Writer<'_>, fields: R) -> fmt::Result {
    let mut visitor = FieldWriter {
        writer,
        is_empty: true,
        result: Ok(()),
    };
    fields.record(&mut visitor);
    visitor.result
}

const ANSI_RESET: &str = "\x1b[0m";

/// The escape sequence that starts a level's colour in the default format.
fn level_colour(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "\x1b[35m",
        Level::DEBUG => "\x1b[34m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m",
        Level::ERROR => "\x1b[31m",
    }
}

/// The level as the default format writes it: five columns, right-aligned.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

thread_local! {
    /// The second last formatted on this thread (`2026-12-03T04:05:06`): a line formats only
    /// its fraction, unless the second has changed.
    static FORMATTED_SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-12-03T04:05:06.123456Z ` (UTC, microseconds, then a space).
fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    FORMATTED_SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != seconds {
            let (_, text) = &mut *cached;
            text.clear();
            let time = i64::try_from(seconds)
                .ok()
                .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
                .unwrap_or_default();
            write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"))?;
            cached.0 = seconds;
        }
        writer.write_str(&cached.1)
    })?;
    let mut fraction = *b".000000Z ";
    let mut micros = since_epoch.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    writer.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// A field's name as written: raw identifiers (`r#type`) without their `r#`.
fn shown_name(field: &Field) -> &'static str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

/// Writes fields as the default format's visitor does.
struct FieldWriter<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// `name=` before a value (after a space unless first); `None` for fields to leave out.
    fn start(&mut self, field: &Field) -> Option<&'static str> {
        let name = field.name();
        // Metadata of records from the `log` crate, already used for the target.
        if name.starts_with("log.") || self.result.is_err() {
            return None;
        }
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
        Some(shown_name(field))
    }

    fn write_value(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        let Some(name) = self.start(field) else {
            return;
        };
        self.result = self.result.and_then(|()| {
            if name != "message" {
                self.writer.write_str(name)?;
                self.writer.write_char('=')?;
            }
            write(&mut self.writer)
        });
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write_value(field, |w| Escaping(w).write_str(value));
        } else {
            self.write_value(field, |w| write_quoted(w, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write_value(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write_value(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // Where `{:?}` writes plain decimals, ryu writes the same shortest digits, faster; the
        // rest (exponents, NaN, infinities) keeps `{:?}`.
        if value == 0.0 || (1e-4..1e16).contains(&value.abs()) {
            self.write_value(field, |w| {
                w.write_str(ryu::Buffer::new().format_finite(value))
            });
        } else {
            self.write_value(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write_value(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => {
                let name = shown_name(field);
                self.record_debug(
                    field,
                    &format_args!("{} {name}.sources={}", Escaped(value), SourceList(source)),
                );
            }
            None => self.record_debug(field, &format_args!("{}", Escaped(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // The message is text from the call site's format string: escaped, as the default
            // format does, so that it cannot carry terminal control sequences.
            self.write_value(field, |w| write!(Escaping(w), "{value:?}"));
        } else {
            self.write_value(field, |w| write!(w, "{value:?}"));
        }
    }
}

/// `value` as `{value:?}` writes it: quoted, with escapes. Text that needs none (printable
/// ASCII without `"` or `\`, such as route patterns) is written in one piece instead of
/// through `char`-by-`char` escaping.
fn write_quoted(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if !plain {
        return write!(writer, "{value:?}");
    }
    writer.write_char('"')?;
    writer.write_str(value)?;
    writer.write_char('"')
}

/// Writes through, escaping what terminals read as control sequences (ESC, BEL, BS, FF, DEL,
/// C1 controls), exactly as tracing-subscriber's sanitiser does; text without any (nearly
/// all) is written in one piece.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8.
        let needs_escaping = text
            .bytes()
            .any(|b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2));
        if !needs_escaping {
            return self.0.write_str(text);
        }
        for ch in text.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                ch if ('\u{80}'..='\u{9f}').contains(&ch) => {
                    write!(self.0, "\\u{{{:x}}}", ch as u32)?
                }
                ch => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// A value's `Display` text, escaped.
struct Escaped<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error's chain of sources: `[first, second]`.
struct SourceList<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for SourceList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut current = Some(self.0);
        while let Some(error) = current {
            list.entry(&Escaped(error));
            current = error.source();
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;
    use actix_web::http::header::HeaderValue;

    use super::super::RequestContext;
    use super::super::test_capture::{Capture, untimed};
    use super::*;

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug only
    struct Shape {
        sides: u8,
        name: &'static str,
    }

    /// Every kind of field, message and span nesting the server logs, and a few it might.
    fn emit_everything() {
        tracing::info!("no span, no fields");
        let request = tracing::info_span!("request", method = %"GET", request_id = %"8f0c-41");
        let _outer = request.enter();
        tracing::info!(
            route = "/api/v1/books",
            status = 200u16,
            latency_ms = 0.123_f64,
            "request finished"
        );
        tracing::warn!(
            count = -3i64,
            big = u64::MAX,
            ok = true,
            "signed and unsigned"
        );
        tracing::info!(whole = 2.0_f64, tiny = 1e-7_f64, huge = 1e300_f64, "floats");
        for value in [
            0.0,
            -0.0,
            0.1,
            0.111887,
            -0.5,
            1e-4,
            0.99e-4,
            123_456.789,
            1e15,
            9_999_999_999_999_998.0,
            1e16,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            tracing::info!(value, "a float");
        }
        tracing::info!(
            shape = ?Shape { sides: 4, name: "square" },
            shown = %"display \u{1b}[31m value",
            "debug and display"
        );
        tracing::info!(
            quoted = "a \"quoted\" \u{1b} \n value",
            "strings are Debug-quoted"
        );
        tracing::error!(r#type = "raw", "raw identifiers lose their r#");
        tracing::info!("message with \u{1b}[2J escape, \u{7} bell, \u{85} C1 and é");
        tracing::info!(n = 7, "formatted {} message {:?}", "text", Some(1));
        let error = Failure("outer", Some(Box::new(Failure("inner \u{1b}", None))));
        tracing::warn!(
            error = &error as &(dyn std::error::Error + 'static),
            "with sources"
        );
        let plain = Failure("plain", None);
        tracing::warn!(
            error = &plain as &(dyn std::error::Error + 'static),
            "no sources"
        );
        let inner = tracing::debug_span!("inner", depth = 2, label = "x");
        let _inner = inner.enter();
        tracing::debug!(target: "lms_api::custom", "nested spans and another target");
        let empty = tracing::info_span!("empty");
        let _empty = empty.enter();
        tracing::info!("a span without fields");
        drop(_empty);
        request.record("late", 5);
        tracing::info!("span fields recorded later");
        log::warn!(target: "from_log", "a record from the log crate {}", 1);
    }

    #[test]
    fn lines_are_the_default_formatters_without_colours() {
        let ours = Capture::default();
        let _ = tracing_log::LogTracer::init();
        tracing::subscriber::with_default(ours.ours(Level::TRACE, false), emit_everything);

        let default = Capture::default();
        tracing::subscriber::with_default(default.default_format(), emit_everything);

        let ours = untimed(&ours.text());
        let default = untimed(&default.text());
        assert!(ours.len() >= 30, "{ours:#?}");
        assert_eq!(ours, default);
        // Messages are escaped (as by the default format; other values are written as given).
        let message = ours.iter().find(|line| line.contains("message with"));
        assert!(
            message.is_some_and(|line| !line.contains('\u{1b}') && line.contains("\\x1b[2J")),
            "{message:?}"
        );
    }

    /// What a request's code may log: plain events, fields, a span of its own.
    fn emit_in_a_request() {
        tracing::warn!("inside the request");
        tracing::info!(route = "/api/v1/books", status = 200u16, "request finished");
        let inner = tracing::info_span!("inner", depth = 2);
        let _inner = inner.enter();
        tracing::error!("in a span inside the request");
    }

    #[test]
    fn the_request_context_is_written_as_a_request_span_would_be() {
        let ours = Capture::default();
        let context = RequestContext::new(Method::PATCH, HeaderValue::from_static("8f0c-41"));
        tracing::subscriber::with_default(ours.ours(Level::TRACE, false), || {
            futures_util::FutureExt::now_or_never(context.scope(async { emit_in_a_request() }))
                .expect("ready at once");
            tracing::info!("after the request");
        });

        let default = Capture::default();
        tracing::subscriber::with_default(default.default_format(), || {
            let request =
                tracing::info_span!("request", method = %"PATCH", request_id = %"8f0c-41");
            request.in_scope(emit_in_a_request);
            tracing::info!("after the request");
        });

        let ours = untimed(&ours.text());
        assert_eq!(ours, untimed(&default.text()));
        assert_eq!(ours.len(), 4);
        assert!(
            ours[0].starts_with(" WARN request{method=PATCH request_id=8f0c-41}: "),
            "{ours:#?}"
        );
        assert!(
            ours[2].contains("request{method=PATCH request_id=8f0c-41}:inner{depth=2}: "),
            "{ours:#?}"
        );
        assert!(!ours[3].contains("request{"), "{ours:#?}");
    }

    #[test]
    fn on_a_terminal_only_the_level_is_coloured() {
        let coloured = Capture::default();
        tracing::subscriber::with_default(coloured.ours(Level::TRACE, true), emit_in_a_request);
        let plain = Capture::default();
        tracing::subscriber::with_default(plain.ours(Level::TRACE, false), emit_in_a_request);

        let coloured = coloured.text();
        assert!(coloured.contains("\x1b[33m WARN\x1b[0m "), "{coloured:?}");
        assert!(coloured.contains("\x1b[32m INFO\x1b[0m "), "{coloured:?}");
        assert!(coloured.contains("\x1b[31mERROR\x1b[0m "), "{coloured:?}");
        let uncoloured = coloured
            .replace(ANSI_RESET, "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "");
        assert_eq!(untimed(&uncoloured), untimed(&plain.text()));
    }

    #[test]
    fn quoted_text_is_what_debug_writes() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(
            [
                "",
                "/api/v1/books/{id}",
                "it's",
                "say \"hi\"",
                "back\\slash",
                "tab\there",
                "caf\u{e9}",
                "\u{1b}[31m",
                "\u{85}",
                "zero\u{200b}width",
            ]
            .map(str::to_owned),
        );
        for sample in samples {
            let mut written = String::new();
            write_quoted(&mut written, &sample).unwrap();
            assert_eq!(written, format!("{sample:?}"), "for {sample:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z "),
            (1_796_270_706_123_456, "2026-12-03T04:05:06.123456Z "),
            (1_796_270_706_000_001, "2026-12-03T04:05:06.000001Z "),
            (1_796_270_707_999_999, "2026-12-03T04:05:07.999999Z "),
            (951_782_400_500_000, "2000-02-29T00:00:00.500000Z "),
        ];
        for (micros, expected) in cases {
            let time = UNIX_EPOCH + std::time::Duration::from_micros(micros);
            let mut text = String::new();
            write_timestamp(&mut text, time).unwrap();
            assert_eq!(text, expected);
            // Again, from the cached second.
            text.clear();
            write_timestamp(&mut text, time).unwrap();
            assert_eq!(text, expected);
        }
    }
}
