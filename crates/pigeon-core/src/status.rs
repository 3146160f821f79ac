//! The message state machine.
//!
//! Outbound: `scheduled → queued → sending → sent → delivered | undelivered`,
//! with `sending → queued` for a retry, `failed` from any non-final state and
//! `expired`/`canceled` before sending starts. Inbound messages are created
//! `received`. Nothing leaves a final state, so a late or duplicated
//! delivery report can never move a message backwards.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Expired,
    Canceled,
    Received,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Scheduled,
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Delivered,
        Status::Undelivered,
        Status::Failed,
        Status::Expired,
        Status::Canceled,
        Status::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Undelivered => "undelivered",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Canceled => "canceled",
            Status::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered
                | Status::Undelivered
                | Status::Failed
                | Status::Expired
                | Status::Canceled
                | Status::Received
        )
    }

    /// Whether a message in `self` may move to `next`. Same-state is not a
    /// change (false), so a duplicated report is a no-op for the caller.
    /// Nothing leads into `received`: inbound messages start there.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        match self {
            Scheduled => matches!(next, Queued | Failed | Expired | Canceled),
            Queued => matches!(next, Sending | Failed | Expired | Canceled),
            // Back to queued when a transient failure schedules a retry.
            Sending => matches!(next, Queued | Sent | Failed),
            Sent => matches!(next, Delivered | Undelivered | Failed),
            Delivered | Undelivered | Failed | Expired | Canceled | Received => false,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    /// Every allowed (from, to) pair; all other 86 pairs are refused.
    const ALLOWED: [(Status, Status); 14] = [
        (Scheduled, Queued),
        (Scheduled, Failed),
        (Scheduled, Expired),
        (Scheduled, Canceled),
        (Queued, Sending),
        (Queued, Failed),
        (Queued, Expired),
        (Queued, Canceled),
        (Sending, Queued),
        (Sending, Sent),
        (Sending, Failed),
        (Sent, Delivered),
        (Sent, Undelivered),
        (Sent, Failed),
    ];

    #[test]
    fn transition_table_is_exact() {
        for from in Status::ALL {
            for to in Status::ALL {
                let expected = ALLOWED.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn late_reports_never_move_backwards() {
        assert!(!Delivered.can_become(Sent));
        assert!(!Delivered.can_become(Delivered));
        assert!(!Delivered.can_become(Undelivered));
        assert!(!Undelivered.can_become(Delivered));
        assert!(!Sent.can_become(Sending));
        assert!(!Sent.can_become(Queued));
        assert!(!Sent.can_become(Sent));
        assert!(!Failed.can_become(Sent));
        assert!(!Canceled.can_become(Queued));
    }

    #[test]
    fn same_state_is_never_a_change() {
        for s in Status::ALL {
            assert!(!s.can_become(s), "{s}");
        }
    }

    #[test]
    fn final_states_are_terminal() {
        let finals = [Delivered, Undelivered, Failed, Expired, Canceled, Received];
        for s in Status::ALL {
            assert_eq!(s.is_final(), finals.contains(&s), "{s}");
            if s.is_final() {
                assert!(Status::ALL.iter().all(|&t| !s.can_become(t)), "{s}");
            } else {
                assert!(s.can_become(Failed), "{s} -> failed");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Status::parse("Sent"), None);
        assert_eq!(Status::parse("cancelled"), None);
        assert_eq!(Status::parse(""), None);
    }
}
