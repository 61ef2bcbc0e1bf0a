//! The typed states the app compares and shows: a guest's kind (lxc or qemu), a container's
//! status (live, as listed), a container record's status and a job's state. Each is stored
//! and serialised as the same lower-case text as before (`as_str` / `FromStr`; rows decode
//! through `TryFrom<String>`), so the database schema and the JSON wire format are unchanged.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stored text that is not one of the enum's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which enum.
    pub what: &'static str,
    /// The text.
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The stored and serialised text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(UnknownValue { what: $what, value: other.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;
            fn try_from(s: String) -> Result<Self, UnknownValue> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

text_enum! {
    /// A container as the dashboard and the API list it: Proxmox's live state, overridden by
    /// ctforge's record while it is being created, failed or being deleted.
    ContainerStatus, "container status" {
        /// Running in Proxmox.
        Running => "running",
        /// Stopped in Proxmox.
        Stopped => "stopped",
        /// ctforge is creating it.
        Creating => "creating",
        /// Its creation failed.
        Error => "error",
        /// ctforge is deleting it.
        Deleting => "deleting",
        /// ctforge has a record but Proxmox has no such CT.
        Missing => "missing",
        /// Its cluster did not answer, or Proxmox reported another state.
        Unknown => "unknown",
    }
}

impl ContainerStatus {
    /// Proxmox's `status` of a CT (`running`, `stopped`; anything else is `unknown`).
    pub fn from_proxmox(status: Option<&str>) -> Self {
        match status {
            Some("running") => Self::Running,
            Some("stopped") => Self::Stopped,
            _ => Self::Unknown,
        }
    }

    /// Counted as an error on the dashboard (`missing` included).
    pub fn is_error(self) -> bool {
        matches!(self, Self::Error | Self::Missing)
    }
}

text_enum! {
    /// What kind of guest: an LXC container or a QEMU virtual machine (`containers.kind`,
    /// migration 0015; Proxmox's `/cluster/resources` `type`, and the API's `type` field).
    GuestKind, "guest kind" {
        /// An LXC container (`/nodes/{node}/lxc/…`).
        Lxc => "lxc",
        /// A QEMU virtual machine (`/nodes/{node}/qemu/…`).
        Qemu => "qemu",
    }
}

// `text_enum!` declares the enum, so `#[default]` cannot be put on a variant.
#[allow(clippy::derivable_impls)]
impl Default for GuestKind {
    /// Containers: what every guest was before VMs (a record or answer without a kind).
    fn default() -> Self {
        Self::Lxc
    }
}

impl GuestKind {
    /// The kind of a `/cluster/resources` item's `type`, if it is a guest.
    pub fn of_resource(kind: &str) -> Option<Self> {
        kind.parse().ok()
    }

    /// How the UI and messages name a guest of this kind: `CT` or `VM`.
    pub fn short(self) -> &'static str {
        match self {
            Self::Lxc => "CT",
            Self::Qemu => "VM",
        }
    }
}

text_enum! {
    /// A container record's own status (`containers.status`).
    RecordStatus, "container record status" {
        /// The creation job has not finished.
        Creating => "creating",
        /// Created and provisioned.
        Ready => "ready",
        /// The creation failed.
        Error => "error",
        /// Being deleted.
        Deleting => "deleting",
    }
}

impl Default for RecordStatus {
    /// A new record is being created.
    fn default() -> Self {
        Self::Creating
    }
}

impl RecordStatus {
    /// The listed status this record imposes over Proxmox's live state, if any.
    pub fn overrides(self) -> Option<ContainerStatus> {
        match self {
            Self::Creating => Some(ContainerStatus::Creating),
            Self::Error => Some(ContainerStatus::Error),
            Self::Deleting => Some(ContainerStatus::Deleting),
            Self::Ready => None,
        }
    }
}

text_enum! {
    /// A job's state (`jobs.state`).
    JobState, "job state" {
        /// Waiting for a worker.
        Queued => "queued",
        /// Claimed by a worker.
        Running => "running",
        /// Every step completed.
        Succeeded => "succeeded",
        /// A step failed.
        Failed => "failed",
        /// Cancelled by a user.
        Cancelled => "cancelled",
    }
}

impl JobState {
    /// Whether the job is over (until a retry).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().to_owned()))
            );
        }
        for s in ContainerStatus::ALL {
            assert_eq!(s.as_str().parse::<ContainerStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().to_owned()))
            );
        }
        for s in RecordStatus::ALL {
            assert_eq!(RecordStatus::try_from(s.as_str().to_owned()), Ok(*s));
        }
        assert!("paused".parse::<JobState>().is_err());
        for s in GuestKind::ALL {
            assert_eq!(GuestKind::try_from(s.as_str().to_owned()), Ok(*s));
        }
    }
}
