//! A team's availability hours: weekly opening times in a time zone, and closed dates.
//!
//! Written in a config as `hours = ["mon-fri 09:00-17:00", "sat 10:00-14:00"]`, `timezone =
//! "Europe/Berlin"` (IANA names; the time-zone database is built in, so a machine's own
//! files do not change the answer) and `closed = ["2026-12-24"]`. Times are wall-clock
//! times in that zone, so a daylight-saving change moves the opening in UTC, not on the
//! clock; a range may end at `24:00`. Outside its hours a team's agents do not count as
//! available for routing.
//!
//! Must not: read a clock (the time is always given).

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

use crate::engine::Instant;

/// When a team is open.
#[derive(Debug, Clone)]
pub struct Hours {
    tz: TimeZone,
    /// Per weekday (Monday first): open ranges in minutes after midnight, `[start, end)`.
    weekly: [Vec<(u16, u16)>; 7],
    closed: BTreeSet<Date>,
}

/// Why hours were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Unknown time zone.
    #[error("unknown time zone `{0}` (use an IANA name such as `Europe/Berlin`)")]
    TimeZone(String),
    /// A line of `hours` that is not `DAYS HH:MM-HH:MM`.
    #[error(
        "`{0}` is not an opening time: write DAYS HH:MM-HH:MM, e.g. `mon-fri 09:00-17:00` or `sat,sun 10:00-14:00`"
    )]
    Range(String),
    /// A closed date that is not `YYYY-MM-DD`.
    #[error("`{0}` is not a date (YYYY-MM-DD)")]
    Date(String),
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<usize> {
    DAYS.iter().position(|d| *d == s)
}

/// `09:30` as minutes after midnight; `24:00` allowed as an end.
fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

/// `mon-fri`, `sat,sun`, `wed`: the weekdays (Monday = 0).
fn days(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(day(part)?),
        }
    }
    Some(out)
}

impl Hours {
    /// Parses a team's hours.
    pub fn parse(timezone: &str, hours: &[String], closed: &[String]) -> Result<Hours, HoursError> {
        let tz = TimeZone::get(timezone).map_err(|_| HoursError::TimeZone(timezone.to_owned()))?;
        let mut weekly: [Vec<(u16, u16)>; 7] = Default::default();
        for line in hours {
            let bad = || HoursError::Range(line.clone());
            let (ds, range) = line.trim().split_once(' ').ok_or_else(bad)?;
            let (a, b) = range.trim().split_once('-').ok_or_else(bad)?;
            let (a, b) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
            if a >= b {
                return Err(bad());
            }
            for d in days(&ds.to_ascii_lowercase()).ok_or_else(bad)? {
                weekly[d].push((a, b));
            }
        }
        let closed = closed
            .iter()
            .map(|d| d.parse::<Date>().map_err(|_| HoursError::Date(d.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Hours { tz, weekly, closed })
    }

    /// Whether the team is open at `at` (ms since the epoch).
    pub fn open_at(&self, at: Instant) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(i64::try_from(at.0).unwrap_or(i64::MAX))
        else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        if self.closed.contains(&local.date()) {
            return false;
        }
        let d = match local.weekday() {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        };
        let m = local.hour() as u16 * 60 + local.minute() as u16;
        self.weekly[d].iter().any(|(a, b)| (*a..*b).contains(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC time.
    fn utc(s: &str) -> Instant {
        let ts: jiff::Timestamp = s.parse().unwrap();
        Instant(ts.as_millisecond() as u64)
    }

    fn sales() -> Hours {
        Hours::parse(
            "Europe/Berlin",
            &["mon-fri 09:00-17:00".into(), "sat 10:00-12:30".into()],
            &["2026-12-24".into()],
        )
        .unwrap()
    }

    #[test]
    fn weekly_hours_in_the_teams_time_zone() {
        let h = sales();
        // Monday 5 January 2026, Berlin is UTC+1.
        assert!(!h.open_at(utc("2026-01-05T07:59:59Z")), "08:59 in Berlin");
        assert!(h.open_at(utc("2026-01-05T08:00:00Z")), "09:00 in Berlin");
        assert!(h.open_at(utc("2026-01-05T15:59:00Z")));
        assert!(!h.open_at(utc("2026-01-05T16:00:00Z")), "17:00: closed");
        assert!(h.open_at(utc("2026-01-10T11:00:00Z")), "Saturday 12:00");
        assert!(!h.open_at(utc("2026-01-10T11:30:00Z")), "Saturday 12:30");
        assert!(!h.open_at(utc("2026-01-11T10:00:00Z")), "Sunday");
    }

    #[test]
    fn a_closed_date_is_closed_all_day() {
        let h = sales();
        assert!(
            !h.open_at(utc("2026-12-24T10:00:00Z")),
            "Thursday, closed date"
        );
        assert!(h.open_at(utc("2026-12-23T10:00:00Z")));
    }

    #[test]
    fn daylight_saving_moves_the_opening_in_utc_not_on_the_clock() {
        let h = sales();
        // Berlin switches to UTC+2 on Sunday 29 March 2026: 09:00 is 08:00 UTC on Friday
        // the 27th and 07:00 UTC on Monday the 30th.
        assert!(h.open_at(utc("2026-03-27T08:00:00Z")));
        assert!(!h.open_at(utc("2026-03-27T07:30:00Z")));
        assert!(h.open_at(utc("2026-03-30T07:00:00Z")));
        assert!(!h.open_at(utc("2026-03-30T06:59:00Z")));
        assert!(
            !h.open_at(utc("2026-03-30T15:00:00Z")),
            "17:00 in summer time"
        );
    }

    #[test]
    fn bad_hours_are_refused_with_the_reason() {
        let parse = |tz: &str, h: &str, c: &str| {
            let closed: Vec<String> = if c.is_empty() { vec![] } else { vec![c.into()] };
            Hours::parse(tz, &[h.into()], &closed).map(drop)
        };
        assert_eq!(
            parse("Mars/Olympus", "mon 09:00-17:00", ""),
            Err(HoursError::TimeZone("Mars/Olympus".into()))
        );
        for bad in [
            "mon",
            "mon 9-17",
            "fri-mon 09:00-17:00",
            "mon 17:00-09:00",
            "mon 09:00-25:00",
            "xyz 09:00-10:00",
        ] {
            assert!(
                matches!(parse("UTC", bad, ""), Err(HoursError::Range(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse("UTC", "mon 00:00-24:00", "24.12.2026"),
            Err(HoursError::Date("24.12.2026".into()))
        );
        assert!(parse("UTC", "Mon,Wed 00:00-24:00", "2026-12-24").is_ok());
    }
}
