//! `/api/v1/notifications/…`: notification targets (list, create, change, delete, test) and
//! the delivery attempts, for ctforge admins. Thin: `notify::targets` holds the use-cases.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::notify::targets::{
    self, DeliveryQuery, DeliveryView, TargetForm, TargetView, TestReport,
};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The notification routes.
pub fn routes(r: Routes) -> Routes {
    r.get(
        "/api/v1/notifications/targets",
        list,
        Doc::json::<Vec<TargetView>>(),
    )
    .post(
        "/api/v1/notifications/targets",
        create,
        Doc::status::<TargetView>(201).body::<TargetForm>(),
    )
    .get(
        "/api/v1/notifications/targets/{id}",
        get,
        Doc::json::<TargetView>(),
    )
    .put(
        "/api/v1/notifications/targets/{id}",
        update,
        Doc::json::<TargetView>().body::<TargetForm>(),
    )
    .delete(
        "/api/v1/notifications/targets/{id}",
        delete,
        Doc::no_content(),
    )
    .post(
        "/api/v1/notifications/targets/{id}/test",
        test,
        Doc::json::<TestReport>(),
    )
    .get(
        "/api/v1/notifications/deliveries",
        deliveries,
        Doc::json::<Vec<DeliveryView>>(),
    )
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(body: JsonBody<T>) -> Result<T, AppError> {
    body.map(|Json(v)| v)
        .map_err(|r| AppError::invalid(r.body_text()))
}

/// `GET /api/v1/notifications/targets`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<Vec<TargetView>>, AppError> {
    Ok(Json(targets::list(&state, &user).await?))
}

/// `GET /api/v1/notifications/targets/{id}`.
pub async fn get(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<TargetView>, AppError> {
    Ok(Json(targets::get(&state, &user, id).await?))
}

/// `POST /api/v1/notifications/targets`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    form: JsonBody<TargetForm>,
) -> Result<(StatusCode, Json<TargetView>), AppError> {
    crate::auth::require_admin(&user)?;
    let form = body(form)?;
    let view = targets::create(&state, &user, &form, &remote.ip().to_string()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PUT /api/v1/notifications/targets/{id}`.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    form: JsonBody<TargetForm>,
) -> Result<Json<TargetView>, AppError> {
    crate::auth::require_admin(&user)?;
    let form = body(form)?;
    Ok(Json(
        targets::update(&state, &user, id, &form, &remote.ip().to_string()).await?,
    ))
}

/// `DELETE /api/v1/notifications/targets/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    targets::delete(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/notifications/targets/{id}/test`: sends a test notification now.
pub async fn test(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<TestReport>, AppError> {
    Ok(Json(
        targets::test(&state, &user, id, &remote.ip().to_string()).await?,
    ))
}

/// `GET /api/v1/notifications/deliveries?target=&before=&limit=`.
pub async fn deliveries(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryView>>, AppError> {
    Ok(Json(targets::deliveries(&state, &user, &query).await?))
}
