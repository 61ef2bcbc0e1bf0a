//! Settings pages: clusters, API tokens and ctforge roles.

pub mod clusters;
pub mod roles;
pub mod tokens;
