//! OpenAPI pieces shared by every function's `#[utoipa::path]`: the bearer security scheme, the
//! patterns of the values handlers check, and the schema of free-form `metadata`. Each pattern
//! states exactly what the handler's parser accepts, so a client (or a fuzzer) that follows the
//! document is never refused for the shape of a value.

use serde_json::Value;
use utoipa::Modify;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};

/// Name of the security scheme paths refer to: `security(("api_key" = []))`.
pub const SECURITY_SCHEME: &str = "api_key";

/// `quo_` + 32 hex digits (the id parsers accept either letter case).
pub const QUOTE_ID_PATTERN: &str = "^quo_[0-9a-fA-F]{32}$";
/// `pay_` + 32 hex digits.
pub const PAYMENT_ID_PATTERN: &str = "^pay_[0-9a-fA-F]{32}$";
/// `we_` + 32 hex digits.
pub const WEBHOOK_ENDPOINT_ID_PATTERN: &str = "^we_[0-9a-fA-F]{32}$";
/// `wd_` + 32 hex digits.
pub const WEBHOOK_DELIVERY_ID_PATTERN: &str = "^wd_[0-9a-fA-F]{32}$";
/// A pagination cursor: base64url without padding, as `next_cursor` is sent.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{1,512}$";
/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
/// Text stored as given (a reference): 1 to 255 characters, no control characters (Unicode
/// `Cc`, which includes U+0000, the one character PostgreSQL cannot store).
pub const REFERENCE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,255}$";
/// Any string without U+0000.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";
/// Name of the reusable schema of JSON values without U+0000 (what `metadata` holds).
pub const JSON_VALUE_SCHEMA: &str = "JsonValue";

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
                         (quotes:write, payments:write, payments:read, webhooks:write)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Gives every operation a `default` problem+json response: the errors any operation can
/// answer besides those it lists (405 `method_not_allowed`, 500 `internal`, 503
/// `upstream_unavailable` when the database or the chain is unreachable).
pub struct DefaultProblemResponse;

impl Modify for DefaultProblemResponse {
    fn modify(&self, openapi: &mut OpenApi) {
        let response = ResponseBuilder::new()
            .description(
                "Any other error: 405 `method_not_allowed`, 500 `internal`, 503 \
                 `upstream_unavailable` (retry after `Retry-After` seconds)",
            )
            .content(
                crate::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| RefOr::T(response.clone()));
            }
        }
    }
}

/// Registers [`JSON_VALUE_SCHEMA`]: any JSON value whose strings and keys hold no U+0000 (the
/// strict JSON extractor refuses those, at any depth).
pub struct JsonValueSchema;

impl Modify for JsonValueSchema {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(JSON_VALUE_SCHEMA.to_owned(), json_value_schema());
    }
}

fn json_value_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(JSON_VALUE_SCHEMA))
}

fn json_value_schema() -> RefOr<Schema> {
    let string = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NO_NUL_PATTERN));
    let array = ArrayBuilder::new().items(json_value_ref());
    let mut any = OneOfBuilder::new()
        .description(Some(
            "Any JSON value; strings and keys must not contain U+0000",
        ))
        .item(string);
    for kind in [Type::Null, Type::Boolean, Type::Number] {
        any = any.item(ObjectBuilder::new().schema_type(kind));
    }
    any.item(array).item(object_of_json_values(None)).into()
}

/// A JSON object whose keys and values hold no U+0000, or `null`: the schema of `metadata`.
pub fn metadata_schema() -> Schema {
    object_of_json_values(Some(
        "Any JSON object up to 4 KiB (serialized), returned as given; no string or key may \
         contain U+0000",
    ))
    .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
    .into()
}

/// The document as pretty JSON. utoipa 5 serializes a response link's fields in snake case
/// (`operation_id`, `request_body`); OpenAPI names them `operationId` and `requestBody`, and
/// tools ignore links spelled otherwise, so they are renamed here.
pub fn to_json(document: &OpenApi) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(document)?;
    let operations = value
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links"))
            .filter_map(Value::as_object_mut)
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(field) = link.remove(from) {
                    link.insert(to.to_owned(), field);
                }
            }
        }
    }
    serde_json::to_string_pretty(&value)
}

fn object_of_json_values(description: Option<&str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(description)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NO_NUL_PATTERN)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(json_value_ref())))
}
