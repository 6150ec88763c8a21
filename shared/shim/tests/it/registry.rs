//! The registry: paths derived from function.json routes, 405 + `Allow` on known paths in both
//! request forms, and what `build` refuses.

use axum::Json;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Request, StatusCode};
use meshpay_shim::{BuildError, Function, FunctionApp, FunctionJson, HttpRoute};
use serde_json::{Value, json};
use utoipa::OpenApi as _;

use crate::support::{fixture, invoke, no_paths, send};

const ITEMS: &str = r#"{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","methods":["get","post"],"route":"items/{id?}"},
  {"type":"http","direction":"out","name":"res"}]}"#;

async fn list() -> Json<Value> {
    Json(json!({"listed": true}))
}

async fn create() -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({"created": true})))
}

async fn get_one(Path(id): Path<String>) -> Json<Value> {
    Json(json!({"id": id}))
}

fn items() -> Function {
    Function::http(FunctionJson::new("items", ITEMS), no_paths)
        .on(Method::GET, list)
        .on(Method::POST, create)
        .on_with_optional(Method::GET, get_one)
        .into()
}

fn app() -> axum::Router {
    FunctionApp::new().register(items()).build().unwrap()
}

fn request(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn an_optional_route_segment_serves_the_path_with_and_without_it() {
    let app = app();
    let (status, _, body) = send(&app, request(Method::GET, "/api/items")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"listed": true})));
    let (status, _, body) = send(&app, request(Method::POST, "/api/items")).await;
    assert_eq!(
        (status, body),
        (StatusCode::CREATED, json!({"created": true}))
    );
    let (status, _, body) = send(&app, request(Method::GET, "/api/items/it_1")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": "it_1"})));
}

#[tokio::test]
async fn forwarded_request_with_an_undeclared_method_gets_405_problem_with_allow() {
    use tower::ServiceExt as _;
    let app = app();
    for (method, path, allow) in [
        (Method::TRACE, "/api/items", "GET, POST"),
        (Method::DELETE, "/api/items", "GET, POST"),
        (Method::POST, "/api/items/it_1", "GET"),
    ] {
        let response = app
            .clone()
            .oneshot(request(method.clone(), path))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(problem["status"], 405);
        assert_eq!(problem["code"], "method_not_allowed");
    }
}

#[tokio::test]
async fn envelope_request_with_an_undeclared_method_gets_405_with_allow_in_outputs_res() {
    let mut envelope: Value = serde_json::from_str(fixture("http-docs.json")).unwrap();
    envelope["Data"]["req"]["Url"] = json!("http://h/api/items");
    envelope["Data"]["req"]["Method"] = json!("TRACE");
    let (status, _, reply) = send(&app(), invoke("items", envelope.to_string())).await;
    assert_eq!(status, StatusCode::OK, "the invocation itself succeeds");
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], "405");
    assert_eq!(res["headers"]["allow"], "GET, POST");
    assert_eq!(res["headers"]["content-type"], "application/problem+json");
    let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["code"], "method_not_allowed");
}

#[tokio::test]
async fn an_unknown_path_is_still_404() {
    let (status, _, _) = send(&app(), request(Method::GET, "/api/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn http_routes_list_every_method_at_its_openapi_path() {
    let routes = FunctionApp::new().register(items()).http_routes().unwrap();
    let listed: Vec<(Method, &str)> = routes
        .iter()
        .map(|HttpRoute { method, path, .. }| (method.clone(), path.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (Method::GET, "/api/items"),
            (Method::POST, "/api/items"),
            (Method::GET, "/api/items/{id}"),
        ]
    );
}

fn build_error(function: Function) -> BuildError {
    FunctionApp::new().register(function).build().unwrap_err()
}

#[test]
fn a_handler_for_a_method_function_json_does_not_list_fails_the_build() {
    let function = Function::http(FunctionJson::new("items", ITEMS), no_paths)
        .on(Method::GET, list)
        .on(Method::POST, create)
        .on(Method::DELETE, list)
        .into();
    let error = build_error(function);
    assert!(
        matches!(error, BuildError::UndeclaredMethod { .. }),
        "{error}"
    );
}

#[test]
fn a_listed_method_without_a_handler_fails_the_build() {
    let function = Function::http(FunctionJson::new("items", ITEMS), no_paths)
        .on(Method::GET, list)
        .into();
    let error = build_error(function);
    assert!(
        matches!(error, BuildError::MethodWithoutHandler { .. }),
        "{error}"
    );
}

#[test]
fn two_functions_serving_one_method_at_one_path_fail_the_build() {
    let other = r#"{"bindings":[
      {"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"items"},
      {"type":"http","direction":"out","name":"res"}]}"#;
    let error = FunctionApp::new()
        .register(items())
        .register(Function::http(FunctionJson::new("other", other), no_paths).on(Method::GET, list))
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::DuplicateRoute { .. }),
        "{error}"
    );
}

#[test]
fn a_handler_on_an_optional_segment_the_route_lacks_fails_the_build() {
    let plain = r#"{"bindings":[
      {"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"plain"},
      {"type":"http","direction":"out","name":"res"}]}"#;
    let function = Function::http(FunctionJson::new("plain", plain), no_paths)
        .on_with_optional(Method::GET, list)
        .into();
    let error = build_error(function);
    assert!(matches!(error, BuildError::NoOptionalSegment(_)), "{error}");
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(documented_list, documented_elsewhere))]
struct WrongPathApi;

#[utoipa::path(get, path = "/api/items", responses((status = 200)))]
#[allow(dead_code)]
async fn documented_list() {}

#[utoipa::path(get, path = "/api/item/{id}", responses((status = 200)))]
#[allow(dead_code)]
async fn documented_elsewhere() {}

#[test]
fn an_openapi_path_the_function_does_not_serve_fails_the_build() {
    let function = Function::http(FunctionJson::new("items", ITEMS), WrongPathApi::openapi)
        .on(Method::GET, list)
        .on(Method::POST, create)
        .on_with_optional(Method::GET, get_one)
        .into();
    let error = build_error(function);
    match error {
        BuildError::OpenApi { source, .. } => assert_eq!(source.path, "/api/item/{id}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn paths_are_under_the_route_prefix_host_json_sets() {
    let host = r#"{"version":"2.0","extensions":{"http":{"routePrefix":"v1"}}}"#;
    let app = FunctionApp::new()
        .host_json(host)
        .register(items())
        .build()
        .unwrap();
    let (status, _, _) = send(&app, request(Method::GET, "/v1/items/it_1")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, request(Method::GET, "/api/items/it_1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn host_json_without_a_route_prefix_means_api_and_bad_json_fails_the_build() {
    let routes = FunctionApp::new()
        .host_json(r#"{"version":"2.0"}"#)
        .register(items())
        .http_routes()
        .unwrap();
    assert_eq!(routes[0].path, "/api/items");
    let error = FunctionApp::new()
        .host_json("{")
        .register(items())
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::HostJson(_)), "{error}");
}

#[tokio::test]
async fn the_405_problem_has_the_api_problem_shape() {
    let (status, _, problem) = send(&app(), request(Method::TRACE, "/api/items")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        problem,
        json!({
            "type": "urn:meshpay:problem:method_not_allowed",
            "title": "Method not allowed",
            "status": 405,
            "detail": "this path does not support the request's method; see the Allow header",
            "code": "method_not_allowed",
        })
    );
}
