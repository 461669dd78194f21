use std::fmt;
use std::str::FromStr;

/// Where a site is in its life. See SPEC §1: a state never moves backwards because of a stale
/// event; operators move sites with explicit actions (retry, suspend, resume, delete).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    PendingPayment,
    Provisioning,
    Ready,
    Rejected,
    Suspended,
    Deprovisioning,
    Deleted,
    Failed,
}

impl SiteState {
    pub const ALL: [SiteState; 8] = [
        Self::PendingPayment,
        Self::Provisioning,
        Self::Ready,
        Self::Rejected,
        Self::Suspended,
        Self::Deprovisioning,
        Self::Deleted,
        Self::Failed,
    ];

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

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Rejected => "rejected",
            Self::Suspended => "suspended",
            Self::Deprovisioning => "deprovisioning",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
        }
    }

    /// States in which nothing more happens without an outside action.
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Provisioning | Self::Deprovisioning)
    }

    /// States whose site no longer holds its name.
    pub fn frees_name(self) -> bool {
        matches!(self, Self::Deleted | Self::Rejected)
    }
}

impl fmt::Display for SiteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SiteState {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for state in SiteState::ALL {
            assert_eq!(state.as_str().parse::<SiteState>().unwrap(), state);
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert!("readyish".parse::<SiteState>().is_err());
    }
}
