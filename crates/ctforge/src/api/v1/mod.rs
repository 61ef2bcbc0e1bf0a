//! Version 1 of the JSON API.

pub mod auth;
pub mod buckets;
pub mod container_events;
pub mod container_ops;
pub mod containers;
pub mod drift;
pub mod fleet;
pub mod guests;
pub mod guests_create;
pub mod images;
pub mod jobs;
pub mod migrate;
pub mod notifications;
pub mod presets;
pub mod provisioning;
pub mod settings;
pub mod templates;
