//! `GET /openapi.json`: the API described in OpenAPI 3.1, built with `utoipa`'s
//! model from the route table, and `GET /docs`, a page that reads it.
//!
//! Why from the table and not from `#[utoipa::path]` on each handler: the route
//! table (`routes.rs`) already lists every route, its method and the right it
//! needs, and its tests check it against the router. Building the document from
//! it means a route cannot be served without being described: [`describe`] has
//! an entry per route, and a test fails for a table route it does not know. The
//! per-route text (summary, query parameters, body, success status) sits in
//! [`describe`], next to nothing else; the wire details stay in `docs/api-v1.md`.
//!
//! The `/docs` page that reads the document is served by `web.rs`.

use super::error::ApiError;
use super::routes::{Access, Route, ROUTES};
use bytes::Bytes;
use http::{Method, Response};
use serde_json::json;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, KnownFormat, ObjectBuilder, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, SchemaFormat, Type,
};

/// What [`describe`] says about one route.
pub(crate) struct Doc {
    summary: &'static str,
    /// Query parameters: name and description.
    query: &'static [(&'static str, &'static str)],
    body: Body,
    /// Success status and what it returns.
    ok: (&'static str, &'static str),
}

/// A request body.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON of the named component schema.
    Json(&'static str),
    /// One raw message of any Content-Type.
    Raw,
}

const fn d(
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Body,
    ok: (&'static str, &'static str),
) -> Doc {
    Doc { summary, query, body, ok }
}

/// The description of `route`; `None` for a route this module does not know yet
/// (a test fails then).
pub(crate) fn describe(route: &Route) -> Option<Doc> {
    use Body::{Json, None as No, Raw};
    const JSON: (&str, &str) = ("200", "JSON");
    const NONE: (&str, &str) = ("204", "No content");
    Some(match (route.method, route.path) {
        ("GET", "/") => d("The dashboard (HTML)", &[], No, ("200", "HTML page")),
        ("GET", "/healthz") => d("Health: the store answers; whether keys are on", &[], No, JSON),
        ("GET", "/__heartbeat__") => d("Liveness probe: OK", &[], No, ("200", "text/plain OK")),
        ("GET", "/metrics") => d("Metrics, OpenMetrics text", &[], No, ("200", "OpenMetrics text")),
        ("GET", "/openapi.json") => d("This document", &[], No, JSON),
        ("GET", "/docs") => d("A page to read and try this API (HTML)", &[], No, ("200", "HTML page")),
        ("GET", "/app.js") => d("The dashboard's script", &[], No, ("200", "JavaScript")),
        ("GET", "/docs.js") => d("The API page's script", &[], No, ("200", "JavaScript")),
        ("GET", "/app.css") => d("The pages' style sheet", &[], No, ("200", "CSS")),
        ("GET", "/v1/queues") => d(
            "List queues",
            &[
                ("prefix", "only names starting with it"),
                ("limit", "page size, 1..=1000 (100)"),
                ("cursor", "from a previous page's next_cursor"),
                ("details", "true: include stats"),
            ],
            No,
            JSON,
        ),
        ("GET", "/v1/queues/{q}") => d("Queue config and stats", &[], No, JSON),
        ("PUT", "/v1/queues/{q}") => {
            d("Create or update a queue", &[], Json("QueueConfig"), ("201", "Created (200: updated)"))
        }
        ("DELETE", "/v1/queues/{q}") => {
            d("Delete a queue", &[("if_empty", "true: refuse (409) if it holds messages")], No, NONE)
        }
        ("POST", "/v1/queues/{q}/purge") => d("Drop every message", &[], No, JSON),
        ("GET", "/v1/queues/{q}/messages") => d(
            "Browse messages without consuming",
            &[
                ("after", "message id to start after"),
                ("limit", "1..=1000 (100)"),
                ("order", "asc or desc (several partitions: partition by partition)"),
                ("partition", "only this partition"),
            ],
            No,
            JSON,
        ),
        ("POST", "/v1/queues/{q}/messages") => d(
            "Send one message (raw body; Edgeq-Delay, Edgeq-TTL, Edgeq-Partition, Idempotency-Key headers)",
            &[],
            Raw,
            ("201", "Created: {\"id\", \"duplicate\"}"),
        ),
        ("POST", "/v1/queues/{q}/messages/batch") => {
            d("Send up to 1000 messages", &[], Json("Batch"), ("200", "Per-entry results"))
        }
        ("GET", "/v1/queues/{q}/messages/{id}") => {
            d("Read one message (raw body, metadata in Edgeq-* headers)", &[], No, ("200", "The body"))
        }
        ("PUT", "/v1/queues/{q}/messages/{id}") => d("Overwrite one message", &[], Raw, NONE),
        ("DELETE", "/v1/queues/{q}/messages/{id}") => d("Delete one message", &[], No, NONE),
        ("POST", "/v1/queues/{q}/pop") => d(
            "Destructive read (at-most-once)",
            &[("count", "1..=100: a JSON envelope instead of one raw message")],
            No,
            ("200", "A message (204: none)"),
        ),
        ("POST", "/v1/queues/{q}/receive") => d(
            "Lease messages (at-least-once); each carries a receipt",
            &[
                ("count", "1..=100: a JSON envelope"),
                ("visibility_timeout", "lease seconds"),
                ("wait", "long poll up to 20 s"),
                ("partition", "only this partition"),
            ],
            No,
            ("200", "A message (204: none)"),
        ),
        ("POST", "/v1/queues/{q}/ack") => d("Acknowledge (delete) by receipts", &[], Json("Receipts"), JSON),
        ("POST", "/v1/queues/{q}/nack") => {
            d("Give back by receipts (optional delay)", &[], Json("Receipts"), JSON)
        }
        ("POST", "/v1/queues/{q}/extend") => {
            d("Extend leases by receipts", &[], Json("Receipts"), JSON)
        }
        ("GET", "/v1/exchanges/{x}") => d("An exchange and its bindings", &[], No, JSON),
        ("PUT", "/v1/exchanges/{x}") => {
            d("Create an exchange (direct, topic, fanout)", &[], Json("Exchange"), ("201", "Created"))
        }
        ("DELETE", "/v1/exchanges/{x}") => d("Delete an exchange", &[], No, NONE),
        ("PUT", "/v1/exchanges/{x}/bindings/{q}") => {
            d("Bind a queue", &[("key", "routing key or topic pattern")], No, NONE)
        }
        ("DELETE", "/v1/exchanges/{x}/bindings/{q}") => {
            d("Unbind a queue", &[("key", "routing key or topic pattern")], No, NONE)
        }
        ("POST", "/v1/exchanges/{x}/publish") => d(
            "Publish one message (raw body, Edgeq-Routing-Key) to every bound queue",
            &[],
            Raw,
            JSON,
        ),
        ("GET", "/v1/keys") => d(
            "List API keys (never the keys themselves)",
            &[("cursor", "from next_cursor"), ("limit", "1..=1000 (100)")],
            No,
            JSON,
        ),
        ("POST", "/v1/keys") => d(
            "Create an API key: the key is shown in this answer only",
            &[],
            Json("NewKey"),
            ("201", "Created"),
        ),
        ("DELETE", "/v1/keys/{id}") => d("Revoke an API key", &[], No, NONE),
        _ => return None,
    })
}

