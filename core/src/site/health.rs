//! Health of one site as seen from one core: up / degraded / down, a latency EWMA, error
//! counters, and when to probe a down site. Pure: every call takes the current time, so the
//! state machine is tested without clocks or sockets.
//!
//! ```text
//!          success ×SUCCESSES_TO_UP          errors in a row ≥ down_after_errors
//!   ┌────┐ ◄──────────────────── ┌──────────┐ ─────────────────────────► ┌──────┐
//!   │ Up │ ─────────────────────►│ Degraded │                            │ Down │
//!   └────┘   a site fault         └──────────┘ ◄── a probe succeeds ──── └──────┘
//!      ▲                              │ hard fault (disk full, ...)         │ requests fail fast;
//!      └──────────────────────────────┴─────────────────────────────────────┘ one probe per
//!                                                                             interval (backoff)
//! ```
//!
//! Only faults of the site count (timeouts, refused connections, 5xx, I/O errors); a missing
//! shard or a client-side 4xx says nothing about the site's health.

use std::time::{Duration, Instant};

/// Consecutive successes that bring a degraded site back up.
pub const SUCCESSES_TO_UP: u32 = 3;
/// Weight of a new sample in the latency EWMA, as a shift: `ewma += (sample - ewma) >> 3`,
/// i.e. 1/8, the TCP SRTT weight: smooth enough to ignore one slow request, quick enough to
/// follow a real change within ~10 requests.
pub const LATENCY_EWMA_SHIFT: u32 = 3;
/// Longest wait between two probes of a down site; the interval doubles from the configured
/// one up to this, so a site gone for hours costs one request per half minute per core.
pub const PROBE_INTERVAL_MAX: Duration = Duration::from_secs(30);

/// The three health states the engine chooses sites by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// Answering normally.
    Up,
    /// Answering, but recent requests failed or the site reported a lasting fault (disk full):
    /// usable for reads, avoided for writes when others are up.
    Degraded,
    /// Not answering; requests fail fast with `SiteError::Down` except one probe per interval.
    Down,
}

/// What an error does to the site's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEffect {
    /// Not the site's fault (missing shard, bad key, 4xx): health unchanged.
    None,
    /// A transient fault (timeout, reset, 5xx): counts towards `down_after_errors`.
    Fault,
    /// A lasting fault that leaves the site usable for reads (disk full): degraded at once.
    Degrade,
    /// The site cannot work at all (its directory is gone, permission denied): down at once.
    Down,
}

/// Whether a request may go to the site now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The site is up or degraded: go.
    Go,
    /// The site is down and a probe is due: this request is the probe.
    Probe,
    /// The site is down and no probe is due: fail fast.
    Reject,
}

/// A copy of the health figures, for the engine and the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// The current state.
    pub state: HealthState,
    /// Latency EWMA of successful requests, in microseconds (0 before the first sample).
    pub latency_ewma_us: u64,
    /// Requests that succeeded.
    pub ok_count: u64,
    /// Requests that failed with a site fault.
    pub error_count: u64,
    /// Site faults in a row since the last success.
    pub errors_consecutive: u32,
    /// Requests rejected without being sent because the site was down.
    pub rejected_count: u64,
}

/// The health state machine of one site on one core.
#[derive(Clone, Debug)]
pub struct Health {
    snapshot: HealthSnapshot,
    successes_consecutive: u32,
    down_after_errors: u32,
    probe_interval_min: Duration,
    probe_interval: Duration,
    probe_due: Option<Instant>,
    probe_in_flight: bool,
}

impl Health {
    /// A healthy site that goes down after `down_after_errors` faults in a row and is then
    /// probed every `probe_interval` (doubling up to `PROBE_INTERVAL_MAX`).
    #[must_use]
    pub fn new(down_after_errors: u32, probe_interval: Duration) -> Health {
        assert!(
            down_after_errors > 0,
            "a site must be allowed at least one fault"
        );
        Health {
            snapshot: HealthSnapshot {
                state: HealthState::Up,
                latency_ewma_us: 0,
                ok_count: 0,
                error_count: 0,
                errors_consecutive: 0,
                rejected_count: 0,
            },
            successes_consecutive: 0,
            down_after_errors,
            probe_interval_min: probe_interval,
            probe_interval,
            probe_due: None,
            probe_in_flight: false,
        }
    }

