//! Settings pages: clusters, API tokens, ctforge roles, template sources (deploy keys) and
//! notifications.

pub mod clusters;
pub mod notifications;
pub mod roles;
pub mod template_sources;
pub mod tokens;