/// The component schemas request bodies refer to (JSON Schema 2020-12).
fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    let receipts = json!({"type": "array", "items": {"type": "string"}, "maxItems": 1000});
    vec![
        (
            "Error",
            json!({"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}),
        ),
        (
            "QueueConfig",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "max_messages": {"type": "integer"}, "max_bytes": {"type": "integer"},
                "message_ttl": {"type": "integer"}, "visibility_timeout": {"type": "integer"},
                "delay": {"type": "integer"}, "max_receives": {"type": "integer"},
                "dead_letter_queue": {"type": ["string", "null"]},
                "partitions": {"type": "integer"}, "public": {"type": "boolean"}}}),
        ),
        (
            "Batch",
            json!({"type": "object", "required": ["messages"], "properties": {"messages": {
                "type": "array", "maxItems": 1000, "items": {"type": "object", "properties": {
                    "body": {"type": "string"}, "body_base64": {"type": "string"},
                    "content_type": {"type": "string"}, "delay": {"type": "integer"},
                    "ttl": {"type": "integer"}, "partition": {"type": "integer"},
                    "idempotency_key": {"type": "string"}}}}}}),
        ),
        (
            "Receipts",
            json!({"type": "object", "required": ["receipts"], "properties": {
                "receipts": receipts, "delay": {"type": "integer"},
                "visibility_timeout": {"type": "integer"}}}),
        ),
        (
            "Exchange",
            json!({"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["direct", "topic", "fanout"]}}}),
        ),
        (
            "NewKey",
            json!({"type": "object", "required": ["rights"], "additionalProperties": false,
                "properties": {
                    "rights": {"type": "array", "minItems": 1, "items": {"type": "string",
                        "enum": ["admin", "produce", "consume", "browse"]}},
                    "namespace": {"type": "string", "description": "a namespace, or *"},
                    "name": {"type": "string", "maxLength": 100}}}),
        ),
    ]
}

