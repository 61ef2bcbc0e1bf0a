//! The JSON API under `/api/v1`. Module paths mirror URL paths (`api/v1/containers.rs`).
