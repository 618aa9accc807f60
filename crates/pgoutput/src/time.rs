//! PostgreSQL timestamps on the replication wire.
//!
//! Timestamps (`TimestampTz`) in frames and messages are `Int64` microseconds since the
//! PostgreSQL epoch, 2000-01-01 00:00:00 UTC, which is 946 684 800 seconds after the Unix epoch.
//! The conversions are checked: they return `None` instead of overflowing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The PostgreSQL epoch (2000-01-01 00:00:00 UTC) in microseconds since the Unix epoch.
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// PostgreSQL-epoch microseconds to Unix-epoch microseconds.
pub fn pg_to_unix_micros(pg_micros: i64) -> Option<i64> {
    pg_micros.checked_add(PG_EPOCH_UNIX_MICROS)
}

/// Unix-epoch microseconds to PostgreSQL-epoch microseconds.
pub fn unix_to_pg_micros(unix_micros: i64) -> Option<i64> {
    unix_micros.checked_sub(PG_EPOCH_UNIX_MICROS)
}

/// PostgreSQL-epoch microseconds to a [`SystemTime`].
pub fn pg_micros_to_system_time(pg_micros: i64) -> Option<SystemTime> {
    let unix = pg_to_unix_micros(pg_micros)?;
    let magnitude = Duration::from_micros(unix.unsigned_abs());
    if unix >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// A [`SystemTime`] to PostgreSQL-epoch microseconds (sub-microsecond parts are truncated
/// toward the Unix epoch).
pub fn system_time_to_pg_micros(time: SystemTime) -> Option<i64> {
    let unix = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok()?,
        Err(before) => i64::try_from(before.duration().as_micros())
            .ok()?
            .checked_neg()?,
    };
    unix_to_pg_micros(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_epoch_is_2000_01_01() {
        assert_eq!(pg_to_unix_micros(0), Some(946_684_800_000_000));
        assert_eq!(
            pg_micros_to_system_time(0),
            Some(UNIX_EPOCH + Duration::from_secs(946_684_800))
        );
        assert_eq!(
            pg_micros_to_system_time(-PG_EPOCH_UNIX_MICROS - 1),
            UNIX_EPOCH.checked_sub(Duration::from_micros(1))
        );
    }

    #[test]
    fn round_trips_and_never_overflows() {
        for pg in [0, 1, -1, 757_400_645_000_000, -PG_EPOCH_UNIX_MICROS] {
            let t = pg_micros_to_system_time(pg);
            assert_eq!(t.and_then(system_time_to_pg_micros), Some(pg));
            assert_eq!(pg_to_unix_micros(pg).and_then(unix_to_pg_micros), Some(pg));
        }
        assert_eq!(pg_to_unix_micros(i64::MAX), None);
        assert_eq!(unix_to_pg_micros(i64::MIN), None);
        // must not panic at the extremes
        let _ = pg_micros_to_system_time(i64::MIN);
        let _ = pg_micros_to_system_time(i64::MAX - PG_EPOCH_UNIX_MICROS);
    }
}
