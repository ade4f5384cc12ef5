//! Calendar arithmetic and the date formats mail uses, with time as an argument.
//!
//! One place for every date relais writes or reads: the RFC 5322 `Date:` and `Received:`
//! stamps, mbox `From ` lines (asctime), the queue listing, certificate validity dates (ASN.1
//! `UTCTime`/`GeneralizedTime`) and the millisecond timings of the diagnostics. Nothing here reads
//! the clock: callers pass Unix seconds (or a [`SystemTime`] they read themselves).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A moment in UTC, broken down for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The year (proleptic Gregorian).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// Days since 1970-01-01, kept for the weekday.
    days: i64,
}

impl DateTime {
    /// The moment `secs` seconds after 1970-01-01T00:00:00Z (negative: before it).
    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            days,
        }
    }

    /// A [`SystemTime`] (before 1970 counts as 1970).
    pub fn from_system(t: SystemTime) -> DateTime {
        DateTime::from_unix(unix_secs(t))
    }

    /// `Sun`, `Mon`, …
    pub fn weekday(&self) -> &'static str {
        WEEKDAYS[self.days.rem_euclid(7) as usize]
    }

    /// `Jan`, `Feb`, …
    pub fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }

    /// `13:45:52`.
    pub fn clock(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }

    /// RFC 5322 `date-time` in UTC: `Sun, 22 Nov 2026 13:45:52 +0000`.
    pub fn rfc5322(&self) -> String {
        format!(
            "{}, {} {} {} {} +0000",
            self.weekday(),
            self.day,
            self.month_name(),
            self.year,
            self.clock()
        )
    }

    /// As C's `asctime` writes it, for mbox `From ` lines: `Sun Nov 22 13:45:52 2026`.
    pub fn asctime(&self) -> String {
        format!(
            "{} {} {:>2} {} {}",
            self.weekday(),
            self.month_name(),
            self.day,
            self.clock(),
            self.year
        )
    }

    /// As `mailq` shows an arrival time: `Sun 22 Nov 14:16:45`.
    pub fn mailq(&self) -> String {
        format!(
            "{} {:>2} {} {}",
            self.weekday(),
            self.day,
            self.month_name(),
            self.clock()
        )
    }

    /// `2026-11-22`.
    pub fn iso_date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Seconds since 1970-01-01 of `t` (0 before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An ASN.1 time as Unix seconds: `UTCTime` (`YYMMDDHHMMSSZ`, years 1950–2049) when `generalized`
/// is false, `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) when true. `None` for anything else.
pub fn parse_asn1_time(text: &str, generalized: bool) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = if generalized {
        (digits.get(..4)?.parse().ok()?, digits.get(4..)?)
    } else {
        let yy: i64 = digits.get(..2)?.parse().ok()?;
        let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
        (year, digits.get(2..)?)
    };
    if rest.len() != 10 {
        return None;
    }
    let field = |i: usize| -> Option<u32> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// Milliseconds with one decimal: the unit of every timing relais shows (`elapsed_ms`).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // (unix seconds, rfc5322, asctime, mailq, iso)
        let table: &[(i64, &str, &str, &str, &str)] = &[
            (
                0,
                "Thu, 1 Jan 1970 00:00:00 +0000",
                "Thu Jan  1 00:00:00 1970",
                "Thu  1 Jan 00:00:00",
                "1970-01-01",
            ),
            (
                1_795_873_552,
                "Sat, 28 Nov 2026 13:45:52 +0000",
                "Sat Nov 28 13:45:52 2026",
                "Sat 28 Nov 13:45:52",
                "2026-11-28",
            ),
            (
                951_782_400,
                "Tue, 29 Feb 2000 00:00:00 +0000",
                "Tue Feb 29 00:00:00 2000",
                "Tue 29 Feb 00:00:00",
                "2000-02-29",
            ),
            (
                -1,
                "Wed, 31 Dec 1969 23:59:59 +0000",
                "Wed Dec 31 23:59:59 1969",
                "Wed 31 Dec 23:59:59",
                "1969-12-31",
            ),
        ];
        for &(secs, rfc, asc, mailq, iso) in table {
            let t = DateTime::from_unix(secs);
            assert_eq!(t.rfc5322(), rfc, "{secs}");
            assert_eq!(t.asctime(), asc, "{secs}");
            assert_eq!(t.mailq(), mailq, "{secs}");
            assert_eq!(t.iso_date(), iso, "{secs}");
        }
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn asn1_times() {
        let table: &[(&str, bool, Option<i64>)] = &[
            ("700101000000Z", false, Some(0)),
            ("491231235959Z", false, Some(2_524_607_999)),
            ("20380119031407Z", true, Some(2_147_483_647)),
            ("20000301000000Z", true, Some(951_868_800)),
            ("2000030100000Z", true, None),
            ("20001301000000Z", true, None),
            ("700101000000", false, None),
            ("7001010000+0Z", false, None),
            ("", true, None),
        ];
        for &(text, generalized, want) in table {
            assert_eq!(parse_asn1_time(text, generalized), want, "{text}");
        }
    }

    #[test]
    fn millis_rounds_to_a_tenth() {
        assert_eq!(millis(Duration::from_micros(1_234)), 1.2);
        assert_eq!(millis(Duration::from_micros(1_250)), 1.3);
        assert_eq!(millis(Duration::ZERO), 0.0);
    }
}
