//! HTML pages, static assets and the health endpoints.
//!
//! Front-end approach (decided once for all pages, see ARCHITECTURE.md): server-rendered HTML
//! with maud, progressive enhancement with our own small script, Server-Sent Events for live
//! data; one component module ([`components`]) that every page uses.

pub mod api_docs;
pub mod assets;
pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod components;
pub mod containers;
pub mod dashboard;
pub mod errors;
pub mod health;
pub mod home;
pub mod images;
pub mod jobs;
pub mod login;
pub mod nodes;
pub mod presets;
pub mod redirect;
pub mod security;
pub mod settings;
pub mod templates;
pub mod wizard;

use crate::routes::{Answer, Doc, Routes};

/// The browser routes (pages, forms, assets, health).
pub fn routes(r: Routes) -> Routes {
    let page = Doc::page;
    r.public_get("/healthz", health::healthz, page())
        .get(
            "/metrics",
            crate::metrics::render,
            Doc::answer(Answer::Text),
        )
        .get("/api/docs", api_docs::page, page())
        .public_get("/readyz", health::readyz, page())
        .public_get("/static/app.css", assets::css, page())
        .public_get("/static/app.js", assets::js, page())
        .public_get("/static/theme.js", assets::theme_js, page())
        .public_get("/login", login::show, page())
        .public_post("/login", login::submit, page())
        .public_get("/login/tfa", login::show_tfa, page())
        .public_post("/login/tfa", login::submit_tfa, page())
        .post("/logout", login::logout, page())
        .get("/", dashboard::show, page())
        .get("/containers/{id}", containers::detail::show, page())
        .get("/nodes/{name}", nodes::show, page())
        .post("/containers/{id}/start", containers::start, page())
        .post("/containers/{id}/stop", containers::stop, page())
        .post("/containers/{id}/shutdown", containers::shutdown, page())
        .post("/containers/{id}/reboot", containers::reboot, page())
        .post("/containers/{id}/delete", containers::delete, page())
        .get(
            "/containers/{id}/migrate",
            containers::migrate::show,
            page(),
        )
        .post(
            "/containers/{id}/migrate",
            containers::migrate::submit,
            page(),
        )
        .post(
            "/containers/{id}/reapply",
            containers::drift::reapply_submit,
            page(),
        )
        .post(
            "/templates/{name}/rollout",
            containers::drift::rollout_submit,
            page(),
        )
        .post(
            "/containers/{id}/credentials/reveal",
            containers::detail::reveal,
            page(),
        )
        .post("/containers/bulk", bulk::submit, page())
        .post(
            "/containers/{id}/services/refresh",
            containers::detail::refresh,
            page(),
        )
        .get("/containers/{id}/edit", containers::daytwo::edit, page())
        .post(
            "/containers/{id}/edit",
            containers::daytwo::edit_submit,
            page(),
        )
        .post(
            "/containers/{id}/resize",
            containers::daytwo::resize_submit,
            page(),
        )
        .post(
            "/containers/{id}/clone",
            containers::daytwo::clone_submit,
            page(),
        )
        .post(
            "/containers/{id}/template",
            containers::daytwo::template_submit,
            page(),
        )
        .get(
            "/containers/{id}/snapshots",
            containers::daytwo::snapshots,
            page(),
        )
        .post(
            "/containers/{id}/snapshots",
            containers::daytwo::snapshot_submit,
            page(),
        )
        .post(
            "/containers/{id}/snapshots/{name}/rollback",
            containers::daytwo::rollback_submit,
            page(),
        )
        .post(
            "/containers/{id}/snapshots/{name}/delete",
            containers::daytwo::delete_snapshot_submit,
            page(),
        )
        .get("/containers/new", wizard::show, page())
        .post("/containers/new", wizard::advance, page())
        .get("/jobs", jobs::list, page())
        .get("/jobs/{id}", jobs::show, page())
        .post("/jobs/{id}/retry", jobs::retry, page())
        .post("/jobs/{id}/cancel", jobs::cancel, page())
        .get("/settings/clusters", settings::clusters::show, page())
        .post("/settings/clusters", settings::clusters::create, page())
        .get(
            "/settings/clusters/{id}/edit",
            settings::clusters::edit_form,
            page(),
        )
        .post(
            "/settings/clusters/{id}/edit",
            settings::clusters::update,
            page(),
        )
        .post(
            "/settings/clusters/{id}/test",
            settings::clusters::test,
            page(),
        )
        .post(
            "/settings/clusters/{id}/nodes/{node}/ssh",
            settings::clusters::node_ssh,
            page(),
        )
        .post(
            "/settings/clusters/{id}/nodes/{node}/host-key",
            settings::clusters::node_host_key,
            page(),
        )
        .post(
            "/settings/clusters/{id}/delete",
            settings::clusters::delete,
            page(),
        )
        .post(
            "/settings/clusters/{id}/default",
            settings::clusters::make_default,
            page(),
        )
        .get("/settings/roles", settings::roles::show, page())
        .post("/settings/roles", settings::roles::grant, page())
        .post(
            "/settings/roles/{id}/revoke",
            settings::roles::revoke,
            page(),
        )
        .get(
            "/settings/template-sources",
            settings::template_sources::show,
            page(),
        )
        .post(
            "/settings/template-sources",
            settings::template_sources::save,
            page(),
        )
        .post(
            "/settings/template-sources/forget",
            settings::template_sources::forget,
            page(),
        )
        .get(
            "/settings/notifications",
            settings::notifications::show,
            page(),
        )
        .post(
            "/settings/notifications",
            settings::notifications::create,
            page(),
        )
        .get(
            "/settings/notifications/{id}/edit",
            settings::notifications::edit_form,
            page(),
        )
        .post(
            "/settings/notifications/{id}/edit",
            settings::notifications::update,
            page(),
        )
        .post(
            "/settings/notifications/{id}/test",
            settings::notifications::test,
            page(),
        )
        .post(
            "/settings/notifications/{id}/delete",
            settings::notifications::delete,
            page(),
        )
        .get("/settings/tokens", settings::tokens::show, page())
        .post("/settings/tokens", settings::tokens::create, page())
        .post(
            "/settings/tokens/{id}/revoke",
            settings::tokens::revoke,
            page(),
        )
        .get("/audit", audit::show, page())
        .get("/templates", templates::list, page())
        .post("/templates/discover", templates::discover, page())
        .post("/templates/sync", templates::sync, page())
        .get("/templates/images", images::list, page())
        .post("/templates/images", images::build, page())
        .post("/templates/images/{id}/delete", images::delete, page())
        .get("/templates/new", templates::new_form, page())
        .post("/templates/new", templates::create, page())
        .get("/templates/{name}", templates::detail::show, page())
        .get("/templates/{name}/edit", templates::edit_form, page())
        .post("/templates/{name}/edit", templates::update, page())
        .post("/templates/{name}/delete", templates::delete, page())
        .post("/templates/{name}/duplicate", templates::duplicate, page())
        .post("/templates/{name}/reattach", templates::reattach, page())
        .get("/presets", presets::list, page())
        .post("/presets", presets::create, page())
        .get("/presets/{name}", presets::show, page())
        .post("/presets/{name}", presets::update, page())
        .post("/presets/{name}/delete", presets::delete, page())
        .get("/buckets", buckets::list, page())
        .post("/buckets", buckets::create, page())
        .get("/buckets/{id}", buckets::show, page())
        .post("/buckets/{id}", buckets::rename, page())
        .post("/buckets/{id}/delete", buckets::delete, page())
        .post("/buckets/{id}/packages", buckets::add_packages, page())
        .post(
            "/buckets/{id}/packages/delete",
            buckets::remove_packages,
            page(),
        )
}
