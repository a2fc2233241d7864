//! Token buckets per (agent, tool). Time is passed in (milliseconds): no_std has no clock.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};

/// `burst` tokens at most, refilled at `per_minute` tokens a minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub per_minute: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

#[derive(Debug, Default, Clone)]
pub struct RateLimiter {
    buckets: BTreeMap<String, BTreeMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one token for (agent, tool) at time `now_ms`; `Err(wait_ms)` when the bucket is empty.
    /// A clock that goes backwards refills nothing.
    pub fn try_take(
        &mut self,
        agent: &str,
        tool: &str,
        spec: RateSpec,
        now_ms: u64,
    ) -> Result<(), u64> {
        if !self.buckets.contains_key(agent) {
            self.buckets.insert(agent.to_string(), BTreeMap::new());
        }
        let per_agent = self.buckets.get_mut(agent).ok_or(u64::MAX)?;
        if !per_agent.contains_key(tool) {
            per_agent.insert(
                tool.to_string(),
                Bucket {
                    tokens: spec.burst,
                    last_ms: now_ms,
                },
            );
        }
        let bucket = per_agent.get_mut(tool).ok_or(u64::MAX)?;
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64;
        bucket.tokens = (bucket.tokens + elapsed * spec.per_minute / 60_000.0).min(spec.burst);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if spec.per_minute > 0.0 {
            Err((((1.0 - bucket.tokens) * 60_000.0 / spec.per_minute) as u64).saturating_add(1))
        } else {
            Err(u64::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const SPEC: RateSpec = RateSpec {
        per_minute: 60.0,
        burst: 3.0,
    };

    #[test]
    fn burst_then_refill() {
        let mut r = RateLimiter::new();
        for _ in 0..3 {
            assert!(r.try_take("a", "t", SPEC, 1000).is_ok());
        }
        let wait = r.try_take("a", "t", SPEC, 1000).unwrap_err();
        assert!((999..=1001).contains(&wait), "{wait}");
        assert!(r.try_take("a", "t", SPEC, 1500).is_err());
        assert!(
            r.try_take("a", "t", SPEC, 2000).is_ok(),
            "one token per second"
        );
    }

    #[test]
    fn buckets_are_per_agent_and_tool() {
        let mut r = RateLimiter::new();
        let one = RateSpec {
            per_minute: 1.0,
            burst: 1.0,
        };
        assert!(r.try_take("a", "t", one, 0).is_ok());
        assert!(r.try_take("a", "t", one, 0).is_err());
        assert!(r.try_take("b", "t", one, 0).is_ok());
        assert!(r.try_take("a", "u", one, 0).is_ok());
    }

    #[test]
    fn clock_going_backwards_does_not_refill() {
        let mut r = RateLimiter::new();
        let one = RateSpec {
            per_minute: 60.0,
            burst: 1.0,
        };
        assert!(r.try_take("a", "t", one, 10_000).is_ok());
        assert!(r.try_take("a", "t", one, 0).is_err());
        assert!(r.try_take("a", "t", one, 10_500).is_err());
        assert!(r.try_take("a", "t", one, 11_000).is_ok());
    }

    #[test]
    fn a_wait_too_long_for_u64_saturates() {
        let mut r = RateLimiter::new();
        let tiny = RateSpec {
            per_minute: 1e-300,
            burst: 1.0,
        };
        assert!(r.try_take("a", "t", tiny, 0).is_ok());
        assert_eq!(r.try_take("a", "t", tiny, 0), Err(u64::MAX));
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut r = RateLimiter::new();
        let none = RateSpec {
            per_minute: 0.0,
            burst: 1.0,
        };
        assert!(r.try_take("a", "t", none, 0).is_ok());
        assert_eq!(r.try_take("a", "t", none, u64::MAX / 2), Err(u64::MAX));
    }
}
