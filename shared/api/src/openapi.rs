//! OpenAPI pieces shared by every function's `#[utoipa::path]`: the bearer security scheme.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Name of the security scheme paths refer to: `security(("api_key" = []))`.
pub const SECURITY_SCHEME: &str = "api_key";

/// Adds the `api_key` HTTP bearer scheme (`Authorization: Bearer mp_live_…`).
pub struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mp_live_<prefix>_<secret>")
                    .description(Some(
                        "API key of the merchant; each key carries scopes \
                         (quotes:write, payments:write, payments:read)",
                    ))
                    .build(),
            ),
        );
    }
}
