//! Which phone sends a message (RaspiSMS §5.5, stricter): among the candidate phones, only
//! available ones; MMS-capable ones first for an MMS; with limits on, only phones with volume
//! left; with priority on, only the highest priority; then one at random. Unlike RaspiSMS, a
//! phone that is not available is never picked automatically: the message waits for one.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub available: bool,
    pub mms: bool,
    /// Sends left before a limit is reached; `None` when the phone has no limit.
    pub remaining: Option<i64>,
    pub priority: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preferences {
    pub mms: bool,
    /// The user's `phone_limit` setting.
    pub limits: bool,
    /// The user's `phone_priority` setting.
    pub priority: bool,
}

/// Picks a phone; `random` is a fraction in [0, 1) supplied by the caller.
pub fn pick(candidates: &[Candidate], prefs: Preferences, random: f64) -> Option<i64> {
    let mut pool: Vec<&Candidate> = candidates.iter().filter(|c| c.available).collect();
    if prefs.mms && pool.iter().any(|c| c.mms) {
        pool.retain(|c| c.mms);
    }
    if prefs.limits {
        pool.retain(|c| c.remaining.is_none_or(|r| r > 0));
    }
    if prefs.priority
        && let Some(top) = pool.iter().map(|c| c.priority).max()
    {
        pool.retain(|c| c.priority == top);
    }
    if pool.is_empty() {
        return None;
    }
    let index = ((random.clamp(0.0, 1.0) * pool.len() as f64) as usize).min(pool.len() - 1);
    Some(pool[index].id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(
        id: i64,
        available: bool,
        mms: bool,
        remaining: Option<i64>,
        priority: i64,
    ) -> Candidate {
        Candidate {
            id,
            available,
            mms,
            remaining,
            priority,
        }
    }

    #[test]
    fn only_available_phones_are_picked() {
        let c = [
            phone(1, false, false, None, 0),
            phone(2, true, false, None, 0),
        ];
        for r in [0.0, 0.5, 0.99] {
            assert_eq!(pick(&c, Preferences::default(), r), Some(2));
        }
        assert_eq!(pick(&c[..1], Preferences::default(), 0.5), None);
        assert_eq!(pick(&[], Preferences::default(), 0.5), None);
    }

    #[test]
    fn mms_prefers_capable_phones_and_falls_back() {
        let c = [
            phone(1, true, false, None, 0),
            phone(2, true, true, None, 0),
        ];
        let mms = Preferences {
            mms: true,
            ..Default::default()
        };
        assert_eq!(pick(&c, mms, 0.0), Some(2));
        assert_eq!(pick(&c[..1], mms, 0.0), Some(1));
    }

    #[test]
    fn limits_and_priority_apply_only_when_on() {
        let c = [
            phone(1, true, false, Some(0), 9),
            phone(2, true, false, Some(3), 1),
            phone(3, true, false, None, 1),
        ];
        let limits = Preferences {
            limits: true,
            ..Default::default()
        };
        assert_eq!(pick(&c, limits, 0.0), Some(2));
        assert_eq!(pick(&c, Preferences::default(), 0.0), Some(1));
        let both = Preferences {
            limits: true,
            priority: true,
            mms: false,
        };
        assert_eq!(pick(&c, both, 0.99), Some(3));
        let priority = Preferences {
            priority: true,
            ..Default::default()
        };
        assert_eq!(pick(&c, priority, 0.5), Some(1));
        assert_eq!(pick(&c[..1], limits, 0.5), None);
    }

    #[test]
    fn random_spreads_over_the_pool() {
        let c: Vec<_> = (1..=4).map(|i| phone(i, true, false, None, 0)).collect();
        let picked: Vec<_> = [0.0, 0.3, 0.6, 0.9]
            .iter()
            .map(|r| pick(&c, Preferences::default(), *r))
            .collect();
        assert_eq!(picked, [Some(1), Some(2), Some(3), Some(4)]);
    }
}
