//! The route table: every route, one entry per method, with who may call it and what it takes
//! and answers (request and response schemas for the JSON API). Modules register their own
//! routes (`web::routes`, `api::routes`); `startup::router` builds the router from the same
//! entries, `openapi` the OpenAPI document, and [`exists`] answers "is this route served".

use std::sync::LazyLock;

use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use schemars::JsonSchema;
use serde_json::Value;

use crate::state::AppState;

/// A schema generator: `schema::<T>` for a request or response type.
pub type SchemaFn = fn() -> Value;

/// The JSON Schema of `T` (with its `$defs`; `openapi` hoists them).
pub fn schema<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// What a route answers on success.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// An HTML page, a redirect or another browser response.
    Page,
    /// JSON of this schema with this status.
    Json {
        /// 200, 201 or 202.
        status: u16,
        /// The body's schema.
        schema: SchemaFn,
    },
    /// `204 No Content`.
    NoContent,
    /// A file of this media type.
    File(&'static str),
    /// Plain text (`/metrics`).
    Text,
    /// A Server-Sent Events stream (`Accept: text/event-stream`) whose `data:` lines carry this
    /// schema, or, without that header, JSON of `json` when given; `204` when there is
    /// nothing to stream.
    Events {
        /// Schema of one event's `data`.
        event: SchemaFn,
        /// Schema of the JSON alternative, if the route has one.
        json: Option<SchemaFn>,
    },
}

/// What a route takes and answers.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    /// JSON request body schema.
    pub request: Option<SchemaFn>,
    /// Success answer.
    pub answer: Answer,
}

impl Doc {
    /// A browser page (HTML, redirects).
    pub const fn page() -> Self {
        Self {
            request: None,
            answer: Answer::Page,
        }
    }

    /// `200` with `T` as JSON.
    pub fn json<T: JsonSchema>() -> Self {
        Self::status::<T>(200)
    }

    /// `status` with `T` as JSON.
    pub fn status<T: JsonSchema>(status: u16) -> Self {
        Self {
            request: None,
            answer: Answer::Json {
                status,
                schema: schema::<T>,
            },
        }
    }

    /// `204 No Content`.
    pub const fn no_content() -> Self {
        Self {
            request: None,
            answer: Answer::NoContent,
        }
    }

    /// Any answer.
    pub const fn answer(answer: Answer) -> Self {
        Self {
            request: None,
            answer,
        }
    }

    /// Takes a JSON body of type `B`.
    pub fn body<B: JsonSchema>(mut self) -> Self {
        self.request = Some(schema::<B>);
        self
    }

    /// Takes a JSON body of this schema.
    pub fn body_schema(mut self, request: SchemaFn) -> Self {
        self.request = Some(request);
        self
    }
}

/// One registered route and method.
#[derive(Clone, Copy, Debug)]
pub struct RouteInfo {
    /// HTTP method (`GET`, `POST`, `PUT`, `DELETE`).
    pub method: &'static str,
    /// Path pattern (`/api/v1/containers/{id}`).
    pub path: &'static str,
    /// Reachable without signing in.
    pub public: bool,
    /// What it takes and answers.
    pub doc: Doc,
}

/// The routers under construction and their table.
pub struct Routes {
    /// Routes reachable without signing in.
    pub public: Router<AppState>,
    /// Routes behind `require_auth`.
    pub protected: Router<AppState>,
    /// One entry per path and method.
    pub table: Vec<RouteInfo>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! methods {
    ($($name:ident, $public:ident => $method:literal, $routing:path;)*) => {$(
        #[doc = concat!("A protected `", $method, "` route.")]
        pub fn $name<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(false, $method, path, $routing(handler), doc)
        }

        #[doc = concat!("A public `", $method, "` route (no sign-in).")]
        pub fn $public<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(true, $method, path, $routing(handler), doc)
        }
    )*};
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            public: Router::new(),
            protected: Router::new(),
            table: Vec::new(),
        }
    }

    fn add(
        mut self,
        public: bool,
        method: &'static str,
        path: &'static str,
        route: MethodRouter<AppState>,
        doc: Doc,
    ) -> Self {
        // axum merges method routers registered on the same path.
        if public {
            self.public = self.public.route(path, route);
        } else {
            self.protected = self.protected.route(path, route);
        }
        self.table.push(RouteInfo {
            method,
            path,
            public,
            doc,
        });
        self
    }

    methods! {
        get, public_get => "GET", axum::routing::get;
        post, public_post => "POST", axum::routing::post;
        put, public_put => "PUT", axum::routing::put;
        delete, public_delete => "DELETE", axum::routing::delete;
    }
}

/// Every route of the application, registered by its module.
pub fn all() -> Routes {
    let routes = crate::web::routes(Routes::new());
    crate::api::routes(routes)
}

static TABLE: LazyLock<Vec<RouteInfo>> = LazyLock::new(|| all().table);

/// Every registered route and method (built once; the table is code, not state).
pub fn table() -> &'static [RouteInfo] {
    &TABLE
}

/// Whether `method path` (a pattern as registered, `/jobs/{id}`) is served.
pub fn exists(method: &str, path: &str) -> bool {
    table().iter().any(|r| r.method == method && r.path == path)
}
