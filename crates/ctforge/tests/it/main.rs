//! The integration test binary: the real app over HTTP against the simulator (memory backend), storage conformance on SQLite and PostgreSQL, Redis, the CLI and schemathesis. One binary so the app is linked once.

#[path = "../common/mod.rs"]
mod common;

mod api_schema;
mod app;
mod auth;
mod authz_matrix;
mod automation;
mod backup;
mod bulk;
mod charts;
mod cli;
mod containers;
mod crash_resume;
mod create;
mod ct_cli;
mod daytwo;
mod drift;
mod git_templates;
mod guests;
mod hardening;
mod images;
mod jobs;
mod journey;
mod library_git;
mod locks;
mod migrate;
mod monitor;
mod notifications;
mod perf;
mod roles;
mod scale_out;
mod settings;
mod signin;
mod storage;
mod templates;
mod upgrade;
mod vm_daytwo;
mod vms;
mod weblink;
