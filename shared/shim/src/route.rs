//! An HTTP trigger's `route` template (`quotes/{id?}`, `payments/{id}/cancel`,
//! `items/{n:int}`, `files/{*rest}`) as the axum paths that serve it under the route prefix.

/// Why a route template cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route `{route}`: {reason}")]
pub struct RouteError {
    pub route: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`, `{name?}`, `{name:constraint}`. Constraints are the host's to match: it only
    /// forwards requests whose segments satisfy them, so the path keeps the name only.
    Param {
        name: String,
        optional: bool,
    },
    CatchAll {
        name: String,
    },
}

/// The paths one route template stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePaths {
    /// Without the optional segment (or the whole route when it has none).
    pub(crate) base: String,
    /// With the optional segment, when the route has one.
    pub(crate) with_optional: Option<String>,
}

/// Parses `route` and renders its paths under `/{prefix}`.
pub(crate) fn route_paths(prefix: &str, route: &str) -> Result<RoutePaths, RouteError> {
    let error = |reason| RouteError {
        route: route.to_owned(),
        reason,
    };
    let text = route.trim().trim_matches('/');
    let parts: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('/').collect()
    };
    let mut segments = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let segment = parse_segment(part).map_err(error)?;
        let last = i + 1 == parts.len();
        match &segment {
            Segment::CatchAll { .. } if !last => {
                return Err(error("a catch-all must be the last segment"));
            }
            Segment::Param { optional: true, .. } if !last => {
                return Err(error("only the last segment may be optional"));
            }
            _ => {}
        }
        segments.push(segment);
    }
    let render = |segments: &[Segment]| {
        let mut path = String::new();
        if !prefix.is_empty() {
            path.push('/');
            path.push_str(prefix);
        }
        for segment in segments {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Param { name, .. } => {
                    path.push('{');
                    path.push_str(name);
                    path.push('}');
                }
                Segment::CatchAll { name } => {
                    path.push_str("{*");
                    path.push_str(name);
                    path.push('}');
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    };
    let optional = matches!(segments.last(), Some(Segment::Param { optional: true, .. }));
    Ok(if optional {
        RoutePaths {
            base: render(&segments[..segments.len() - 1]),
            with_optional: Some(render(&segments)),
        }
    } else {
        RoutePaths {
            base: render(&segments),
            with_optional: None,
        }
    })
}

fn parse_segment(part: &str) -> Result<Segment, &'static str> {
    let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        if part.is_empty() {
            return Err("empty segment");
        }
        if part.contains(['{', '}']) {
            return Err("a parameter must be a whole segment");
        }
        return Ok(Segment::Literal(part.to_owned()));
    };
    if let Some(name) = inner.strip_prefix('*') {
        return valid_name(name).map(|name| Segment::CatchAll { name });
    }
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(inner) => (inner, true),
        None => (inner, false),
    };
    let name = inner.split(':').next().unwrap_or_default();
    valid_name(name).map(|name| Segment::Param { name, optional })
}

fn valid_name(name: &str) -> Result<String, &'static str> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name.to_owned())
    } else {
        Err("a parameter name must be ASCII letters, digits or `_`")
    }
}

/// An axum path as an OpenAPI path (`{*rest}` → `{rest}`).
pub(crate) fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(route: &str) -> RoutePaths {
        route_paths("api", route).unwrap()
    }

    #[test]
    fn optional_last_segment_gives_the_route_with_and_without_it() {
        assert_eq!(
            paths("quotes/{id?}"),
            RoutePaths {
                base: "/api/quotes".into(),
                with_optional: Some("/api/quotes/{id}".into()),
            }
        );
    }

    #[test]
    fn parameters_constraints_and_catch_alls_become_axum_captures() {
        assert_eq!(
            paths("payments/{id}/cancel").base,
            "/api/payments/{id}/cancel"
        );
        assert_eq!(paths("items/{n:int}").base, "/api/items/{n}");
        assert_eq!(paths("/files/{*rest}/").base, "/api/files/{*rest}");
        assert_eq!(paths("openapi.json").with_optional, None);
        assert_eq!(route_paths("", "health").unwrap().base, "/health");
    }

    #[test]
    fn malformed_templates_are_refused() {
        for route in ["a/{x?}/b", "{*rest}/b", "a//b", "a{x}", "{}", "{a-b}"] {
            assert!(route_paths("api", route).is_err(), "{route}");
        }
    }

    #[test]
    fn catch_all_renders_as_an_openapi_parameter() {
        assert_eq!(openapi_path("/api/files/{*rest}"), "/api/files/{rest}");
    }
}
