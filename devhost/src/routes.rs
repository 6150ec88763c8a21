//! ASP.NET-style route templates as HTTP triggers use them: `quotes/{id?}`,
//! `payments/{id}/cancel`, `files/{*rest}`, `items/{n:int}`. Literal segments match
//! case-insensitively and beat parameters; parameters beat optional ones and catch-alls.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One parsed template.
#[derive(Clone, Debug)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param {
        name: String,
        optional: bool,
        constraint: Option<String>,
    },
    CatchAll {
        name: String,
    },
}

impl Segment {
    /// Lower binds first (ASP.NET's route precedence, simplified to one digit per segment).
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param {
                optional: false,
                constraint: Some(_),
                ..
            } => 1,
            Segment::Param {
                optional: false,
                constraint: None,
                ..
            } => 2,
            Segment::Param { optional: true, .. } => 3,
            Segment::CatchAll { .. } => 4,
        }
    }
}

impl RouteTemplate {
    /// Parses `template` (leading/trailing slashes ignored).
    pub fn parse(template: &str) -> Result<Self, String> {
        let text = template.trim().trim_matches('/').to_owned();
        let mut segments = Vec::new();
        let parts: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            text.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let segment = parse_segment(part).map_err(|e| format!("route `{text}`: {e}"))?;
            if matches!(segment, Segment::CatchAll { .. }) && i + 1 != parts.len() {
                return Err(format!(
                    "route `{text}`: a catch-all must be the last segment"
                ));
            }
            segments.push(segment);
        }
        // An optional parameter may only be followed by other optional parts.
        let first_optional = segments.iter().position(|s| s.rank() >= 3);
        if let Some(i) = first_optional
            && segments[i..].iter().any(|s| s.rank() < 3)
        {
            return Err(format!(
                "route `{text}`: only optional segments may follow `?`"
            ));
        }
        Ok(Self { text, segments })
    }

    /// The template as written (without outer slashes).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Route values when `path` (already split, percent-encoded segments) matches.
    pub fn matches(&self, path: &[&str]) -> Option<BTreeMap<String, String>> {
        let mut values = BTreeMap::new();
        let mut i = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(lit) => {
                    if !path
                        .get(i)
                        .is_some_and(|p| decode(p).eq_ignore_ascii_case(lit))
                    {
                        return None;
                    }
                    i += 1;
                }
                Segment::Param {
                    name,
                    optional,
                    constraint,
                } => match path.get(i) {
                    Some(raw) => {
                        let value = decode(raw);
                        if !satisfies(constraint.as_deref(), &value) {
                            return None;
                        }
                        values.insert(name.clone(), value);
                        i += 1;
                    }
                    None if *optional => {}
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    let rest: Vec<String> = path[i.min(path.len())..]
                        .iter()
                        .map(|p| decode(p))
                        .collect();
                    values.insert(name.clone(), rest.join("/"));
                    i = path.len();
                }
            }
        }
        (i == path.len()).then_some(values)
    }

    /// Orders templates so the more specific one is tried first.
    pub fn precedence(&self, other: &Self) -> Ordering {
        let a = self.segments.iter().map(Segment::rank);
        let b = other.segments.iter().map(Segment::rank);
        a.cmp(b)
            .then_with(|| other.segments.len().cmp(&self.segments.len()))
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("empty segment".into());
    }
    let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        if part.contains(['{', '}']) {
            return Err(format!(
                "segment `{part}` mixes text and parameters (unsupported)"
            ));
        }
        return Ok(Segment::Literal(part.to_owned()));
    };
    if let Some(name) = inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        return Ok(Segment::CatchAll {
            name: valid_name(name)?,
        });
    }
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    let inner = inner.split('=').next().unwrap_or(inner); // defaults are ignored
    let (name, constraint) = match inner.split_once(':') {
        Some((n, c)) => (n, Some(c.to_ascii_lowercase())),
        None => (inner, None),
    };
    Ok(Segment::Param {
        name: valid_name(name)?,
        optional,
        constraint,
    })
}

fn valid_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!("bad parameter name `{name}`"));
    }
    Ok(name.to_owned())
}

/// The common inline constraints; others (min, max, regex, ...) accept any value.
fn satisfies(constraint: Option<&str>, value: &str) -> bool {
    let Some(constraint) = constraint else {
        return true;
    };
    let kind = constraint.split(['(', ':']).next().unwrap_or(constraint);
    match kind {
        "int" => value.parse::<i32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        "double" | "float" | "decimal" => value.parse::<f64>().is_ok(),
        _ => true,
    }
}

/// Percent-decoding of one path segment (invalid escapes are kept verbatim).
pub fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a URL path into segments, ignoring empty ones (so a trailing slash does not matter).
pub fn split_path(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(t: &str) -> RouteTemplate {
        RouteTemplate::parse(t).unwrap()
    }

    fn m(t: &str, path: &str) -> Option<BTreeMap<String, String>> {
        route(t).matches(&split_path(path))
    }

    #[test]
    fn optional_parameter_matches_with_and_without_value() {
        assert_eq!(m("quotes/{id?}", "quotes").unwrap().len(), 0);
        assert_eq!(m("quotes/{id?}", "quotes/q1").unwrap()["id"], "q1");
        assert!(m("quotes/{id?}", "quotes/q1/x").is_none());
    }

    #[test]
    fn literals_are_case_insensitive_and_parameters_decoded() {
        let v = m("payments/{id}/cancel", "Payments/a%20b/CANCEL").unwrap();
        assert_eq!(v["id"], "a b");
        assert!(m("payments/{id}/cancel", "payments/p1").is_none());
    }

    #[test]
    fn catch_all_takes_the_rest_even_when_empty() {
        assert_eq!(m("files/{*rest}", "files/a/b/c").unwrap()["rest"], "a/b/c");
        assert_eq!(m("files/{*rest}", "files").unwrap()["rest"], "");
        assert_eq!(
            m("{*route}", "anything/at/all").unwrap()["route"],
            "anything/at/all"
        );
    }

    #[test]
    fn constraints_filter_values() {
        assert!(m("items/{n:int}", "items/12").is_some());
        assert!(m("items/{n:int}", "items/abc").is_none());
        assert!(
            m(
                "items/{g:guid}",
                "items/5f0c9b1e-1d7e-4a8c-9d7e-1a2b3c4d5e6f"
            )
            .is_some()
        );
    }

    #[test]
    fn literal_beats_parameter_in_precedence() {
        let mut routes = [
            route("payments/{id}"),
            route("{*rest}"),
            route("payments/latest"),
        ];
        routes.sort_by(|a, b| a.precedence(b));
        let order: Vec<&str> = routes.iter().map(RouteTemplate::as_str).collect();
        assert_eq!(order, ["payments/latest", "payments/{id}", "{*rest}"]);
    }

    #[test]
    fn malformed_templates_are_rejected() {
        for bad in ["a/{*rest}/b", "a/{id?}/b", "a/x{id}", "a/{}", "a//b"] {
            assert!(RouteTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decode_keeps_invalid_escapes() {
        assert_eq!(decode("a%2Fb"), "a/b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
