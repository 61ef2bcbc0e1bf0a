//! `/presets` (under Templates in the navigation): the presets the user may use — list, edit,
//! delete, "Use" (opens the wizard from it) — and a form for a new one. A preset's values are
//! edited as the JSON object the API takes; the wizard's Review step saves them from a filled
//! form. Everything goes through [`crate::presets`] (validation, ownership, audit).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::presets::{self, PresetBody, PresetView};
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone, Viewer};
use crate::web::home::viewer;
use crate::web::templates::form::urlencode;

/// What the edit form holds (as typed, so an error loses nothing).
#[derive(Debug, Default, Deserialize)]
pub struct PresetForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    values: String,
    #[serde(default)]
    shared: Option<String>,
}

impl PresetForm {
    fn of(p: &PresetView) -> Self {
        Self {
            name: p.name.clone(),
            template: p.template.clone(),
            values: serde_json::to_string_pretty(&p.values).unwrap_or_default(),
            shared: p.shared.then(|| "1".to_owned()),
        }
    }

    fn body(&self) -> Result<PresetBody, AppError> {
        let values: Map<String, Value> = if self.values.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(&self.values).map_err(|e| AppError::Invalid {
                message: "the values are not a JSON object".into(),
                fields: vec![(
                    "values".into(),
                    format!("write a JSON object like {{\"memory\": 512}} ({e})"),
                )],
            })?
        };
        Ok(PresetBody {
            name: self.name.trim().to_owned(),
            template: self.template.trim().to_owned(),
            values,
            shared: Some(self.shared.as_deref() == Some("1")),
        })
    }
}

fn summary(values: &Map<String, Value>) -> String {
    values
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn error_for<'a>(errors: &'a [(String, String)], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| f == field || f.starts_with(&format!("{field}.")))
        .map(|(_, m)| m.as_str())
}

