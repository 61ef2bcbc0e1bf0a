//! Settings pages: clusters and API tokens.

pub mod clusters;
pub mod tokens;
