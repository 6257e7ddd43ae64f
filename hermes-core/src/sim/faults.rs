//! The fault schedule of the safety phase: episodes one after another, each healed before the
//! next, so that a majority can always make progress once an episode ends.

use super::{Event, Simulation};
use crate::types::Instant;
use std::time::Duration;

impl Simulation {
    /// Schedules the fault episodes and returns when the last one is over. Crashed nodes always
    /// restart, with their membership state, and with what their store made durable (`async`,
    /// `sync`) or without data (`memory`). The total-crash episodes come last.
    pub(super) fn schedule_faults(&mut self) -> Instant {
        let n = self.nodes.len();
        let config = &self.config.replica;
        let lease_us = config.lease_ms * 1_000;
        let suspicion_us = config.suspicion_timeout_ms * 1_000;
        let mut at = Instant::from_micros(self.rng.between(lease_us, 3 * lease_us));
        for episode in 0..self.config.faults {
            let victim = match self.config.first_victim.filter(|_| episode == 0) {
                Some(id) => (id as usize).saturating_sub(1).min(n - 1),
                None => self.rng.below(n as u64) as usize,
            };
            // Long enough, often, for the membership to notice and remove the victim.
            let length = Duration::from_micros(
                self.rng
                    .between(suspicion_us / 2, 2 * (suspicion_us + lease_us)),
            );
            let kinds = if self.config.partitions { 5 } else { 3 };
            match self.rng.below(kinds) {
                0 => {
                    // Every crashed node comes back (with its membership state and no data), so
                    // that a majority stays reachable for the episodes that follow.
                    self.push(
                        at,
                        Event::Crash {
                            node: victim,
                            restart_after: Some(length),
                        },
                    );
                }
                1 => self.cut_between(at, length, &[victim]),
                2 => {
                    let size = 1 + self.rng.below(((n - 1) / 2) as u64) as usize;
                    let minority: Vec<usize> = (0..size).map(|i| (victim + i) % n).collect();
                    self.cut_between(at, length, &minority);
                }
                3 => {
                    let other = (victim + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                    self.push(
                        at,
                        Event::Cut {
                            from: victim,
                            to: other,
                        },
                    );
                    self.push(
                        at + length,
                        Event::Heal {
                            from: victim,
                            to: other,
                        },
                    );
                }
                _ => {
                    let other = (victim + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                    let mut t = at;
                    while t < at + length {
                        let up = Duration::from_micros(self.rng.between(2_000, 20_000));
                        let down = Duration::from_micros(self.rng.between(2_000, 20_000));
                        for (a, b) in [(victim, other), (other, victim)] {
                            self.push(t, Event::Cut { from: a, to: b });
                            self.push(t + down, Event::Heal { from: a, to: b });
                        }
                        t = t + down + up;
                    }
                }
            }
            at = at + length + Duration::from_micros(self.rng.between(lease_us, 4 * lease_us));
        }
        for _ in 0..self.config.total_crashes {
            at = self.schedule_total_crash(at);
        }
        at
    }

    /// Crashes every node at `at`; each restarts after its own delay (up to two leases), and half
    /// the time every node crashes again while they recover. Returns when the cluster has had
    /// time to form a view again.
    fn schedule_total_crash(&mut self, at: Instant) -> Instant {
        let lease_us = self.config.replica.lease_ms * 1_000;
        let mut crash_at = at;
        let repeats = if self.rng.chance(0.5) { 2 } else { 1 };
        let mut back_by = at;
        for _ in 0..repeats {
            let delays: Vec<Duration> = (0..self.nodes.len())
                .map(|_| Duration::from_micros(self.rng.between(1_000, 2 * lease_us)))
                .collect();
            let first_back = delays.iter().min().copied().unwrap_or_default();
            let last_back = delays.iter().max().copied().unwrap_or_default();
            self.push(
                crash_at,
                Event::CrashAll {
                    restart_after: delays,
                },
            );
            back_by = crash_at + last_back;
            crash_at = crash_at
                + first_back
                + Duration::from_micros(self.rng.between(1_000, 2 * lease_us));
        }
        back_by + Duration::from_micros(self.rng.between(4 * lease_us, 8 * lease_us))
    }

    /// Cuts every link between `group` and the other nodes, both ways, for `length`.
    fn cut_between(&mut self, at: Instant, length: Duration, group: &[usize]) {
        for a in group.iter().copied() {
            for b in (0..self.nodes.len()).filter(|b| !group.contains(b)) {
                for (from, to) in [(a, b), (b, a)] {
                    self.push(at, Event::Cut { from, to });
                    self.push(at + length, Event::Heal { from, to });
                }
            }
        }
    }
}
