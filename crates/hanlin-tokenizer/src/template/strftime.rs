//! `strftime_now(fmt)` for chat templates: C/Python `strftime` over a UTC instant.
//!
//! Templates only ever ask for dates such as `"%d %b %Y"`, so a small civil-calendar
//! conversion is enough and keeps the crate free of a date-time dependency.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Monday … 6 = Sunday
    weekday: u32,
    /// 1..=366
    yday: u32,
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Civil {
    fn from_system_time(t: SystemTime) -> Self {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => {
                // Before 1970: round toward negative infinity so the time of day stays positive.
                let d = e.duration();
                let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                -s - i64::from(d.subsec_nanos() > 0)
            }
        };
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap_shift = u32::from(month > 2 && is_leap(year));
        Civil {
            year,
            month,
            day,
            hour: tod / 3600,
            minute: tod / 60 % 60,
            second: tod % 60,
            // 1970-01-01 was a Thursday (index 3).
            weekday: (days + 3).rem_euclid(7) as u32,
            yday: CUMULATIVE[(month - 1) as usize] + day + leap_shift,
        }
    }
}

/// Formats `t` (as UTC) with C `strftime` directives, including glibc's `%-d` style
/// no-padding flag. Unknown directives are copied through unchanged, as glibc does.
pub(crate) fn strftime(fmt: &str, t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let no_pad = chars.next_if_eq(&'-').is_some();
        let Some(spec) = chars.next() else {
            out.push('%');
            if no_pad {
                out.push('-');
            }
            break;
        };
        let num = |out: &mut String, v: i64, width: usize| {
            let _ = if no_pad {
                write!(out, "{v}")
            } else {
                write!(out, "{v:0width$}")
            };
        };
        let hour12 = match c.hour % 12 {
            0 => 12,
            h => h,
        };
        match spec {
            'a' => out.push_str(&WEEKDAYS[c.weekday as usize][..3]),
            'A' => out.push_str(WEEKDAYS[c.weekday as usize]),
            'b' | 'h' => out.push_str(&MONTHS[(c.month - 1) as usize][..3]),
            'B' => out.push_str(MONTHS[(c.month - 1) as usize]),
            'd' => num(&mut out, c.day.into(), 2),
            'e' => {
                let _ = if no_pad {
                    write!(out, "{}", c.day)
                } else {
                    write!(out, "{:>2}", c.day)
                };
            }
            'H' => num(&mut out, c.hour.into(), 2),
            'I' => num(&mut out, hour12.into(), 2),
            'j' => num(&mut out, c.yday.into(), 3),
            'm' => num(&mut out, c.month.into(), 2),
            'M' => num(&mut out, c.minute.into(), 2),
            'S' => num(&mut out, c.second.into(), 2),
            'p' => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
            'y' => num(&mut out, c.year.rem_euclid(100), 2),
            'Y' => {
                let _ = write!(out, "{}", c.year);
            }
            'u' => {
                let _ = write!(out, "{}", c.weekday + 1);
            }
            'w' => {
                let _ = write!(out, "{}", (c.weekday + 1) % 7);
            }
            'F' => {
                let _ = write!(out, "{}-{:02}-{:02}", c.year, c.month, c.day);
            }
            'T' => {
                let _ = write!(out, "{:02}:{:02}:{:02}", c.hour, c.minute, c.second);
            }
            'R' => {
                let _ = write!(out, "{:02}:{:02}", c.hour, c.minute);
            }
            'D' => {
                let _ = write!(
                    out,
                    "{:02}/{:02}/{:02}",
                    c.month,
                    c.day,
                    c.year.rem_euclid(100)
                );
            }
            'z' => out.push_str("+0000"),
            'Z' => out.push_str("UTC"),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '%' => out.push('%'),
            other => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants() {
        // 2024-07-26T13:25:09Z, a Friday, day 208 of a leap year.
        let t = at(1_722_000_309);
        assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
        assert_eq!(strftime("%A %B %-d, %y", t), "Friday July 26, 24");
        assert_eq!(
            strftime("%F %T %j %I%p %a %u %w", t),
            "2024-07-26 13:25:09 208 01PM Fri 5 5"
        );
        assert_eq!(strftime("%e|%-m|%%|%Q|%z %Z", at(0)), " 1|1|%|%Q|+0000 UTC");
        // 2000-02-29 (leap day in a century leap year) and the day after.
        assert_eq!(
            strftime("%F %j %A", at(951_782_400)),
            "2000-02-29 060 Tuesday"
        );
        assert_eq!(strftime("%F %j", at(951_868_800)), "2000-03-01 061");
        // 2100 is not a leap year.
        assert_eq!(strftime("%F %j", at(4_107_542_400)), "2100-03-01 060");
    }

    #[test]
    fn before_epoch() {
        let t = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(strftime("%F %T %A", t), "1969-12-31 23:59:59 Wednesday");
    }

    #[test]
    fn trailing_percent_is_kept() {
        assert_eq!(strftime("100%", at(0)), "100%");
    }
}
