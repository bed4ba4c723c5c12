//! Flow analytics: the counters a conversation's steps add ([`Key`], [`Tally`]), kept per
//! playbook, version and UTC day in the store — in the same commit as the steps they count —
//! and the report made from them ([`Report`]): traffic per card and per link, where
//! conversations stopped, outcomes, records, live-chat numbers, agents and channels.
//!
//! A report reads one row per (day, counter), so it costs O(counters × days) whatever the
//! number of conversations. Durations (time to pick-up, chat length) are kept as histograms
//! of fixed buckets ([`BUCKETS_S`]), so their median and 90th percentile are exact to a
//! bucket.
//!
//! Must not: do I/O, read a clock, or know how rows are stored.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::Instant;
use crate::model::{LinkKind, Outcome, Playbook};

/// A UTC day: days since 1970-01-01.
pub type Day = i64;

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The UTC day of an instant.
pub fn day(at: Instant) -> Day {
    (at.0 / DAY_MS) as Day
}

/// Upper bounds (seconds) of the duration buckets; the last bucket is everything longer.
pub const BUCKETS_S: [u64; 18] = [
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14_400, 86_400,
];

/// The bucket (its upper bound in seconds; `u64::MAX` past the last) of a duration.
pub fn bucket(ms: u64) -> u64 {
    let s = ms.div_ceil(1000);
    BUCKETS_S
        .iter()
        .copied()
        .find(|b| s <= *b)
        .unwrap_or(u64::MAX)
}

/// One counter. Stored as text ([`Key::encode`]): tab-separated fields, so card ids, agent
/// names and channels need no escaping (none holds a tab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A conversation started on this channel.
    Started(String),
    /// The flow entered this card.
    Entered(String),
    /// The flow left `from` by this link ([`link_name`]).
    Link(String, String),
    /// The conversation ended at this card with this outcome.
    Ended(String, Outcome),
    /// …on this channel (the one the visitor used last).
    EndedOn(String, Outcome),
    /// A record of this kind (`lead`, `deal`, `activity`) was made.
    Record(String),
    /// A live-chat card was reached.
    LiveRequested,
    /// …and nobody was available, so it went offline at once.
    LiveNoAgent,
    /// …and it waited in Unassigned.
    LiveQueued,
    /// An agent took it (picked up, or given by automatic assignment).
    LivePickedUp,
    /// Nobody took it in time.
    LiveTimedOut,
    /// The agent closed it.
    LiveClosed,
    /// Time from entering Unassigned to the pick-up, in this bucket ([`bucket`]).
    PickupS(u64),
    /// Time from the pick-up to the close, in this bucket.
    ChatS(u64),
    /// This agent took a chat (picked up, given, or passed on to them).
    Handled(String),
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Qualified => "qualified",
        Outcome::Disqualified => "disqualified",
        Outcome::None => "none",
    }
}

fn outcome_of(s: &str) -> Option<Outcome> {
    Some(match s {
        "qualified" => Outcome::Qualified,
        "disqualified" => Outcome::Disqualified,
        "none" => Outcome::None,
        _ => return None,
    })
}

/// A link kind as a counter stores it: `answer:1`, `rule:0`, `otherwise`, `timeout`…
pub fn link_name(k: LinkKind) -> String {
    match k {
        LinkKind::Next => "next".into(),
        LinkKind::Answer(i) => format!("answer:{i}"),
        LinkKind::FreeText => "free_text".into(),
        LinkKind::Valid => "valid".into(),
        LinkKind::GiveUp => "give_up".into(),
        LinkKind::Idle => "idle".into(),
        LinkKind::Rule(i) => format!("rule:{i}"),
        LinkKind::Otherwise => "otherwise".into(),
        LinkKind::Closed => "closed".into(),
        LinkKind::Offline => "offline".into(),
        LinkKind::Timeout => "timeout".into(),
        LinkKind::Agreed => "agreed".into(),
        LinkKind::Declined => "declined".into(),
    }
}

