//! Query strings with problem+json rejections (axum's own are plain text).

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query parameters parsed into `T` (use `deny_unknown_fields` on `T` to reject typos such as
/// `?statuss=`); a bad value is a 422 naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError::validation(format!("invalid query string: {}", rejection.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use axum::http::Request;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        limit: Option<u32>,
    }

    async fn extract(uri: &str) -> Result<ApiQuery<Params>, ApiError> {
        let (mut parts, ()) = Request::builder().uri(uri).body(()).unwrap().into_parts();
        ApiQuery::<Params>::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn bad_or_unknown_parameters_are_validation_errors() {
        assert_eq!(
            extract("/x?limit=5").await.unwrap().0,
            Params { limit: Some(5) }
        );
        assert_eq!(extract("/x").await.unwrap().0, Params { limit: None });
        for uri in ["/x?limit=abc", "/x?limit=-1", "/x?limt=5"] {
            let error = extract(uri).await.unwrap_err();
            assert_eq!(error.code(), ErrorCode::ValidationFailed, "{uri}");
        }
    }
}
