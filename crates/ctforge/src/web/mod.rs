//! HTML pages, static assets and the health endpoints.
//!
//! Front-end approach (decided once for all pages, see ARCHITECTURE.md): server-rendered HTML
//! with maud, progressive enhancement with our own small script, Server-Sent Events for live
//! data; one component module ([`components`]) that every page uses.

pub mod assets;
pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod components;
pub mod containers;
pub mod dashboard;
pub mod health;
pub mod home;
pub mod jobs;
pub mod login;
pub mod nodes;
pub mod settings;
pub mod templates;
pub mod wizard;