/// The link kind a stored name stands for.
pub fn link_of(s: &str) -> Option<LinkKind> {
    let indexed = |p: &str| s.strip_prefix(p).and_then(|i| i.parse().ok());
    Some(match s {
        "next" => LinkKind::Next,
        "free_text" => LinkKind::FreeText,
        "valid" => LinkKind::Valid,
        "give_up" => LinkKind::GiveUp,
        "idle" => LinkKind::Idle,
        "otherwise" => LinkKind::Otherwise,
        "closed" => LinkKind::Closed,
        "offline" => LinkKind::Offline,
        "timeout" => LinkKind::Timeout,
        "agreed" => LinkKind::Agreed,
        "declined" => LinkKind::Declined,
        _ => {
            if let Some(i) = indexed("answer:") {
                LinkKind::Answer(i)
            } else {
                LinkKind::Rule(indexed("rule:")?)
            }
        }
    })
}

impl Key {
    /// The stored text.
    pub fn encode(&self) -> String {
        match self {
            Key::Started(c) => format!("started\t{c}"),
            Key::Entered(c) => format!("entered\t{c}"),
            Key::Link(c, l) => format!("link\t{c}\t{l}"),
            Key::Ended(c, o) => format!("ended\t{c}\t{}", outcome_name(*o)),
            Key::EndedOn(c, o) => format!("ended_on\t{c}\t{}", outcome_name(*o)),
            Key::Record(k) => format!("record\t{k}"),
            Key::LiveRequested => "live\trequested".into(),
            Key::LiveNoAgent => "live\tno_agent".into(),
            Key::LiveQueued => "live\tqueued".into(),
            Key::LivePickedUp => "live\tpicked_up".into(),
            Key::LiveTimedOut => "live\ttimed_out".into(),
            Key::LiveClosed => "live\tclosed".into(),
            Key::PickupS(b) => format!("pickup_s\t{b}"),
            Key::ChatS(b) => format!("chat_s\t{b}"),
            Key::Handled(a) => format!("handled\t{a}"),
        }
    }

    /// The counter a stored text names (`None`: written by a newer release; ignored).
    pub fn decode(s: &str) -> Option<Key> {
        let mut f = s.split('\t');
        let kind = f.next()?;
        let a = f.next()?;
        let b = f.next();
        Some(match (kind, b) {
            ("started", None) => Key::Started(a.into()),
            ("entered", None) => Key::Entered(a.into()),
            ("link", Some(l)) => Key::Link(a.into(), l.into()),
            ("ended", Some(o)) => Key::Ended(a.into(), outcome_of(o)?),
            ("ended_on", Some(o)) => Key::EndedOn(a.into(), outcome_of(o)?),
            ("record", None) => Key::Record(a.into()),
            ("live", None) => match a {
                "requested" => Key::LiveRequested,
                "no_agent" => Key::LiveNoAgent,
                "queued" => Key::LiveQueued,
                "picked_up" => Key::LivePickedUp,
                "timed_out" => Key::LiveTimedOut,
                "closed" => Key::LiveClosed,
                _ => return None,
            },
            ("pickup_s", None) => Key::PickupS(a.parse().ok()?),
            ("chat_s", None) => Key::ChatS(a.parse().ok()?),
            ("handled", None) => Key::Handled(a.into()),
            _ => return None,
        })
    }
}

/// Counters added by a unit of work: `(playbook, version, day, key) → n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<(String, i64, Day, String), i64>);

impl Tally {
    /// Adds one to a counter of a playbook version on the day of `at`.
    pub fn add(&mut self, playbook: &str, version: i64, at: Instant, key: &Key) {
        *self
            .0
            .entry((playbook.to_owned(), version, day(at), key.encode()))
            .or_default() += 1;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: Tally) {
        for (k, n) in other.0 {
            *self.0.entry(k).or_default() += n;
        }
    }

    /// The counts as rows: `(playbook, version, day, key, n)`.
    pub fn rows(&self) -> impl Iterator<Item = (&str, i64, Day, &str, i64)> {
        self.0
            .iter()
            .map(|((p, v, d, k), n)| (p.as_str(), *v, *d, k.as_str(), *n))
    }
}

