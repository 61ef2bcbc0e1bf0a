//! Settings pages: clusters, API tokens, ctforge roles and template sources (deploy keys).

pub mod clusters;
pub mod roles;
pub mod template_sources;
pub mod tokens;
