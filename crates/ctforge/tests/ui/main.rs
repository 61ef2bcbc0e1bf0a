//! Browser tests: headless Chromium against the real app (pages, accessibility, screenshots, the wizard, templates, dashboard and bulk flows, the CSP).

#[path = "../browser/mod.rs"]
mod browser;
#[path = "../common/mod.rs"]
mod common;

mod bulk_ui;
mod dashboard_ui;
mod daytwo_ui;
mod failure_ui;
mod guests_ui;
mod library_ui;
mod presets_ui;
mod progress_ui;
mod security_ui;
mod templates_ui;
mod ui_pages;
mod wizard_ui;