/// One card's traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CardStats {
    /// The card's id.
    pub id: String,
    /// Its kind (`question`, `livechat`…).
    pub kind: &'static str,
    /// Times the flow entered it.
    pub entered: i64,
    /// Times the flow left it by one of its links.
    pub left: i64,
    /// Conversations that ended here (an end card, or an end after it), by outcome.
    pub ended: BTreeMap<&'static str, i64>,
    /// Entered and neither left nor ended: conversations that stopped here (abandoned, or
    /// still going).
    pub stopped: i64,
    /// `stopped` as a share of `entered` (0 when never entered).
    pub drop_off: f64,
}

/// One link's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkStats {
    /// The card it leaves.
    pub from: String,
    /// The card it leads to.
    pub to: String,
    /// The link as stored (`answer:1`, `rule:0`, `timeout`…).
    pub link: String,
    /// In words: `answer "Book a demo"`, `rule 1`, `on timeout`…
    pub label: String,
    /// Times taken.
    pub count: i64,
    /// `count` as a share of the times `from` was left.
    pub share: f64,
}

/// A duration histogram's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    /// How many were measured.
    pub count: i64,
    /// The median, in seconds, to a bucket: the upper bound of the bucket it falls in
    /// (`null` when nothing was measured or it is past the last bucket).
    pub median_s: Option<u64>,
    /// The 90th percentile, the same way.
    pub p90_s: Option<u64>,
    /// `(bucket upper bound in seconds, count)`, shortest first; `null` bound: longer.
    pub buckets: Vec<(Option<u64>, i64)>,
}

impl Durations {
    fn from(h: &BTreeMap<u64, i64>) -> Durations {
        let count: i64 = h.values().sum();
        let at = |q: f64| {
            if count == 0 {
                return None;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as i64;
            let mut seen = 0;
            for (b, n) in h {
                seen += n;
                if seen >= rank {
                    return (*b != u64::MAX).then_some(*b);
                }
            }
            None
        };
        Durations {
            count,
            median_s: at(0.5),
            p90_s: at(0.9),
            buckets: h
                .iter()
                .map(|(b, n)| ((*b != u64::MAX).then_some(*b), *n))
                .collect(),
        }
    }
}

/// Live-chat numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveStats {
    /// Live-chat cards reached.
    pub requested: i64,
    /// …with nobody available (offline at once).
    pub no_agent: i64,
    /// …that waited in Unassigned.
    pub queued: i64,
    /// Taken by an agent.
    pub picked_up: i64,
    /// Nobody took them in time.
    pub timed_out: i64,
    /// Closed by the agent.
    pub closed: i64,
    /// Time to pick-up.
    pub pickup: Durations,
    /// Chat length, pick-up to close.
    pub chat: Durations,
    /// Chats taken, per agent.
    pub handled: BTreeMap<String, i64>,
}

/// One day's headline numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayStats {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Conversations started.
    pub started: i64,
    /// Conversations ended, by outcome.
    pub outcomes: BTreeMap<&'static str, i64>,
}

/// The analytics of one playbook (one version, or all) over a range of days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The playbook's name.
    pub playbook: String,
    /// The version counted (`null`: all versions).
    pub version: Option<i64>,
    /// First day counted, `YYYY-MM-DD`.
    pub from: String,
    /// Last day counted.
    pub to: String,
    /// Conversations started.
    pub started: i64,
    /// …per channel (the one they started on).
    pub channels: BTreeMap<String, i64>,
    /// Conversations ended per channel (the one the visitor used last) and outcome.
    pub channel_outcomes: BTreeMap<String, BTreeMap<&'static str, i64>>,
    /// Conversations ended, by outcome (`qualified`, `disqualified`, `none`).
    pub outcomes: BTreeMap<&'static str, i64>,
    /// Records made, by kind.
    pub records: BTreeMap<String, i64>,
    /// Every card of the playbook, in file order.
    pub cards: Vec<CardStats>,
    /// Every link of the playbook, in file order, with how often it was taken.
    pub links: Vec<LinkStats>,
    /// Live chat.
    pub live_chat: LiveStats,
    /// Day by day.
    pub days: Vec<DayStats>,
}

