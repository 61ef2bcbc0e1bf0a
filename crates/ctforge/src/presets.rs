//! Presets: named, saved sets of creation answers for a template (`web-small` = template
//! `nginx` with 512 MiB, one core, tags, a hostname pattern `web-{n}`, a placement rule …).
//!
//! A preset's `values` are any fields of the create request ([`CreateRequest`]) plus the
//! batch fields `count` and `placement` ([`crate::provisioning::batch::Placement`]); a root
//! password is never stored. A preset belongs to its owner; an admin may share it with
//! everyone (`shared`). Saving checks only that the values are well-formed and the template
//! exists: Proxmox's permissions apply when the preset is used, to the user using it, exactly
//! as for a hand-typed request ([`expand`] produces that request). Every change is audited.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::provisioning::batch::Placement;
use crate::provisioning::plan::CreateRequest;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::{Preset, PresetInput};

/// Longest preset name.
pub const NAME_MAX: usize = 63;

/// The body of `POST /api/v1/presets` and `PUT /api/v1/presets/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetBody {
    /// Unique name: lower-case letters, digits, `-`, `_` and `.` (`web-small`).
    pub name: String,
    /// The template it creates from.
    pub template: String,
    /// Any field of the create request (`memory`, `cores`, `tags`, `hostname` such as
    /// `web-{n}`, `node`, …) plus `count` and `placement` (`fixed`, `round-robin`,
    /// `least-loaded`). Never a password.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Visible to every user (admins only).
    #[serde(default)]
    pub shared: Option<bool>,
}

/// A preset as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PresetView {
    /// Name.
    pub name: String,
    /// Template name.
    pub template: String,
    /// The saved answers.
    pub values: Map<String, Value>,
    /// Who saved it.
    pub owner: String,
    /// Visible to every user.
    pub shared: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl From<&Preset> for PresetView {
    fn from(p: &Preset) -> Self {
        Self {
            name: p.name.clone(),
            template: p.template.clone(),
            values: serde_json::from_str(&p.values_json).unwrap_or_default(),
            owner: p.owner.clone(),
            shared: p.shared,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `GET /api/v1/presets`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PresetList {
    /// The presets the caller may use, by name.
    pub presets: Vec<PresetView>,
}

/// Keys of a body or preset that are not create-request fields.
const BATCH_KEYS: [&str; 2] = ["count", "placement"];

fn field(name: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid {
        message: format!("the preset needs attention: {name}"),
        fields: vec![(name.to_owned(), message.into())],
    }
}

/// The preset name rule.
pub fn check_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(field(
            "name",
            format!(
                "{name:?} is not a preset name: 1 to {NAME_MAX} lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

/// Checks saved values: an object of create-request fields (unknown ones named), no password,
/// a valid `count` and `placement`.
pub fn check_values(values: &Map<String, Value>) -> Result<(), AppError> {
    if values.contains_key("password") {
        return Err(field(
            "values.password",
            "a preset never stores a root password; give it when creating, or use SSH keys",
        ));
    }
    for key in ["template", "preset"] {
        if values.contains_key(key) {
            return Err(field(
                &format!("values.{key}"),
                "is set on the preset itself, not in its values",
            ));
        }
    }
    let mut request = values.clone();
    for key in BATCH_KEYS {
        request.remove(key);
    }
    serde_json::from_value::<CreateRequest>(Value::Object(request))
        .map_err(|e| field("values", e.to_string()))?;
    if let Some(count) = values.get("count") {
        crate::provisioning::batch::check_count(count.as_u64())
            .map_err(|message| field("values.count", message))?;
    }
    if let Some(placement) = values.get("placement") {
        serde_json::from_value::<Placement>(placement.clone())
            .map_err(|_| field("values.placement", Placement::HINT))?;
    }
    Ok(())
}

/// Whether `user` may see and use `preset`.
pub fn visible(user: &CurrentUser, preset: &Preset) -> bool {
    preset.shared || preset.owner == user.username || user.roles.is_admin()
}

fn may_change(user: &CurrentUser, preset: &Preset) -> Result<(), AppError> {
    if preset.owner == user.username || user.roles.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "preset {} belongs to {}; only its owner or an admin may change it",
            preset.name, preset.owner
        )))
    }
}

fn may_share(user: &CurrentUser, shared: bool) -> Result<(), AppError> {
    if shared && !user.roles.is_admin() {
        return Err(AppError::Forbidden(
            "only an admin may share a preset with everyone".into(),
        ));
    }
    Ok(())
}

/// The presets `user` may use, by name.
pub async fn list(state: &AppState, user: &CurrentUser) -> Result<Vec<PresetView>, AppError> {
    Ok(state
        .store
        .list_presets()
        .await?
        .iter()
        .filter(|p| visible(user, p))
        .map(PresetView::from)
        .collect())
}

/// One preset `user` may use (404 for one they may not see, as for a missing one).
pub async fn get(state: &AppState, user: &CurrentUser, name: &str) -> Result<Preset, AppError> {
    match state.store.get_preset(name).await {
        Ok(p) if visible(user, &p) => Ok(p),
        Ok(_) | Err(StoreError::NotFound) => Err(AppError::NotFound(format!("preset {name:?}"))),
        Err(e) => Err(e.into()),
    }
}

async fn check_template(state: &AppState, template: &str) -> Result<(), AppError> {
    match state.store.get_template_by_name(template).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => Err(field(
            "template",
            format!("no template named {template:?}; run discovery or pick another"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn validated(
    state: &AppState,
    body: &PresetBody,
    owner: String,
    shared: bool,
) -> Result<PresetInput, AppError> {
    let name = body.name.trim().to_owned();
    check_name(&name)?;
    check_template(state, body.template.trim()).await?;
    check_values(&body.values)?;
    Ok(PresetInput {
        name,
        template: body.template.trim().to_owned(),
        values_json: Value::Object(body.values.clone()).to_string(),
        owner,
        shared,
    })
}

/// Saves a new preset owned by `user` (audited `preset.create`).
pub async fn create(
    state: &AppState,
    user: &CurrentUser,
    caller: Caller<'_>,
    body: &PresetBody,
) -> Result<PresetView, AppError> {
    let shared = body.shared.unwrap_or(false);
    may_share(user, shared)?;
    let input = validated(state, body, user.username.clone(), shared).await?;
    state
        .store
        .insert_preset(&input)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => field(
                "name",
                format!("a preset named {:?} exists; pick another name", input.name),
            ),
            other => other.into(),
        })?;
    let preset = state.store.get_preset(&input.name).await?;
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("preset.create", &preset.name)
            .detail(serde_json::json!({ "template": preset.template, "shared": shared })),
    )
    .await?;
    Ok(PresetView::from(&preset))
}

/// Replaces a preset (owner or admin; audited `preset.update`). Renaming is allowed.
pub async fn update(
    state: &AppState,
    user: &CurrentUser,
    caller: Caller<'_>,
    name: &str,
    body: &PresetBody,
) -> Result<PresetView, AppError> {
    let old = get(state, user, name).await?;
    may_change(user, &old)?;
    let shared = body.shared.unwrap_or(old.shared);
    if shared != old.shared && !user.roles.is_admin() {
        return Err(AppError::Forbidden(
            "only an admin may share or unshare a preset".into(),
        ));
    }
    let input = validated(state, body, old.owner.clone(), shared).await?;
    state
        .store
        .update_preset(old.id, &input)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => field(
                "name",
                format!("a preset named {:?} exists; pick another name", input.name),
            ),
            other => other.into(),
        })?;
    let preset = state.store.get_preset(&input.name).await?;
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("preset.update", &preset.name)
            .detail(serde_json::json!({ "was": old.name, "shared": shared })),
    )
    .await?;
    Ok(PresetView::from(&preset))
}

