//! The JSON API under `/api/v1`. Module paths mirror URL paths (`api/v1/auth.rs` serves
//! `/api/v1/auth/…`).

pub mod openapi;
pub mod v1;
