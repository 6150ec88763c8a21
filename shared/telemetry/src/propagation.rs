//! W3C Trace Context (`traceparent`, version 00) for messages that have no headers. Written by
//! hand on the API's types so crates that only propagate need not link the SDK.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The header (and queue message field) name.
pub const TRACEPARENT: &str = "traceparent";

/// The remote parent `text` names, or `None` when it is not a valid version-00 `traceparent`
/// (a malformed one starts a new trace rather than failing the message).
pub fn parse_traceparent(text: &str) -> Option<SpanContext> {
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; later versions may append fields we ignore.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2)
        || !lower_hex(trace, 32)
        || !lower_hex(span, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// `text` as the parent of a new context, or `None` when it is absent or malformed.
pub fn context_from_traceparent(text: Option<&str>) -> Option<Context> {
    let remote = parse_traceparent(text?)?;
    Some(Context::new().with_remote_span_context(remote))
}

/// The `traceparent` naming `context`'s span, or `None` when it has no valid span (telemetry
/// off, or no span started).
pub fn traceparent_of(context: &Context) -> Option<String> {
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        )
    })
}

/// The `traceparent` of the span the current task runs in.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Context::current())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = context_from_traceparent(Some(SAMPLE)).unwrap();
        assert_eq!(traceparent_of(&context).as_deref(), Some(SAMPLE));
        assert!(context.span().span_context().is_remote());
    }

    #[test]
    fn malformed_or_zero_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_with_extra_fields_is_read_for_its_first_four() {
        let text = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next";
        assert!(parse_traceparent(text).is_some());
    }

    #[test]
    fn no_span_means_no_traceparent() {
        assert_eq!(traceparent_of(&Context::new()), None);
    }
}
