//! ISO-8601 timestamps as S3 writes them in XML: `2026-11-22T00:51:34.000Z` (UTC, milliseconds).

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time in milliseconds since the Unix epoch (UTC), as the metadata layer stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z; negative before it.
    pub unix_ms: i64,
}

impl Timestamp {
    /// The timestamp `unix_ms` milliseconds after the epoch.
    #[must_use]
    pub const fn from_unix_ms(unix_ms: i64) -> Self {
        Timestamp { unix_ms }
    }

    /// The timestamp of `time`, saturating far outside the representable range.
    #[must_use]
    pub fn from_system_time(time: SystemTime) -> Self {
        let unix_ms = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        Timestamp { unix_ms }
    }

    /// Appends the ISO-8601 form, e.g. `2026-11-22T00:51:34.000Z`.
    ///
    /// Years outside 0..=9999 cannot be written in four digits; they are clamped to that range,
    /// which no stored object reaches.
    pub fn write_iso8601(self, out: &mut String) {
        const MS_PER_DAY: i64 = 86_400_000;
        // The first and last millisecond of years 0000 and 9999.
        const MS_MIN: i64 = -62_167_219_200_000;
        const MS_MAX: i64 = 253_402_300_799_999;
        let ms = self.unix_ms.clamp(MS_MIN, MS_MAX);
        let days = ms.div_euclid(MS_PER_DAY);
        let ms_of_day = ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // Both are non-negative: the clamp keeps years in 0..=9999 and rem_euclid is >= 0, so
        // unsigned_abs is the identity here.
        let (year, ms_of_day) = (year.unsigned_abs(), ms_of_day.unsigned_abs());
        let secs = ms_of_day / 1000;
        // Hand-formatted: listings write one date per entry, and `write!` with seven
        // arguments costs several times more than pushing the digits.
        push_digits(out, year, 4);
        out.push('-');
        push_digits(out, u64::from(month), 2);
        out.push('-');
        push_digits(out, u64::from(day), 2);
        out.push('T');
        push_digits(out, secs / 3600, 2);
        out.push(':');
        push_digits(out, secs / 60 % 60, 2);
        out.push(':');
        push_digits(out, secs % 60, 2);
        out.push('.');
        push_digits(out, ms_of_day % 1000, 3);
        out.push('Z');
    }

    /// The ISO-8601 form as a new string.
    #[must_use]
    pub fn to_iso8601(self) -> String {
        let mut out = String::with_capacity(24);
        self.write_iso8601(&mut out);
        out
    }
}

/// Appends `value` (0 <= value < 10^width) as exactly `width` decimal digits.
fn push_digits(out: &mut String, value: u64, width: u32) {
    debug_assert!(value < 10_u64.pow(width), "{value} in {width} digits");
    let mut divisor = 10_u64.pow(width - 1);
    while divisor > 0 {
        let digit = (value / divisor % 10) as u8; // 0..=9, so the cast is exact
        out.push(char::from(b'0' + digit));
        divisor /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (the well-known
/// era-based conversion: 400-year eras of 146 097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Invariant: day_of_era is in 0..146_097 (rem_euclid), so day_of_year is in 0..=365 and
    // month_index in 0..=11; the conversions give day in 1..=31 and month in 1..=12.
    let day = u32::try_from(day).expect("day of month is 1..=31 by construction");
    let month = u32::try_from(month).expect("month is 1..=12 by construction");
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants format as S3 writes them, including a leap day and pre-epoch time.
    #[test]
    fn known_instants() {
        assert_eq!(
            Timestamp::from_unix_ms(0).to_iso8601(),
            "1970-01-01T00:00:00.000Z"
        );
        // 2026-11-22T00:51:34Z = 1_795_308_694 s.
        assert_eq!(
            Timestamp::from_unix_ms(1_795_308_694_000).to_iso8601(),
            "2026-11-22T00:51:34.000Z"
        );
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(
            Timestamp::from_unix_ms(1_709_251_199_999).to_iso8601(),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_ms(-1).to_iso8601(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_ms(i64::MAX).to_iso8601(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_ms(i64::MIN).to_iso8601(),
            "0000-01-01T00:00:00.000Z"
        );
    }

    /// System times convert to milliseconds on both sides of the epoch.
    #[test]
    fn from_system_time() {
        let after = UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(
            Timestamp::from_system_time(after),
            Timestamp::from_unix_ms(1_500)
        );
        let before = UNIX_EPOCH - std::time::Duration::from_millis(2_250);
        assert_eq!(
            Timestamp::from_system_time(before),
            Timestamp::from_unix_ms(-2_250)
        );
    }

    /// Every day of 1970..2100 formats to the calendar date `httpdate` (an independent
    /// implementation) gives for the same instant.
    #[test]
    fn agrees_with_httpdate() {
        for day in 0..(130 * 366_u64) {
            let secs = day * 86_400 + 12 * 3600 + 34 * 60 + 56;
            let ours =
                Timestamp::from_unix_ms(i64::try_from(secs * 1000).expect("small")).to_iso8601();
            let time = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            // httpdate: "Sun, 06 Nov 1994 08:49:37 GMT"
            let theirs = httpdate::fmt_http_date(time);
            let (dd, mon, yyyy) = (&theirs[5..7], &theirs[8..11], &theirs[12..16]);
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let mm = months.iter().position(|m| *m == mon).expect("month") + 1;
            assert_eq!(&ours[..10], format!("{yyyy}-{mm:02}-{dd}"), "day {day}");
            assert_eq!(&ours[10..], "T12:34:56.000Z");
        }
    }
}
