//! The lifecycle states berth stores as text (`sites.state`, `jobs.state`). Each is an enum from
//! the database row onward: an unknown stored value is an error when the row is read, never a
//! guess.

use std::fmt;
use std::str::FromStr;

/// A state enum stored as its snake_case name: the enum, `ALL`, `as_str`, `Display`, `FromStr`
/// (refusing unknown text with the list of known states) and the text conversions diesel uses.
macro_rules! stored_states {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| {
                        let known: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                        format!("unknown state {s:?}; known: {}", known.join(", "))
                    })
            }
        }

        /// Reading a stored row: unknown text is an error.
        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }

        /// Writing a row.
        impl From<$name> for String {
            fn from(state: $name) -> String {
                state.as_str().to_owned()
            }
        }
    };
}

stored_states! {
    /// Where a site is in its life. See SPEC §1: a state never moves backwards because of a stale
    /// event; operators move sites with explicit actions (retry, suspend, resume, delete).
    SiteState {
        PendingPayment => "pending_payment",
        Provisioning => "provisioning",
        Ready => "ready",
        Rejected => "rejected",
        Suspended => "suspended",
        Deprovisioning => "deprovisioning",
        Deleted => "deleted",
        Failed => "failed",
    }
}

stored_states! {
    /// Where a background job is: waiting (`queued`, also between attempts), held by a worker
    /// (`running`), or done either way.
    JobState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

stored_states! {
    /// Where a version of a site's content is (SPEC §7): waiting to be deployed (`pending`),
    /// served (`live`), refused by the runtime (`failed`, with the error), or replaced by a newer
    /// one before or after it went live (`superseded`). A site has at most one `live` version and
    /// at most one `pending`.
    VersionState {
        Pending => "pending",
        Live => "live",
        Failed => "failed",
        Superseded => "superseded",
    }
}

stored_states! {
    /// Who made a version: the site's customer (with its manage token), an operator (with an
    /// admin token), or the payment flow (a checkout that created the site).
    Author {
        Customer => "customer",
        Operator => "operator",
        Payment => "payment",
    }
}

stored_states! {
    /// Where a fleet rollout is (SPEC §7): applying waves (`running`), holding between waves
    /// (`paused`), done with every site (`completed`), halted once `max_failures` sites failed
    /// (`stopped`), or ended by an operator (`cancelled`). A tenant has at most one rollout
    /// `running` or `paused`.
    RolloutState {
        Running => "running",
        Paused => "paused",
        Completed => "completed",
        Stopped => "stopped",
        Cancelled => "cancelled",
    }
}

stored_states! {
    /// Where one site of a rollout is: waiting for its wave (`pending`), deploying the new spec
    /// (`applying`), on it and ready (`done`), put back on its previous spec after the new one
    /// failed (`failed`, with the error), or left out because it was no longer live or changed
    /// some other way meanwhile (`skipped`, with why).
    RolloutSiteState {
        Pending => "pending",
        Applying => "applying",
        Done => "done",
        Failed => "failed",
        Skipped => "skipped",
    }
}

impl RolloutState {
    /// Under way: not yet ended.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

impl SiteState {
    /// The states a deletion (an operator's, or a cancelled subscription) starts from: all but
    /// `deleted`.
    pub const DELETABLE: [SiteState; 7] = [
        Self::PendingPayment,
        Self::Provisioning,
        Self::Ready,
        Self::Rejected,
        Self::Suspended,
        Self::Deprovisioning,
        Self::Failed,
    ];

    /// States in which nothing more happens without an outside action.
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Provisioning | Self::Deprovisioning)
    }

    /// States whose site no longer holds its name.
    pub fn frees_name(self) -> bool {
        matches!(self, Self::Deleted | Self::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for state in SiteState::ALL {
            assert_eq!(state.as_str().parse::<SiteState>().unwrap(), state);
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for state in JobState::ALL {
            assert_eq!(JobState::try_from(String::from(state)).unwrap(), state);
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert!("readyish".parse::<SiteState>().is_err());
        let unknown = JobState::try_from("done".to_owned()).unwrap_err();
        assert_eq!(
            unknown,
            "unknown state \"done\"; known: queued, running, succeeded, failed"
        );
    }
}