/// `YYYY-MM-DD` of a day.
pub fn day_name(d: Day) -> String {
    jiff::Timestamp::from_millisecond(d.saturating_mul(DAY_MS as i64))
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

/// The day of `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Option<Day> {
    let d: jiff::civil::Date = s.parse().ok()?;
    let ts = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_millisecond().div_euclid(DAY_MS as i64))
}

/// The most days one report covers (ten years): it bounds what one request reads.
pub const MAX_DAYS: i64 = 3660;

/// The days a report covers: `from` and `to` as `YYYY-MM-DD` (UTC), by default the 30 days
/// up to `today`. Says what is wrong with a bad date or range.
pub fn range(from: Option<&str>, to: Option<&str>, today: Day) -> Result<(Day, Day), String> {
    let parse = |what: &str, s: &str| {
        parse_day(s).ok_or_else(|| format!("`{what}` is not a date: `{s}` (use YYYY-MM-DD)"))
    };
    let to = to.map_or(Ok(today), |s| parse("to", s))?;
    let from = from.map_or(Ok(to - 29), |s| parse("from", s))?;
    if from > to {
        return Err(format!(
            "`from` ({}) is after `to` ({})",
            day_name(from),
            day_name(to)
        ));
    }
    if to - from >= MAX_DAYS {
        return Err(format!("a report covers at most {MAX_DAYS} days"));
    }
    Ok((from, to))
}

fn share(n: i64, of: i64) -> f64 {
    if of <= 0 { 0.0 } else { n as f64 / of as f64 }
}

