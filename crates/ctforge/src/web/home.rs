//! Helpers shared by the signed-in pages. The home page itself (`/`) is the dashboard in
//! [`crate::web::dashboard`].

use crate::auth::CurrentUser;
use crate::web::components::Viewer;

/// The viewer of a signed-in request.
pub fn viewer(user: &CurrentUser) -> Viewer {
    Viewer {
        username: Some(user.username.clone()),
        csrf_token: user.csrf_token().map(str::to_owned),
        admin: user.roles.is_admin(),
        editor: user.roles.can_edit_templates(),
        auditor: user.roles.can_read_audit(),
    }
}
