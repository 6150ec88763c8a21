//! The OpenAPI document assembled from the registered HTTP functions' fragments, and the
//! check that a fragment only documents what its function serves.

use std::sync::Arc;

use axum::http::Method;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::PathItem;

use crate::route::openapi_path;

/// Every registered HTTP function's OpenAPI fragment, merged. The service adds it to every
/// HTTP request's extensions (`axum::Extension<ApiDocument>`), so the function serving the
/// document needs no list of its own.
#[derive(Clone)]
pub struct ApiDocument(Arc<OpenApi>);

impl std::fmt::Debug for ApiDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDocument")
            .field("paths", &self.0.paths.paths.len())
            .finish()
    }
}

impl ApiDocument {
    pub(crate) fn new(document: OpenApi) -> Self {
        Self(Arc::new(document))
    }

    pub fn paths(&self) -> &OpenApi {
        &self.0
    }
}

/// A documented operation that the function does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {path} is documented but not served (served: {served})")]
pub struct FragmentError {
    pub method: String,
    pub path: String,
    pub served: String,
}

/// The methods a path item documents, upper case.
pub(crate) fn documented_methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter(|(_, operation)| operation.is_some())
    .map(|(method, _)| method)
    .collect()
}

/// Refuses a fragment documenting an operation outside `serves` (axum path, method).
pub(crate) fn check_fragment(
    fragment: &OpenApi,
    serves: &[(String, Method)],
) -> Result<(), FragmentError> {
    for (path, item) in &fragment.paths.paths {
        for method in documented_methods(item) {
            let served = serves
                .iter()
                .any(|(p, m)| openapi_path(p) == *path && m.as_str() == method);
            if !served {
                let served = serves
                    .iter()
                    .map(|(p, m)| format!("{m} {}", openapi_path(p)))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(FragmentError {
                    method: method.to_owned(),
                    path: path.clone(),
                    served,
                });
            }
        }
    }
    Ok(())
}