    /// The current figures.
    #[must_use]
    pub fn snapshot(&self) -> HealthSnapshot {
        self.snapshot
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> HealthState {
        self.snapshot.state
    }

    /// Decides whether a request may be sent at `now`. A `Probe` admission must be followed by
    /// `record_success` or `record_failure`, which ends the probe.
    pub fn admit(&mut self, now: Instant) -> Admission {
        if self.snapshot.state != HealthState::Down {
            return Admission::Go;
        }
        match self.probe_due {
            Some(due) if now >= due && !self.probe_in_flight => {
                self.probe_in_flight = true;
                Admission::Probe
            }
            _ => {
                self.snapshot.rejected_count += 1;
                Admission::Reject
            }
        }
    }

    /// Records a success that took `latency`.
    pub fn record_success(&mut self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let s = &mut self.snapshot;
        s.latency_ewma_us = if s.ok_count == 0 {
            sample
        } else if sample >= s.latency_ewma_us {
            s.latency_ewma_us + ((sample - s.latency_ewma_us) >> LATENCY_EWMA_SHIFT)
        } else {
            s.latency_ewma_us - ((s.latency_ewma_us - sample) >> LATENCY_EWMA_SHIFT)
        };
        s.ok_count += 1;
        s.errors_consecutive = 0;
        self.successes_consecutive = self.successes_consecutive.saturating_add(1);
        self.probe_in_flight = false;
        match s.state {
            // A down site that answers is usable again, but not trusted until it has answered
            // a few times more.
            HealthState::Down => {
                s.state = HealthState::Degraded;
                self.successes_consecutive = 1;
                self.probe_due = None;
                self.probe_interval = self.probe_interval_min;
            }
            HealthState::Degraded if self.successes_consecutive >= SUCCESSES_TO_UP => {
                s.state = HealthState::Up;
            }
            HealthState::Degraded | HealthState::Up => {}
        }
    }

    /// Records a failed request at `now` whose error has `effect` on health.
    pub fn record_failure(&mut self, effect: HealthEffect, now: Instant) {
        let was_probe = std::mem::take(&mut self.probe_in_flight);
        if effect == HealthEffect::None {
            return;
        }
        let s = &mut self.snapshot;
        s.error_count += 1;
        s.errors_consecutive = s.errors_consecutive.saturating_add(1);
        self.successes_consecutive = 0;
        let down = effect == HealthEffect::Down
            || s.state == HealthState::Down
            || s.errors_consecutive >= self.down_after_errors;
        if down {
            if was_probe {
                self.probe_interval = (self.probe_interval * 2).min(PROBE_INTERVAL_MAX);
            } else if s.state != HealthState::Down {
                self.probe_interval = self.probe_interval_min;
            }
            s.state = HealthState::Down;
            self.probe_due = Some(now + self.probe_interval);
        } else {
            s.state = HealthState::Degraded;
        }
    }

    /// When the next probe of a down site is due (`None` unless down).
    #[must_use]
    pub fn probe_due(&self) -> Option<Instant> {
        self.probe_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_degrade_then_down_then_probe_recovers() {
        // Walks the whole state machine: faults degrade, enough in a row take the site down,
        // requests are rejected until the probe is due, and a good probe plus two more
        // successes bring it back up.
        let t0 = Instant::now();
        let mut h = Health::new(3, Duration::from_millis(100));
        assert_eq!(h.admit(t0), Admission::Go);
        h.record_failure(HealthEffect::Fault, t0);
        assert_eq!(h.state(), HealthState::Degraded);
        h.record_failure(HealthEffect::Fault, t0);
        h.record_failure(HealthEffect::Fault, t0);
        assert_eq!(h.state(), HealthState::Down);
        assert_eq!(h.admit(t0 + Duration::from_millis(50)), Admission::Reject);
        assert_eq!(h.snapshot().rejected_count, 1);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(h.admit(t1), Admission::Probe);
        // Only one probe at a time.
        assert_eq!(h.admit(t1), Admission::Reject);
        h.record_success(Duration::from_millis(2));
        assert_eq!(h.state(), HealthState::Degraded);
        h.record_success(Duration::from_millis(2));
        assert_eq!(h.state(), HealthState::Degraded);
        h.record_success(Duration::from_millis(2));
        assert_eq!(h.state(), HealthState::Up);
        assert_eq!(h.snapshot().error_count, 3);
        assert_eq!(h.snapshot().ok_count, 3);
    }

    #[test]
    fn failed_probes_back_off_up_to_the_cap() {
        // Each failed probe doubles the interval until PROBE_INTERVAL_MAX.
        let t0 = Instant::now();
        let mut h = Health::new(1, Duration::from_secs(10));
        h.record_failure(HealthEffect::Fault, t0);
        assert_eq!(h.probe_due(), Some(t0 + Duration::from_secs(10)));
        let mut now = t0 + Duration::from_secs(10);
        for expected in [20, 30, 30] {
            assert_eq!(h.admit(now), Admission::Probe);
            h.record_failure(HealthEffect::Fault, now);
            assert_eq!(h.probe_due(), Some(now + Duration::from_secs(expected)));
            now += Duration::from_secs(expected);
        }
    }

    #[test]
    fn client_errors_do_not_count_and_hard_faults_act_at_once() {
        // A NotFound-style error leaves the site up; a Degrade fault degrades at once; a Down
        // fault takes it down at once.
        let t0 = Instant::now();
        let mut h = Health::new(5, Duration::from_secs(1));
        h.record_failure(HealthEffect::None, t0);
        assert_eq!(h.state(), HealthState::Up);
        assert_eq!(h.snapshot().error_count, 0);
        h.record_failure(HealthEffect::Degrade, t0);
        assert_eq!(h.state(), HealthState::Degraded);
        h.record_failure(HealthEffect::Down, t0);
        assert_eq!(h.state(), HealthState::Down);
    }

    #[test]
    fn latency_ewma_follows_samples_with_weight_one_eighth() {
        // The first sample sets the estimate; later ones move it by 1/8 of the difference.
        let mut h = Health::new(1, Duration::from_secs(1));
        h.record_success(Duration::from_micros(800));
        assert_eq!(h.snapshot().latency_ewma_us, 800);
        h.record_success(Duration::from_micros(1600));
        assert_eq!(h.snapshot().latency_ewma_us, 900);
        h.record_success(Duration::from_micros(100));
        assert_eq!(h.snapshot().latency_ewma_us, 800);
    }
}
