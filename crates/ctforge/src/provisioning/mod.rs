//! Provisioning: turning a create request into a [`plan::Plan`] (the dry run the wizard's
//! Review step shows) and executing that same plan as a durable job.

pub mod batch;
pub mod check;
pub mod drafts;
pub mod environment;
pub mod pipeline;
pub mod plan;
pub mod submit;
mod vm;
pub mod waits;