/// Builds the report of `playbook` (the version counted; its cards and links name the rows)
/// from stored rows `(day, key, n)` of days `from..=to`.
pub fn report(
    playbook: &Playbook,
    name: &str,
    version: Option<i64>,
    (from, to): (Day, Day),
    rows: &[(Day, String, i64)],
) -> Report {
    let mut r = Report {
        playbook: name.to_owned(),
        version,
        from: day_name(from),
        to: day_name(to),
        ..Report::default()
    };
    let mut entered: BTreeMap<String, i64> = BTreeMap::new();
    let mut links: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut ended: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
    let mut pickup: BTreeMap<u64, i64> = BTreeMap::new();
    let mut chat: BTreeMap<u64, i64> = BTreeMap::new();
    let mut days: BTreeMap<Day, DayStats> = BTreeMap::new();
    for (d, key, n) in rows {
        let Some(key) = Key::decode(key) else {
            continue;
        };
        let n = *n;
        let day = days.entry(*d).or_insert_with(|| DayStats {
            day: day_name(*d),
            ..DayStats::default()
        });
        let live = &mut r.live_chat;
        match key {
            Key::Started(c) => {
                r.started += n;
                day.started += n;
                *r.channels.entry(c).or_default() += n;
            }
            Key::Entered(c) => *entered.entry(c).or_default() += n,
            Key::Link(c, l) => *links.entry((c, l)).or_default() += n,
            Key::Ended(c, o) => {
                let o = outcome_name(o);
                *ended.entry(c).or_default().entry(o).or_default() += n;
                *r.outcomes.entry(o).or_default() += n;
                *day.outcomes.entry(o).or_default() += n;
            }
            Key::EndedOn(c, o) => {
                *r.channel_outcomes
                    .entry(c)
                    .or_default()
                    .entry(outcome_name(o))
                    .or_default() += n;
            }
            Key::Record(k) => *r.records.entry(k).or_default() += n,
            Key::LiveRequested => live.requested += n,
            Key::LiveNoAgent => live.no_agent += n,
            Key::LiveQueued => live.queued += n,
            Key::LivePickedUp => live.picked_up += n,
            Key::LiveTimedOut => live.timed_out += n,
            Key::LiveClosed => live.closed += n,
            Key::PickupS(b) => *pickup.entry(b).or_default() += n,
            Key::ChatS(b) => *chat.entry(b).or_default() += n,
            Key::Handled(a) => *live.handled.entry(a).or_default() += n,
        }
    }
    r.live_chat.pickup = Durations::from(&pickup);
    r.live_chat.chat = Durations::from(&chat);
    r.days = days.into_values().collect();
    for card in &playbook.cards {
        let id = card.id().as_str().to_owned();
        let out: Vec<_> = card.links();
        let left: i64 = out
            .iter()
            .map(|l| {
                links
                    .get(&(id.clone(), link_name(l.kind)))
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        for l in &out {
            let count = links
                .get(&(id.clone(), link_name(l.kind)))
                .copied()
                .unwrap_or(0);
            r.links.push(LinkStats {
                from: id.clone(),
                to: l.to.as_str().to_owned(),
                link: link_name(l.kind),
                label: card.describe_link(l.kind),
                count,
                share: share(count, left),
            });
        }
        let entered = entered.get(&id).copied().unwrap_or(0);
        let ended = ended.remove(&id).unwrap_or_default();
        let stopped = (entered - left - ended.values().sum::<i64>()).max(0);
        r.cards.push(CardStats {
            id,
            kind: card.kind_name(),
            entered,
            left,
            ended,
            stopped,
            drop_off: share(stopped, entered),
        });
    }
    r
}

/// The report drawn over the playbook's graph: each card with its entries and the share
/// that stopped there (coloured: green under 20 %, amber under 50 %, red from 50 %, grey
/// never entered), each link with its count and its share of the card's exits.
pub fn overlay(playbook: &Playbook, r: &Report) -> crate::graph::Overlay {
    let mut o = crate::graph::Overlay {
        classes: vec![
            ("low", "fill:#e3f4e8,stroke:#2f8f4e"),
            ("mid", "fill:#fff1d6,stroke:#b7791f"),
            ("high", "fill:#fde2e1,stroke:#c53030"),
            ("none", "fill:#f1f1f1,stroke:#999999,color:#777777"),
        ],
        ..Default::default()
    };
    for c in &r.cards {
        let class = match c.drop_off {
            _ if c.entered == 0 => "none",
            d if d < 0.2 => "low",
            d if d < 0.5 => "mid",
            _ => "high",
        };
        let ended: i64 = c.ended.values().sum();
        let mut line = format!("entered {}", c.entered);
        if ended > 0 {
            let _ = write!(line, " · ended {ended}");
        }
        if c.entered > 0 {
            let _ = write!(line, " · {:.0}% stop here", c.drop_off * 100.0);
        }
        o.cards.push((line, class));
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        for l in card.links() {
            let name = link_name(l.kind);
            if let Some(k) = r
                .links
                .iter()
                .find(|k| k.from == card.id().as_str() && k.link == name)
            {
                o.links.insert(
                    (i, l.kind),
                    format!("{} · {:.0}%", k.count, k.share * 100.0),
                );
            }
        }
    }
    o
}

/// The report as a plain-text table (what `playbook stats` prints).
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let version = r
        .version
        .map_or("all versions".to_owned(), |v| format!("version {v}"));
    let _ = writeln!(
        out,
        "{} ({version}), {} to {}: {} started",
        r.playbook, r.from, r.to, r.started
    );
    let pairs = |m: Vec<(String, i64)>| {
        if m.is_empty() {
            return "-".to_owned();
        }
        m.into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "channels: {}",
        pairs(r.channels.iter().map(|(k, n)| (k.clone(), *n)).collect())
    );
    let _ = writeln!(
        out,
        "outcomes: {}",
        pairs(
            r.outcomes
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect()
        )
    );
    let _ = writeln!(
        out,
        "records:  {}",
        pairs(r.records.iter().map(|(k, n)| (k.clone(), *n)).collect())
    );
    let l = &r.live_chat;
    let secs = |s: Option<u64>| s.map_or("-".to_owned(), |s| format!("≤{s}s"));
    let _ = writeln!(
        out,
        "live chat: {} requested, {} no agent, {} queued, {} picked up, {} timed out, {} closed; pick-up median {} p90 {}; chat median {} p90 {}",
        l.requested,
        l.no_agent,
        l.queued,
        l.picked_up,
        l.timed_out,
        l.closed,
        secs(l.pickup.median_s),
        secs(l.pickup.p90_s),
        secs(l.chat.median_s),
        secs(l.chat.p90_s),
    );
    if !l.handled.is_empty() {
        let _ = writeln!(
            out,
            "agents:   {}",
            pairs(l.handled.iter().map(|(k, n)| (k.clone(), *n)).collect())
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<9} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "card", "kind", "entered", "left", "ended", "stopped", "drop-off"
    );
    for c in &r.cards {
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8.1}%",
            c.id,
            c.kind,
            c.entered,
            c.left,
            c.ended.values().sum::<i64>(),
            c.stopped,
            c.drop_off * 100.0
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<40} {:<20} {:>8} {:>7}",
        "from", "link", "to", "taken", "share"
    );
    for k in &r.links {
        let _ = writeln!(
            out,
            "{:<24} {:<40} {:<20} {:>8} {:>6.1}%",
            k.from,
            k.label,
            k.to,
            k.count,
            k.share * 100.0
        );
    }
    out
}

