//! The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`). Operations, request
//! bodies and success answers come from the route table ([`crate::routes`]), where each route
//! registers the Rust types it takes and answers; `schemars` turns those into schemas, so the
//! document cannot drift from the code. The browsable page is `web::api_docs`.

use axum::Json;
use serde_json::{Value, json};

use crate::routes::{Answer, SchemaFn};

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

fn summary(method: &str, path: &str) -> String {
    let resource = path
        .trim_start_matches("/api/v1/")
        .replace("{id}", "one")
        .replace("{name}", "one");
    format!("{method} {resource}")
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The success answers of one operation.
fn success(answer: Answer, schemas: &mut serde_json::Map<String, Value>) -> Value {
    let mut hoisted = |f: SchemaFn| hoist(f(), schemas);
    match answer {
        Answer::Json { status, schema } => {
            let description = match status {
                201 => "created",
                202 => "accepted",
                _ => "success",
            };
            json!({ status.to_string(): { "description": description, "content": json_content(hoisted(schema)) } })
        }
        Answer::NoContent => json!({ "204": { "description": "no content" } }),
        Answer::File(media) => {
            json!({ "200": { "description": "a file", "content": { media: { "schema": { "type": "string", "format": "binary" } } } } })
        }
        Answer::Page => {
            json!({ "200": { "description": "an HTML page", "content": { "text/html": { "schema": { "type": "string" } } } } })
        }
        Answer::Text => {
            json!({ "200": { "description": "plain text", "content": { "text/plain": { "schema": { "type": "string" } } } } })
        }
        Answer::Events { event, json } => {
            let event = hoisted(event);
            let mut content = json!({ "text/event-stream": { "schema": { "type": "string", "description": "Server-Sent Events: `id:` (resume with `Last-Event-ID`), `event:` (kind), `data:` (JSON)", "x-event": event } } });
            if let Some(json) = json {
                content["application/json"] = json!({ "schema": hoisted(json) });
            }
            json!({
                "200": { "description": "the events: replay, then live while something runs", "content": content },
                "204": { "description": "nothing to stream (finished, nothing after `Last-Event-ID`)" }
            })
        }
    }
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": json_content(json!({ "$ref": "#/components/schemas/Error" })) })
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Error".to_owned(),
        json!({ "type": "object", "properties": { "error": { "type": "string" }, "status": { "type": "integer" }, "fields": { "type": "object", "additionalProperties": { "type": "string" } } }, "required": ["error", "status"] }),
    );
    for route in crate::routes::table() {
        if !route.path.starts_with("/api/") {
            continue;
        }
        let method = route.method;
        let mut responses = success(route.doc.answer, &mut schemas);
        let errors = [
            ("400", "invalid input; `fields` names each problem"),
            ("401", "not signed in"),
            ("403", "not allowed (CSRF or Proxmox permissions)"),
            ("404", "not found"),
            ("405", "method not allowed on this path"),
            ("409", "conflicts with the current state"),
            ("413", "request body too large"),
            (
                "415",
                "the body must be JSON (`Content-Type: application/json`)",
            ),
            (
                "422",
                "invalid input: JSON that does not fit the request's shape, or a rejected bulk request; `fields` names each problem",
            ),
            ("429", "too many failed sign-ins"),
            ("503", "Proxmox or another dependency is unreachable"),
        ];
        if let Some(map) = responses.as_object_mut() {
            for (status, description) in errors {
                map.insert(status.to_owned(), error(description));
            }
        }
        let mut op = json!({
            "summary": summary(method, route.path),
            "operationId": format!("{}_{}", method.to_lowercase(), route.path.trim_start_matches('/').replace(['/', '{', '}'], "_")),
            "responses": responses,
        });
        // Every `{param}` of the path, in order.
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = route.doc.request.map(|b| hoist(b(), &mut schemas)) {
            op["requestBody"] = json!({ "required": true, "content": json_content(body) });
        }
        if route.public {
            op["security"] = json!([]);
        }
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
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

/// The schema of the document itself (what `GET /api/openapi.json` answers).
pub fn document_schema() -> Value {
    json!({ "type": "object", "required": ["openapi", "info", "paths"], "properties": { "openapi": { "type": "string" }, "info": { "type": "object" }, "paths": { "type": "object" }, "components": { "type": "object" } } })
}

/// `GET /api/openapi.json`.
pub async fn json_document() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented_with_its_body() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for route in crate::routes::table()
            .iter()
            .filter(|r| r.path.starts_with("/api/"))
        {
            let op = &paths[route.path][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {}", route.method, route.path);
            for (status, answer) in op["responses"].as_object().unwrap() {
                if status.starts_with('2') && status != "204" {
                    let content = answer["content"].as_object().unwrap();
                    assert!(
                        content
                            .values()
                            .all(|c| c["schema"].as_object().is_some_and(|s| !s.is_empty())),
                        "{} {} {status} has a schema",
                        route.method,
                        route.path
                    );
                }
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
        // Two types of one name would share one component (the last hoisted wins): the
        // plan's steps and a lifecycle action's steps are both documented.
        assert!(schemas["Step"].to_string().contains("clone_vm"));
        assert!(schemas["ActionStep"].to_string().contains("message"));
    }
}
