//! `POST /api/v1/guests/plan` (the dry run) and `POST /api/v1/guests` (create) of the one guest
//! resource: the same body, use-cases and answers as `/api/v1/containers` — the template
//! decides what is created (`TEMPLATE_TYPE=vm`: a QEMU virtual machine through
//! `POST /nodes/{node}/qemu`, the plan's `type` is `qemu`; otherwise a container). The reads
//! and actions of `/api/v1/guests` live in `api/v1/guests.rs`.

use crate::api::v1::provisioning::{CreateAccepted, create, create_body_schema, plan};
use crate::provisioning::plan::PlanView;
use crate::routes::{Doc, Routes};

/// The guest creation routes.
pub fn routes(r: Routes) -> Routes {
    r.post(
        "/api/v1/guests/plan",
        plan,
        Doc::json::<PlanView>().body_schema(create_body_schema),
    )
    .post(
        "/api/v1/guests",
        create,
        Doc::status::<CreateAccepted>(202).body_schema(create_body_schema),
    )
}
