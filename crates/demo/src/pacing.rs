//! Sending events at a steady rate: event `n` is due `n / rate` seconds after the start. A
//! sender that falls behind (the database was slow for a moment) catches up in a burst of at
//! most [`MAX_BACKLOG`] worth of events; beyond that the schedule moves forward, so a long
//! stall lowers the achieved rate instead of ending in a flood.

use std::time::Duration;

/// The most the schedule may lag behind the clock before it is moved forward.
pub const MAX_BACKLOG: Duration = Duration::from_secs(1);

/// When the next event is due, as an offset from the start of sending.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Duration,
}

impl Pacer {
    /// A pacer for `rate` events per second (at least one per hour, at most one per nanosecond).
    pub fn new(rate: f64) -> Pacer {
        let interval = Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(Duration::from_secs(3600))
            .clamp(Duration::from_nanos(1), Duration::from_secs(3600));
        Pacer {
            interval,
            next: Duration::ZERO,
        }
    }

    /// When the next event is due.
    pub fn next_due(&self) -> Duration {
        self.next
    }

    /// Records that an event was sent, `now` after the start.
    pub fn sent(&mut self, now: Duration) {
        self.next += self.interval;
        if let Some(earliest) = now.checked_sub(MAX_BACKLOG)
            && self.next < earliest
        {
            self.next = earliest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn events_are_evenly_spaced() {
        let mut p = Pacer::new(100.0);
        let mut due = Vec::new();
        for _ in 0..4 {
            due.push(p.next_due());
            p.sent(p.next_due());
        }
        assert_eq!(due, vec![ms(0), ms(10), ms(20), ms(30)]);
    }

    #[test]
    fn a_short_delay_is_caught_up() {
        let mut p = Pacer::new(100.0);
        // The first event took 300 ms: the next ones are already due and go out at once.
        p.sent(ms(300));
        assert_eq!(p.next_due(), ms(10));
        for _ in 0..29 {
            p.sent(ms(300));
        }
        assert_eq!(p.next_due(), ms(300));
        p.sent(ms(300));
        assert_eq!(p.next_due(), ms(310));
    }

    #[test]
    fn a_long_stall_moves_the_schedule_instead_of_flooding() {
        let mut p = Pacer::new(100.0);
        p.sent(ms(5_000));
        // At most a second's worth (100 events) is sent in a burst.
        assert_eq!(p.next_due(), ms(4_000));
        let mut burst = 0;
        while p.next_due() <= ms(5_000) {
            p.sent(ms(5_000));
            burst += 1;
        }
        assert_eq!(burst, 101);
    }

    #[test]
    fn odd_rates_are_bounded() {
        assert_eq!(Pacer::new(0.0).interval, Duration::from_secs(3600));
        assert_eq!(Pacer::new(f64::INFINITY).interval, Duration::from_nanos(1));
        assert_eq!(Pacer::new(-5.0).interval, Duration::from_secs(3600));
        assert_eq!(Pacer::new(f64::NAN).interval, Duration::from_secs(3600));
    }
}