/// Deletes a preset (owner or admin; audited `preset.delete`).
pub async fn delete(
    state: &AppState,
    user: &CurrentUser,
    caller: Caller<'_>,
    name: &str,
) -> Result<(), AppError> {
    let preset = get(state, user, name).await?;
    may_change(user, &preset)?;
    state.store.delete_preset(preset.id).await?;
    crate::audit::record(
        state.store.as_ref(),
        caller.entry("preset.delete", &preset.name),
    )
    .await?;
    Ok(())
}

/// A create body with its preset applied: the request, and the batch fields.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The create request (preset values, then the body's fields over them).
    pub request: CreateRequest,
    /// How many containers (`None`: one, answered as a single creation).
    pub count: Option<u32>,
    /// Where to place them.
    pub placement: Option<Placement>,
}

/// Reads a create body (`POST /api/v1/containers`): `preset` names a preset whose values are
/// taken first, every other field of the body overrides them; `count` and `placement` are the
/// batch fields. Unknown fields are refused with their names.
pub async fn expand(
    state: &AppState,
    user: &CurrentUser,
    body: &Value,
) -> Result<Expanded, AppError> {
    let Some(object) = body.as_object() else {
        return Err(AppError::invalid(
            "the body must be a JSON object of create fields",
        ));
    };
    let mut merged = Map::new();
    match object.get("preset") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => {
            let preset = get(state, user, name.trim()).await.map_err(|e| match e {
                AppError::NotFound(_) => field(
                    "preset",
                    format!("no preset named {name:?} that you may use"),
                ),
                other => other,
            })?;
            let values: Map<String, Value> =
                serde_json::from_str(&preset.values_json).unwrap_or_default();
            merged.extend(values);
            merged.insert("template".into(), Value::String(preset.template));
        }
        Some(_) => return Err(field("preset", "must be a preset name")),
    }
    for (key, value) in object {
        if key != "preset" && !value.is_null() {
            merged.insert(key.clone(), value.clone());
        }
    }
    let count = match merged.remove("count") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            crate::provisioning::batch::check_count(v.as_u64())
                .map_err(|message| field("count", message))?,
        ),
    };
    let placement = match merged.remove("placement") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Placement>(v)
                .map_err(|_| field("placement", Placement::HINT))?,
        ),
    };
    let request = serde_json::from_value::<CreateRequest>(Value::Object(merged))
        .map_err(|e| AppError::invalid(e.to_string()))?;
    Ok(Expanded {
        request,
        count,
        placement,
    })
}
