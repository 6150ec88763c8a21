//! OpenAPI pieces shared by every function's `#[utoipa::path]`: the bearer security scheme, the
//! `default` problem response, the schema of free-form `metadata`, and the document's JSON.
//! Patterns and bounds sit on the request types and parameters themselves (utoipa takes them
//! only as literals); each states exactly what the handler's parser accepts, so a client (or a
//! fuzzer) that follows the document is never refused for the shape of a value.

use serde_json::Value;
use utoipa::Modify;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};

/// Name of the security scheme paths refer to, with the one scope the handler requires:
/// `security(("api_key" = ["payments:read"]))` (OpenAPI 3.1 lets a non-OAuth requirement list
/// the roles it needs; the authorization matrix test holds each to what the handler enforces).
pub const SECURITY_SCHEME: &str = "api_key";

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

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{OpenApiBuilder, PathsBuilder};

    #[test]
    fn links_are_rendered_with_openapi_field_names() {
        let response = ResponseBuilder::new()
            .description("created")
            .link(
                "Next",
                LinkBuilder::new()
                    .operation_id("get_thing")
                    .request_body(Some(serde_json::json!({"id": "$response.body#/id"})))
                    .build(),
            )
            .build();
        let operation = OperationBuilder::new().response("201", response).build();
        let doc = OpenApiBuilder::new()
            .paths(PathsBuilder::new().path("/x", PathItem::new(HttpMethod::Post, operation)))
            .build();
        let json: Value = serde_json::from_str(&to_json(&doc).unwrap()).unwrap();
        let link = &json["paths"]["/x"]["post"]["responses"]["201"]["links"]["Next"];
        assert_eq!(link["operationId"], "get_thing");
        assert_eq!(link["requestBody"]["id"], "$response.body#/id");
        assert!(link.get("operation_id").is_none() && link.get("request_body").is_none());
    }

    #[test]
    fn metadata_may_be_null_or_an_object_of_values_without_nul() {
        let schema = serde_json::to_value(metadata_schema()).unwrap();
        assert_eq!(schema["type"], serde_json::json!(["object", "null"]));
        assert_eq!(schema["propertyNames"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(
            schema["additionalProperties"]["$ref"],
            "#/components/schemas/JsonValue"
        );
    }
}
