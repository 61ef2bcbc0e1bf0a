//! Settings pages: clusters, API tokens, ctforge roles and notifications.

pub mod clusters;
pub mod notifications;
pub mod roles;
pub mod tokens;