fn editor(
    v: &Viewer,
    action: &str,
    form: &PresetForm,
    templates: &[(String, String)],
    errors: &[(String, String)],
    submit: &str,
) -> Markup {
    html! {
        form.form method="post" action=(action) {
            (ui::csrf_field(v))
            (ui::field(&Field { value: &form.name, required: true, error: error_for(errors, "name"), hint: Some("lower-case letters, digits, '-', e.g. web-small"), ..Field::new("name", "Name") }))
            (ui::select("template", "Template", templates, &form.template, error_for(errors, "template")))
            (ui::field(&Field { value: &form.values, kind: "textarea", error: error_for(errors, "values"), hint: Some(r#"any create field as JSON, e.g. {"memory": 512, "cores": 1, "hostname": "web-{n}", "placement": "round-robin", "tags": ["web"]}"#), ..Field::new("values", "Values") }))
            @if v.admin {
                label.choice { input type="checkbox" name="shared" value="1" checked[form.shared.as_deref() == Some("1")]; " Shared with every user" }
            }
            button.btn.btn-primary type="submit" { (submit) }
        }
    }
}

async fn template_options(state: &AppState) -> Result<Vec<(String, String)>, AppError> {
    Ok(state
        .store
        .list_templates()
        .await?
        .into_iter()
        .map(|t| (t.row.name.clone(), t.row.name))
        .collect())
}

async fn list_page(
    state: &AppState,
    user: &CurrentUser,
    form: &PresetForm,
    errors: &[(String, String)],
    notice: Option<&str>,
) -> Result<Markup, AppError> {
    let items = presets::list(state, user).await?;
    let templates = template_options(state).await?;
    let v = viewer(user);
    Ok(ui::layout(
        "Presets",
        "/templates",
        &v,
        html! {
            (ui::breadcrumbs(&[("/templates", "Templates"), ("/presets", "Presets")]))
            h1 { "Presets" }
            p.muted { "Saved answers of the creation wizard for a template. Use one from the wizard, the API (" code { "\"preset\": \"web-small\"" } ") or the CLI (" code { "ctforge ct create --preset web-small --hostname web-7" } "). Permissions are checked when a preset is used." }
            @if let Some(n) = notice { (ui::alert(Tone::Ok, n)) }
            @if items.is_empty() {
                (ui::empty_state("No presets", "Save one from the wizard's Review step, or below.", None))
            } @else {
                table.table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Template" } th scope="col" { "Values" } th scope="col" { "Owner" } th scope="col" { span.skip { "Actions" } } } }
                    tbody {
                        @for p in &items {
                            tr {
                                td { a href={ "/presets/" (urlencode(&p.name)) } { (p.name) } @if p.shared { " " (ui::badge(Some(Tone::Info), "shared")) } }
                                td { code { (p.template) } }
                                td.muted { (summary(&p.values)) }
                                td { (p.owner) }
                                td { a.btn href={ "/containers/new?preset=" (urlencode(&p.name)) } { "Use" } }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "New preset" }
                (editor(&v, "/presets", form, &templates, errors, "Save preset"))
            }
        },
    ))
}

async fn edit_page(
    state: &AppState,
    user: &CurrentUser,
    name: &str,
    form: &PresetForm,
    errors: &[(String, String)],
) -> Result<Markup, AppError> {
    let templates = template_options(state).await?;
    let v = viewer(user);
    let action = format!("/presets/{}", urlencode(name));
    Ok(ui::layout(
        &format!("Preset {name}"),
        "/templates",
        &v,
        html! {
            (ui::breadcrumbs(&[("/templates", "Templates"), ("/presets", "Presets"), ("", name)]))
            h1 { "Preset " span.mono { (name) } }
            @if !errors.is_empty() && errors.iter().all(|(f, _)| !["name", "template", "values"].iter().any(|k| f == k || f.starts_with(&format!("{k}.")))) {
                (ui::alert(Tone::Err, &errors.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ")))
            }
            section.card { (editor(&v, &action, form, &templates, errors, "Save changes")) }
            div.row {
                a.btn href={ "/containers/new?preset=" (urlencode(name)) } { "Use in the wizard" }
                (ui::dialog_opener("delete-preset", "Delete", true))
                (ui::confirm_dialog("delete-preset", &format!("Delete preset {name}?"), "Containers made from it are not affected.", &format!("{action}/delete"), "Delete", &v))
            }
        },
    ))
}

fn fields_of(e: &AppError) -> Vec<(String, String)> {
    match e {
        AppError::Invalid { fields, message } if fields.is_empty() => {
            vec![("values".into(), message.clone())]
        }
        AppError::Invalid { fields, .. } => fields.clone(),
        other => vec![("preset".into(), other.to_string())],
    }
}

/// `GET /presets`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    let form = PresetForm {
        values: "{}".into(),
        ..PresetForm::default()
    };
    list_page(&state, &user, &form, &[], None).await
}

/// `POST /presets`: saves a new preset.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<PresetForm>,
) -> Result<Response, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let result = match form.body() {
        Ok(body) => presets::create(&state, &user, caller, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => Ok(Redirect::to(&format!("/presets/{}", urlencode(&p.name))).into_response()),
        Err(e @ (AppError::Invalid { .. } | AppError::Forbidden(_))) => Ok((
            e.status(),
            list_page(&state, &user, &form, &fields_of(&e), None).await?,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// `GET /presets/{name}`: the edit form.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Markup, AppError> {
    let preset = presets::get(&state, &user, &name).await?;
    let form = PresetForm::of(&PresetView::from(&preset));
    edit_page(&state, &user, &name, &form, &[]).await
}

/// `POST /presets/{name}`: saves changes.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Form(form): Form<PresetForm>,
) -> Result<Response, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let result = match form.body() {
        Ok(body) => presets::update(&state, &user, caller, &name, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => Ok(Redirect::to(&format!("/presets/{}", urlencode(&p.name))).into_response()),
        Err(e @ (AppError::Invalid { .. } | AppError::Forbidden(_))) => {
            let status = if matches!(e, AppError::Invalid { .. }) {
                StatusCode::BAD_REQUEST
            } else {
                e.status()
            };
            Ok((
                status,
                edit_page(&state, &user, &name, &form, &fields_of(&e)).await?,
            )
                .into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /presets/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Redirect, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    presets::delete(&state, &user, caller, &name).await?;
    Ok(Redirect::to("/presets"))
}
