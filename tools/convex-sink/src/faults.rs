//! The faults a sink injects, each at a rate drawn per request from a seeded generator.
//!
//! One uniform draw per request picks at most one fault: the rates are probabilities of
//! disjoint outcomes, so they must add up to at most 1. `fail_all` (on the handle) is separate:
//! while it is on, every request is answered 503.

use std::time::Duration;

use crate::error::SinkError;

/// Fault rates, each in [0, 1], adding up to at most 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Answer 503 `Overloaded` or 429 `TooManyConcurrentRequests` (alternately), nothing applied.
    pub unavailable: f64,
    /// Close the connection without a reply, nothing applied.
    pub reset_before: f64,
    /// Apply the call, then close the connection without a reply: the reply is lost.
    pub reset_after: f64,
    /// Apply the call, then hold the reply for `stall_for` before sending it.
    pub stall: f64,
    /// How long a stalled reply is held.
    pub stall_for: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            unavailable: 0.0,
            reset_before: 0.0,
            reset_after: 0.0,
            stall: 0.0,
            stall_for: Duration::from_secs(30),
        }
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Whether each rate is in [0, 1] and they add up to at most 1.
    pub fn check(&self) -> Result<(), SinkError> {
        let rates = [
            ("unavailable", self.unavailable),
            ("reset_before", self.reset_before),
            ("reset_after", self.reset_after),
            ("stall", self.stall),
        ];
        if let Some((name, rate)) = rates.iter().find(|(_, rate)| !(0.0..=1.0).contains(rate)) {
            return Err(SinkError::Faults(format!("{name} is {rate}, not a rate in [0, 1]")));
        }
        let sum: f64 = rates.iter().map(|(_, rate)| rate).sum();
        if sum > 1.0 + 1e-9 {
            return Err(SinkError::Faults(format!("the rates add up to {sum}, more than 1")));
        }
        Ok(())
    }
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// 503 `Overloaded` when `true`, else 429 `TooManyConcurrentRequests`.
    Unavailable {
        overloaded: bool,
    },
    ResetBefore,
    ResetAfter,
    Stall(Duration),
}

/// The seeded generator and the current rates.
pub(crate) struct FaultDice {
    faults: Faults,
    rng: fastrand::Rng,
    unavailable_count: u64,
}

impl FaultDice {
    pub fn new(faults: Faults, seed: u64) -> FaultDice {
        FaultDice { faults, rng: fastrand::Rng::with_seed(seed), unavailable_count: 0 }
    }

    pub fn faults(&self) -> Faults {
        self.faults
    }

    pub fn set(&mut self, faults: Faults) {
        self.faults = faults;
    }

    pub fn draw(&mut self) -> Fault {
        let f = self.faults;
        if f.unavailable + f.reset_before + f.reset_after + f.stall == 0.0 {
            return Fault::None;
        }
        let mut u = self.rng.f64();
        if u < f.unavailable {
            self.unavailable_count += 1;
            return Fault::Unavailable { overloaded: self.unavailable_count % 2 == 1 };
        }
        u -= f.unavailable;
        if u < f.reset_before {
            return Fault::ResetBefore;
        }
        u -= f.reset_before;
        if u < f.reset_after {
            return Fault::ResetAfter;
        }
        u -= f.reset_after;
        if u < f.stall {
            return Fault::Stall(f.stall_for);
        }
        Fault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked() {
        assert!(Faults::none().check().is_ok());
        assert!(Faults { unavailable: 1.5, ..Faults::none() }.check().is_err());
        assert!(Faults { stall: -0.1, ..Faults::none() }.check().is_err());
        assert!(Faults { unavailable: 0.6, reset_after: 0.6, ..Faults::none() }.check().is_err());
        assert!(Faults { unavailable: 0.5, reset_after: 0.5, ..Faults::none() }.check().is_ok());
    }

    #[test]
    fn draws_follow_the_rates_and_replay_with_the_seed() {
        let faults = Faults {
            unavailable: 0.1,
            reset_before: 0.2,
            reset_after: 0.3,
            stall: 0.1,
            ..Faults::none()
        };
        let mut dice = FaultDice::new(faults, 7);
        let draws: Vec<Fault> = (0..20_000).map(|_| dice.draw()).collect();
        let share = |pred: &dyn Fn(&Fault) -> bool| {
            draws.iter().filter(|f| pred(f)).count() as f64 / 20_000.0
        };
        for (expected, got) in [
            (0.1, share(&|f| matches!(f, Fault::Unavailable { .. }))),
            (0.2, share(&|f| *f == Fault::ResetBefore)),
            (0.3, share(&|f| *f == Fault::ResetAfter)),
            (0.1, share(&|f| matches!(f, Fault::Stall(_)))),
            (0.3, share(&|f| *f == Fault::None)),
        ] {
            assert!((expected - got).abs() < 0.02, "expected {expected}, got {got}");
        }
        let unavailable: Vec<bool> = draws
            .iter()
            .filter_map(|f| match f {
                Fault::Unavailable { overloaded } => Some(*overloaded),
                _ => None,
            })
            .take(4)
            .collect();
        assert_eq!(unavailable, [true, false, true, false]);
        let mut again = FaultDice::new(faults, 7);
        assert!(draws.iter().all(|f| *f == again.draw()));
    }
}
