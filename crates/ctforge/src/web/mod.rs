//! HTML pages and the health endpoints.
//!
//! Front-end approach (decided once for all pages, see ARCHITECTURE.md): server-rendered HTML
//! with maud, progressive enhancement with our own small scripts, Server-Sent Events for live
//! data; one component module that every page uses.

pub mod health;