fn method(m: &str) -> HttpMethod {
    match m {
        "PUT" => HttpMethod::Put,
        "POST" => HttpMethod::Post,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// `{"type": "string"}`, with `format` when given.
fn string(format: Option<KnownFormat>) -> RefOr<Schema> {
    let object = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
        .build();
    RefOr::T(Schema::Object(object))
}

/// A reference to component schema `name`.
fn component(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The whole document.
pub(crate) fn document() -> serde_json::Value {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let Some(doc) = describe(route) else { continue };
        let mut op = OperationBuilder::new()
            .summary(Some(doc.summary))
            .operation_id(Some(format!("{} {}", route.method, route.path)))
            .tag(route.path.split('/').nth(2).unwrap_or("operations").trim_start_matches('{'));
        for seg in route.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string(None))),
            );
        }
        for (name, what) in doc.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*what))
                    .schema(Some(string(None))),
            );
        }
        let body = match doc.body {
            Body::None => None,
            Body::Json(name) => Some(("application/json", component(name))),
            Body::Raw => Some(("*/*", string(Some(KnownFormat::Binary)))),
        };
        if let Some((ct, s)) = body {
            let content = ContentBuilder::new().schema(Some(s)).build();
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(ct, content)
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        op = op.response(doc.ok.0, ResponseBuilder::new().description(doc.ok.1));
        let error = ContentBuilder::new().schema(Some(component("Error"))).build();
        let err = |what: &str| {
            ResponseBuilder::new().description(what).content("application/json", error.clone())
        };
        op = op.response("4XX", err("Refused: {\"error\":{\"code\",\"message\"}}"));
        let key = || SecurityRequirement::new("key", Vec::<String>::new());
        let right = match route.access {
            Access::Open => "none".to_owned(),
            Access::Public => {
                op = op.security(key()).security(SecurityRequirement::default());
                "browse (none for a public queue)".to_owned()
            }
            Access::Key(r) => {
                op = op.security(key());
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }
        };
        op = op.description(Some(format!("Right needed when keys are configured: {right}.")));
        paths = paths.path(route.path, PathItem::new(method(route.method), op));
    }
    let components = ComponentsBuilder::new()
        .security_scheme("key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    let api = OpenApiBuilder::new()
        .info(InfoBuilder::new().title("edgeq").version(env!("CARGO_PKG_VERSION")).description(
            Some(
                "An HTTP message queue. Errors are {\"error\":{\"code\",\"message\"}}; \
                     the full wire format is docs/api-v1.md.",
            ),
        ))
        .paths(paths)
        .components(Some(components.build()))
        .build();
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    // The component schemas go in as JSON: utoipa's schema model would need its
    // deserialiser in the component (a third of utoipa's size) to take them.
    if let Some(c) = doc.get_mut("components").and_then(|c| c.as_object_mut()) {
        let schemas = schemas().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        c.insert("schemas".into(), serde_json::Value::Object(schemas));
    }
    doc
}

/// `GET /openapi.json`.
pub(crate) fn openapi_json(m: &Method) -> Result<Response<Bytes>, ApiError> {
    super::router::allow(m, "GET, HEAD")?;
    let body = serde_json::to_vec(&document()).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(super::web::with_type(Bytes::from(body), "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = document();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        for route in ROUTES {
            assert!(
                describe(route).is_some(),
                "{} {} has no description",
                route.method,
                route.path
            );
            let op = &doc["paths"][route.path][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {} is not in the document", route.method, route.path);
        }
        for (name, _) in schemas() {
            assert!(doc["components"]["schemas"][name].is_object(), "schema {name}");
        }
    }

    /// Checks the document with `openapi-spec-validator` (Python; `scripts/test.sh`
    /// installs it). Missing is a failure with a message, never a skip.
    #[test]
    fn the_document_validates() {
        let path = std::env::temp_dir().join(format!("edgeq-openapi-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(&document()).unwrap()).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&path)
            .output()
            .expect("python3 runs (scripts/test.sh installs openapi-spec-validator)");
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("No module named"), "pip install openapi-spec-validator: {text}");
        assert!(out.status.success(), "the OpenAPI document does not validate:\n{text}");
    }
}