/// The report's cards and links as CSV rows: `section,from,link,to,count,share`.
pub fn csv(r: &Report) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("section,card,link,to,count,share\n");
    for c in &r.cards {
        let _ = writeln!(
            out,
            "entered,{},,,{},{:.4}",
            q(&c.id),
            c.entered,
            1.0 - c.drop_off
        );
        let _ = writeln!(
            out,
            "stopped,{},,,{},{:.4}",
            q(&c.id),
            c.stopped,
            c.drop_off
        );
    }
    for k in &r.links {
        let _ = writeln!(
            out,
            "link,{},{},{},{},{:.4}",
            q(&k.from),
            q(&k.label),
            q(&k.to),
            k.count,
            k.share
        );
    }
    for (o, n) in &r.outcomes {
        let _ = writeln!(out, "outcome,,{o},,{n},");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_ones_are_skipped() {
        for k in [
            Key::Started("web".into()),
            Key::Entered("welcome".into()),
            Key::Link("welcome".into(), link_name(LinkKind::Answer(2))),
            Key::Ended("bye".into(), Outcome::Qualified),
            Key::EndedOn("whatsapp".into(), Outcome::None),
            Key::Record("lead".into()),
            Key::LiveNoAgent,
            Key::PickupS(30),
            Key::ChatS(u64::MAX),
            Key::Handled("Ana Lee".into()),
        ] {
            assert_eq!(Key::decode(&k.encode()), Some(k));
        }
        assert_eq!(Key::decode("future\tthing"), None);
        for l in [
            LinkKind::Answer(3),
            LinkKind::Rule(0),
            LinkKind::Otherwise,
            LinkKind::Timeout,
        ] {
            assert_eq!(link_of(&link_name(l)), Some(l));
        }
    }

    #[test]
    fn durations_summarise_to_a_bucket() {
        assert_eq!(bucket(0), 5);
        assert_eq!(bucket(5_000), 5);
        assert_eq!(bucket(5_001), 10);
        assert_eq!(bucket(100_000_000), u64::MAX);
        let mut h = BTreeMap::new();
        // 10 pick-ups: 5 within 5 s, 4 within 30 s, 1 after a day.
        h.insert(5, 5);
        h.insert(30, 4);
        h.insert(u64::MAX, 1);
        let d = Durations::from(&h);
        assert_eq!((d.count, d.median_s, d.p90_s), (10, Some(5), Some(30)));
        assert_eq!(Durations::from(&BTreeMap::new()).median_s, None);
    }

    #[test]
    fn ranges_default_to_thirty_days_and_refuse_nonsense() {
        let today = parse_day("2026-12-01").unwrap();
        assert_eq!(range(None, None, today), Ok((today - 29, today)));
        let r = range(Some("2026-11-01"), Some("2026-11-30"), today).unwrap();
        assert_eq!(
            (day_name(r.0), day_name(r.1)),
            ("2026-11-01".into(), "2026-11-30".into())
        );
        assert!(
            range(Some("2026-12-02"), None, today)
                .unwrap_err()
                .contains("after")
        );
        assert!(
            range(Some("yesterday"), None, today)
                .unwrap_err()
                .contains("`from`")
        );
        assert!(
            range(Some("1990-01-01"), None, today)
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn days_are_utc_dates() {
        let d = parse_day("2026-01-05").unwrap();
        assert_eq!(day_name(d), "2026-01-05");
        assert_eq!(day(Instant(1_767_603_600_000)), d);
        assert_eq!(parse_day("5 Jan"), None);
    }
}
