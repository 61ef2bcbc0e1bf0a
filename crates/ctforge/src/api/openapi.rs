//! The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`) and a browsable page
//! (`GET /api/docs`). Paths come from the route table itself, so every registered API route is
//! documented; request bodies come from the Rust types via `schemars`, so they cannot drift.

use axum::Json;
use axum::extract::State;
use maud::{Markup, html};
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::state::AppState;
use crate::web::components as ui;

fn schema<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// Moves a generated schema's `$defs` into the document's `components/schemas` and points
/// every `$ref` there, so each body is resolvable from anywhere in the document.
fn hoist(mut schema: Value, components: &mut serde_json::Map<String, Value>) -> Value {
    if let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (name, mut def) in defs {
            rewrite_refs(&mut def);
            components.insert(name, def);
        }
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    rewrite_refs(&mut schema);
    schema
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "$ref" => {
                        if let Some(name) = s.strip_prefix("#/$defs/") {
                            *s = format!("#/components/schemas/{name}");
                        }
                    }
                    other => rewrite_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// Request bodies by (method, path).
fn request_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("POST", "/api/v1/auth/login") => Some(schema::<crate::auth::login::LoginInput>()),
        ("POST", "/api/v1/containers") | ("POST", "/api/v1/containers/plan") => {
            Some(schema::<crate::provisioning::plan::CreateRequest>())
        }
        ("POST", "/api/v1/clusters") | ("PUT", "/api/v1/clusters/{id}") => {
            Some(schema::<crate::clusters::ClusterForm>())
        }
        ("POST", "/api/v1/containers/bulk") => Some(json!({
            "type": "object",
            "required": ["action", "ids"],
            "properties": {
                "action": { "type": "string", "enum": ["start", "stop", "shutdown", "reboot", "delete"] },
                "ids": { "type": "array", "minItems": 1, "maxItems": crate::containers::bulk::MAX_IDS, "uniqueItems": true, "items": { "type": "string", "description": "ctforge id (42) or <cluster>:<vmid> (lab:105)" } },
                "timeout": { "type": "integer", "minimum": 0, "maximum": crate::containers::lifecycle::MAX_SHUTDOWN_TIMEOUT, "description": "graceful shutdown timeout in seconds (shutdown only; default 60)" }
            },
            "additionalProperties": false
        })),
        ("POST", "/api/v1/tokens") => Some(
            json!({ "type": "object", "required": ["name"], "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 64 } }, "additionalProperties": false }),
        ),
        ("POST", "/api/v1/clusters/fingerprint") => Some(
            json!({ "type": "object", "required": ["url"], "properties": { "url": { "type": "string", "format": "uri" } }, "additionalProperties": false }),
        ),
        ("POST", "/api/v1/templates") | ("PUT", "/api/v1/templates/{name}") => {
            Some(schema::<crate::api::v1::templates::TemplateBody>())
        }
        ("POST", "/api/v1/templates/{name}/duplicate") => {
            Some(schema::<crate::api::v1::templates::DuplicateBody>())
        }
        ("POST", "/api/v1/buckets") | ("PUT", "/api/v1/buckets/{id}") => {
            Some(schema::<crate::api::v1::buckets::BucketBody>())
        }
        ("POST", "/api/v1/buckets/{id}/packages") => {
            Some(schema::<crate::api::v1::buckets::AddPackages>())
        }
        ("DELETE", "/api/v1/buckets/{id}/packages") => {
            Some(schema::<crate::api::v1::buckets::RemovePackages>())
        }
        _ => None,
    }
}

fn summary(method: &str, path: &str) -> String {
    let resource = path
        .trim_start_matches("/api/v1/")
        .replace("{id}", "one")
        .replace("{name}", "one");
    format!("{method} {resource}")
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Error".to_owned(),
        json!({ "type": "object", "properties": { "error": { "type": "string" }, "status": { "type": "integer" }, "fields": { "type": "object", "additionalProperties": { "type": "string" } } }, "required": ["error", "status"] }),
    );
    for route in crate::startup::route_table() {
        if !route.path.starts_with("/api/") {
            continue;
        }
        let mut item = match paths.remove(route.path) {
            Some(Value::Object(existing)) => existing,
            _ => serde_json::Map::new(),
        };
        for method in route.methods {
            let mut op = json!({
                "summary": summary(method, route.path),
                "operationId": format!("{}_{}", method.to_lowercase(), route.path.trim_start_matches('/').replace(['/', '{', '}'], "_")),
                "responses": {
                    "200": { "description": "success", "content": { "application/json": { "schema": {} } } },
                    "201": { "description": "created", "content": { "application/json": { "schema": {} } } },
                    "202": { "description": "accepted", "content": { "application/json": { "schema": {} } } },
                    "204": { "description": "no content" },
                    "400": { "description": "invalid input; `fields` names each problem", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "401": { "description": "not signed in", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "403": { "description": "not allowed (CSRF or Proxmox permissions)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "404": { "description": "not found", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "405": { "description": "method not allowed on this path", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "409": { "description": "conflicts with the current state", "content": { "application/json": { "schema": {} } } },
                    "413": { "description": "request body too large", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "415": { "description": "the body must be JSON (`Content-Type: application/json`)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "422": { "description": "invalid input: JSON that does not fit the request's shape, or a rejected bulk request; `fields` names each problem", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "429": { "description": "too many failed sign-ins", "content": { "application/json": { "schema": {} } } },
                    "503": { "description": "Proxmox or another dependency is unreachable", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                }
            });
            if route.path == "/api/v1/templates/{name}/export" {
                op["responses"]["200"] = json!({ "description": "the template directory as a .tar.gz", "content": { "application/gzip": { "schema": { "type": "string", "format": "binary" } } } });
            }
            if route.path == "/api/docs" {
                op["responses"] = json!({ "200": { "description": "the browsable API page", "content": { "text/html": { "schema": { "type": "string" } } } }, "401": op["responses"]["401"].clone() });
            }
            let mut parameters = Vec::new();
            for name in ["id", "name"] {
                if route.path.contains(&format!("{{{name}}}")) {
                    parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
                }
            }
            if !parameters.is_empty() {
                op["parameters"] = Value::Array(parameters);
            }
            if let Some(body) = request_body(method, route.path).map(|b| hoist(b, &mut schemas)) {
                op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body } } });
            }
            if route.public {
                op["security"] = json!([]);
            }
            item.insert(method.to_lowercase(), op);
        }
        paths.insert(route.path.to_owned(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "ctforge API", "version": env!("CARGO_PKG_VERSION"), "description": "Templates to provisioned, managed LXC containers on Proxmox VE. Authenticate with `Authorization: Bearer <API token>` (Settings → API tokens), or with the session cookie plus `X-CSRF-Token` on state changes." },
        "servers": [{ "url": "/" }],
        "components": {
            "securitySchemes": {
                "token": { "type": "http", "scheme": "bearer" },
                "session": { "type": "apiKey", "in": "cookie", "name": "ctforge_session" }
            },
            "schemas": schemas
        },
        "security": [{ "token": [] }, { "session": [] }],
        "paths": paths,
    })
}

/// `GET /api/openapi.json`.
pub async fn json_document() -> Json<Value> {
    Json(document())
}

/// `GET /api/docs`: the API, readable in the browser.
pub async fn page(
    State(_state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Markup {
    let doc = document();
    let v = crate::web::home::viewer(&user);
    ui::layout(
        "API",
        "/api/docs",
        &v,
        html! {
            h1 { "JSON API" }
            p { "Machine-readable: " a href="/api/openapi.json" { code { "/api/openapi.json" } } ". Authenticate with " code { "Authorization: Bearer <token>" } " (" a href="/settings/tokens" { "create a token" } ")." }
            @if let Some(paths) = doc["paths"].as_object() {
                table.table {
                    thead { tr { th scope="col" { "Method" } th scope="col" { "Path" } th scope="col" { "Body" } } }
                    tbody {
                        @for (path, item) in paths {
                            @if let Some(ops) = item.as_object() {
                                @for (method, op) in ops {
                                    tr {
                                        td { (ui::badge(None, &method.to_uppercase())) }
                                        td { code { (path) } }
                                        td { @if let Some(body) = op.get("requestBody") { details { summary { "schema" } pre.code { (serde_json::to_string_pretty(&body["content"]["application/json"]["schema"]).unwrap_or_default()) } } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented_with_its_body() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for route in crate::startup::route_table()
            .iter()
            .filter(|r| r.path.starts_with("/api/"))
        {
            for method in route.methods {
                assert!(
                    paths[route.path][method.to_lowercase()].is_object(),
                    "{method} {}",
                    route.path
                );
            }
        }
        let create = &paths["/api/v1/containers"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert!(create["properties"]["hostname"].is_object(), "{create}");
        assert_eq!(
            paths["/api/v1/auth/login"]["post"]["security"],
            json!([]),
            "login is public"
        );
    }

    #[test]
    fn every_reference_resolves_inside_the_document() {
        let doc = document();
        let text = doc.to_string();
        assert!(
            !text.contains("#/$defs/"),
            "no reference into a body's own $defs"
        );
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        fn collect(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        match v {
                            Value::String(s) if k == "$ref" => out.push(s.clone()),
                            other => collect(other, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        collect(&doc, &mut refs);
        assert!(
            refs.iter().any(|r| r.ends_with("/ScriptChoice")),
            "{refs:?}"
        );
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(schemas.contains_key(name), "{r} resolves");
        }
    }
}
