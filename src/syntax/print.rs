//! The canonical formatter: model → DSL text, and `format`, which re-prints DSL text keeping
//! its `#` comments.
//!
//! Every printed line carries the JSON pointer of what it shows (its *anchor*). `format`
//! uses the source map of the text it re-prints to put each comment back: a comment alone on
//! its line goes before the printed line whose anchor comes next in the source; a comment at
//! the end of a line stays at the end of the printed line anchored on that source line.
//! Must not parse (that is `lower`); it only reads a model and, for comments, a source map.

use std::collections::HashMap;

use super::strings::{escape, is_word};
use crate::model::*;
use crate::source::SourceMap;

/// One printed line.
pub(crate) struct Line {
    /// Nesting depth (two spaces each).
    depth: usize,
    /// The text without indentation.
    text: String,
    /// The pointer of what the line shows, for placing comments.
    anchor: Option<String>,
    /// Whether an empty line separates this line from the one before.
    blank_before: bool,
}

struct Printer {
    lines: Vec<Line>,
}

impl Printer {
    fn line(&mut self, depth: usize, text: String, anchor: Option<String>) {
        self.lines.push(Line {
            depth,
            text,
            anchor,
            blank_before: false,
        });
    }

    fn top(&mut self, text: String, anchor: String) {
        let blank_before = !self.lines.is_empty();
        self.lines.push(Line {
            depth: 0,
            text,
            anchor: Some(anchor),
            blank_before,
        });
    }
}

/// The printed lines of a playbook.
pub(crate) fn lines(p: &Playbook) -> Vec<Line> {
    let mut out = Printer { lines: Vec::new() };
    header(&mut out, &p.playbook);
    for (i, card) in p.cards.iter().enumerate() {
        self::card(&mut out, card, &format!("/cards/{i}"));
    }
    out.lines
}

/// Joins printed lines into text, ending with a newline.
pub(crate) fn render(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        push_line(&mut s, l, None);
    }
    s
}

fn push_line(s: &mut String, l: &Line, trailing: Option<&str>) {
    if l.blank_before {
        s.push('\n');
    }
    indent(s, l.depth);
    s.push_str(&l.text);
    if let Some(c) = trailing {
        s.push_str("  ");
        s.push_str(c);
    }
    s.push('\n');
}

fn indent(s: &mut String, depth: usize) {
    for _ in 0..depth {
        s.push_str("  ");
    }
}

fn header(out: &mut Printer, h: &Header) {
    out.top(
        format!("playbook {} {{", escape(&h.name)),
        "/playbook".into(),
    );
    if let Some(bot) = &h.bot {
        out.line(
            1,
            format!("bot {}", escape(bot)),
            Some("/playbook/bot".into()),
        );
    }
    if let Some(lang) = &h.language {
        let l = if is_word(lang) {
            lang.clone()
        } else {
            escape(lang)
        };
        out.line(
            1,
            format!("language {l}"),
            Some("/playbook/language".into()),
        );
    }
    out.line(
        1,
        format!("start {}", h.start),
        Some("/playbook/start".into()),
    );
    if let Some(g) = &h.greeting {
        out.line(
            1,
            format!("greeting {}", tpl(g)),
            Some("/playbook/greeting".into()),
        );
    }
    if let Some(d) = h.limits.idle_capture {
        out.line(
            1,
            format!("idle capture {d}"),
            Some("/playbook/limits/idle_capture".into()),
        );
    }
    if let Some(n) = h.limits.max_steps {
        out.line(
            1,
            format!("max steps {n}"),
            Some("/playbook/limits/max_steps".into()),
        );
    }
    out.line(0, "}".into(), None);
}

fn tpl(t: &Template) -> String {
    escape(t.source())
}

fn next(n: &Next) -> String {
    match n {
        Next::Goto(id) => format!("-> {id}"),
        Next::End(o) => match outcome(*o) {
            Some(o) => format!("end {o}"),
            None => "end".into(),
        },
    }
}

fn outcome(o: Outcome) -> Option<&'static str> {
    match o {
        Outcome::Qualified => Some("qualified"),
        Outcome::Disqualified => Some("disqualified"),
        Outcome::None => None,
    }
}

fn idle(out: &mut Printer, i: &Idle, ptr: &str) {
    let then = match &i.then {
        IdleAction::Nudge(t) => format!("nudge {}", tpl(t)),
        IdleAction::Goto(id) => format!("-> {id}"),
    };
    out.line(
        1,
        format!("idle {} {then}", i.after),
        Some(format!("{ptr}/idle")),
    );
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| escape(s))
        .collect::<Vec<_>>()
        .join(", ")
}

fn card(out: &mut Printer, card: &Card, ptr: &str) {
    let at = |s: &str| Some(format!("{ptr}/{s}"));
    match card {
        Card::Message(c) => {
            out.top(
                format!("message {} {} {}", c.id, tpl(&c.text), next(&c.then)),
                ptr.into(),
            );
        }
        Card::Question(c) => {
            let save = c
                .save
                .as_ref()
                .map(|v| format!(" save {v}"))
                .unwrap_or_default();
            out.top(
                format!("question {} {}{save} {{", c.id, tpl(&c.text)),
                ptr.into(),
            );
            for (j, a) in c.answers.iter().enumerate() {
                out.line(
                    1,
                    format!("{} -> {}", escape(&a.label), a.to),
                    at(&format!("answers/{j}")),
                );
            }
            if let Some(to) = &c.free_text {
                out.line(1, format!("free text -> {to}"), at("free_text"));
            }
            if let Some(i) = &c.idle {
                idle(out, i, ptr);
            }
            out.line(0, "}".into(), None);
        }
        Card::Ask(c) => {
            let expect = match &c.expect {
                InputKind::Text => "text".to_owned(),
                InputKind::Email => "email".to_owned(),
                InputKind::Phone => "phone".to_owned(),
                InputKind::Number => "number".to_owned(),
                InputKind::Pattern(p) => format!("pattern {}", escape(p.source())),
            };
            let save = c
                .save
                .as_ref()
                .map(|v| format!(" save {v}"))
                .unwrap_or_default();
            let has_block = c.reprompt.is_some() || c.give_up.is_some() || c.idle.is_some();
            out.top(
                format!(
                    "ask {} {} expect {expect}{save} -> {}{}",
                    c.id,
                    tpl(&c.text),
                    c.then,
                    if has_block { " {" } else { "" }
                ),
                ptr.into(),
            );
            if has_block {
                if let Some(r) = &c.reprompt {
                    out.line(1, format!("reprompt {}", tpl(r)), at("reprompt"));
                }
                if let Some(g) = &c.give_up {
                    out.line(
                        1,
                        format!("give up after {} -> {}", g.after, g.to),
                        at("give_up"),
                    );
                }
                if let Some(i) = &c.idle {
                    idle(out, i, ptr);
                }
                out.line(0, "}".into(), None);
            }
        }
        Card::Branch(c) => {
            out.top(format!("branch {} {{", c.id), ptr.into());
            for (j, r) in c.rules.iter().enumerate() {
                let cond = match &r.when {
                    Condition::Equals { var, value } => format!("{var} is {}", escape(value)),
                    Condition::OneOf { var, values } => format!("{var} in ({})", list(values)),
                    Condition::IsSet { var } => format!("{var} is set"),
                    Condition::NotSet { var } => format!("{var} is not set"),
                    Condition::Compare { var, cmp, value } => {
                        format!("{var} {} {value}", cmp.symbol())
                    }
                };
                out.line(
                    1,
                    format!("when {cond} -> {}", r.to),
                    at(&format!("rules/{j}")),
                );
            }
            out.line(1, format!("else -> {}", c.otherwise), at("otherwise"));
            out.line(0, "}".into(), None);
        }
        Card::LiveChat(c) => {
            out.top(format!("livechat {} {{", c.id), ptr.into());
            out.line(1, format!("online {}", tpl(&c.online)), at("online"));
            out.line(1, format!("wait {}", c.wait), at("wait"));
            out.line(1, format!("offline {}", tpl(&c.offline)), at("offline"));
            let plain = Route {
                assign: None,
                ..c.route.clone()
            };
            if plain != Route::default() {
                let to = match &c.route.to {
                    RouteTarget::Anyone => "anyone".to_owned(),
                    RouteTarget::Agents(a) if a.is_empty() => "agents".to_owned(),
                    RouteTarget::Agents(a) => format!("agents {}", list(a)),
                    RouteTarget::Team(t) => format!("team {}", escape(t)),
                    RouteTarget::Owner => "owner".to_owned(),
                };
                let avail = match c.route.availability {
                    Availability::Available => "",
                    Availability::Anyone => " anytime",
                };
                out.line(1, format!("route {to}{avail}"), at("route"));
            }
            if let Some(a) = c.route.assign {
                out.line(1, format!("assign {}", a.name()), at("route/assign"));
            }
            out.line(1, format!("on closed -> {}", c.on_closed), at("on_closed"));
            out.line(
                1,
                format!("on offline -> {}", c.on_offline),
                at("on_offline"),
            );
            if let Some(t) = &c.on_timeout {
                out.line(1, format!("on timeout -> {t}"), at("on_timeout"));
            }
            out.line(0, "}".into(), None);
        }
        Card::Capture(c) => {
            out.top(
                format!("capture {} {} {{", c.record.type_name(), c.id),
                ptr.into(),
            );
            record(out, &c.record, &format!("{ptr}/record"));
            out.line(0, format!("}} {}", next(&c.then)), at("then"));
        }
        Card::Consent(c) => {
            let mode = match c.mode {
                ConsentMode::Explicit => "explicit",
                ConsentMode::Implicit => "implicit",
            };
            let has_block = c.agree.is_some() || c.decline.is_some() || c.on_decline.is_some();
            out.top(
                format!(
                    "consent {} {mode} {} -> {}{}",
                    c.id,
                    tpl(&c.notice),
                    c.then,
                    if has_block { " {" } else { "" }
                ),
                ptr.into(),
            );
            if has_block {
                if let Some(a) = &c.agree {
                    out.line(1, format!("agree {}", escape(a)), at("agree"));
                }
                if let Some(d) = &c.decline {
                    out.line(1, format!("decline {}", escape(d)), at("decline"));
                }
                if let Some(d) = &c.on_decline {
                    out.line(1, format!("on decline -> {d}"), at("on_decline"));
                }
                out.line(0, "}".into(), None);
            }
        }
        Card::End(c) => {
            let o = outcome(c.outcome)
                .map(|o| format!(" {o}"))
                .unwrap_or_default();
            out.top(format!("end {}{o}", c.id), ptr.into());
        }
    }
}

fn record(out: &mut Printer, r: &RecordSpec, rp: &str) {
    let mut field = |text: String, key: &str| {
        out.line(1, text, Some(format!("{rp}/{key}")));
    };
    let t = |name: &str, v: &Option<Template>| v.as_ref().map(|v| format!("{name} {}", tpl(v)));
    let s = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("{name} {}", escape(v)));
    let person = |p: &Option<PersonSpec>| {
        p.as_ref().map(|p| {
            let mut s = "person".to_owned();
            for (k, v) in [("name", &p.name), ("email", &p.email), ("phone", &p.phone)] {
                if let Some(v) = v {
                    s.push_str(&format!(" {k} {}", tpl(v)));
                }
            }
            s
        })
    };
    let owner = |o: &Option<Owner>| {
        o.as_ref().map(|o| match o {
            Owner::User(u) => format!("owner user {}", escape(u)),
            Owner::Pool(p) => format!("owner pool {}", escape(p)),
            Owner::Agent => "owner agent".to_owned(),
        })
    };
    let labels = |l: &[String]| (!l.is_empty()).then(|| format!("labels {}", list(l)));
    let mut lines: Vec<(Option<String>, &str)> = Vec::new();
    let mut custom: Vec<(String, String)> = Vec::new();
    match r {
        RecordSpec::Lead(l) => {
            lines.extend([
                (t("title", &l.title), "title"),
                (person(&l.person), "person"),
                (t("organization", &l.organization), "organization"),
                (t("value", &l.value), "value"),
                (s("currency", &l.currency), "currency"),
                (owner(&l.owner), "owner"),
                (t("status", &l.status), "status"),
                (t("source", &l.source), "source"),
                (labels(&l.labels), "labels"),
            ]);
            custom = fields(&l.fields);
        }
        RecordSpec::Deal(d) => {
            lines.extend([
                (t("title", &d.title), "title"),
                (person(&d.person), "person"),
                (t("organization", &d.organization), "organization"),
                (t("value", &d.value), "value"),
                (s("currency", &d.currency), "currency"),
                (s("pipeline", &d.pipeline), "pipeline"),
                (s("stage", &d.stage), "stage"),
                (owner(&d.owner), "owner"),
                (t("status", &d.status), "status"),
                (labels(&d.labels), "labels"),
            ]);
            custom = fields(&d.fields);
        }
        RecordSpec::Activity(a) => {
            lines.extend([
                (Some(format!("type {}", a.activity.name())), "activity"),
                (t("subject", &a.subject), "subject"),
                (a.due.map(|d| format!("due {d}")), "due"),
                (t("note", &a.note), "note"),
                (owner(&a.owner), "owner"),
                (
                    a.link.map(|l| match l {
                        LinkTo::Lead => "link lead".to_owned(),
                        LinkTo::Deal => "link deal".to_owned(),
                    }),
                    "link",
                ),
            ]);
        }
    }
    for (text, key) in lines {
        if let Some(text) = text {
            field(text, key);
        }
    }
    for (text, key) in custom {
        field(text, &key);
    }
}

fn fields(f: &std::collections::BTreeMap<String, Template>) -> Vec<(String, String)> {
    f.iter()
        .map(|(k, v)| {
            (
                format!("field {} {}", escape(k), tpl(v)),
                format!("fields/{}", crate::source::pointer_segment(k)),
            )
        })
        .collect()
}

/// A `#` comment found in the source.
struct Comment<'a> {
    start: usize,
    text: &'a str,
    /// Alone on its line (only blanks before it).
    own_line: bool,
    /// The source line it is on (from 0).
    line: usize,
}

/// The texts of the `#` comments of DSL `text` (each with its `#`, trailing blanks trimmed).
pub(crate) fn comment_texts(text: &str) -> Vec<&str> {
    comments(text).into_iter().map(|c| c.text).collect()
}

/// Finds the comments of a text the grammar accepted: a `#` outside a string.
fn comments(text: &str) -> Vec<Comment<'_>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 0;
    let mut line_start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                line_start = i + 1;
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |e| i + e);
                out.push(Comment {
                    start: i,
                    text: text[i..end].trim_end(),
                    own_line: text[line_start..i].trim().is_empty(),
                    line,
                });
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// Prints `playbook` with the comments of `text` (the source `map` came from) put back.
pub(crate) fn with_comments(playbook: &Playbook, text: &str, map: &SourceMap) -> String {
    let lines = lines(playbook);
    let comments = comments(text);
    if comments.is_empty() {
        return render(&lines);
    }
    let newlines: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset);
    // Where each printed line's anchor was written.
    let starts: Vec<Option<usize>> = lines
        .iter()
        .map(|l| {
            l.anchor
                .as_deref()
                .and_then(|a| map.exact(a))
                .map(|s| s.start)
        })
        .collect();
    // Trailing comments go on the first printed line anchored on their source line.
    let mut trailing: HashMap<usize, usize> = HashMap::new(); // source line -> comment index
    for (ci, c) in comments.iter().enumerate() {
        if !c.own_line {
            trailing.insert(c.line, ci);
        }
    }
    let mut placed = vec![false; comments.len()];
    let mut line_trailing: Vec<Option<&str>> = vec![None; lines.len()];
    for (li, start) in starts.iter().enumerate() {
        if let Some(start) = start
            && let Some(ci) = trailing.remove(&line_of(*start))
        {
            line_trailing[li] = Some(comments[ci].text);
            placed[ci] = true;
        }
    }
    // Every other comment goes before the printed line anchored next after it in the source.
    let mut by_start: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .filter_map(|(li, s)| s.map(|s| (s, li)))
        .collect();
    by_start.sort_unstable();
    let mut before: Vec<Vec<&str>> = vec![Vec::new(); lines.len()];
    let mut at_end: Vec<&str> = Vec::new();
    for (ci, c) in comments.iter().enumerate() {
        if placed[ci] {
            continue;
        }
        let k = by_start.partition_point(|&(s, _)| s <= c.start);
        match by_start.get(k) {
            Some(&(_, li)) => before[li].push(c.text),
            None => at_end.push(c.text),
        }
    }
    let mut s = String::new();
    for (li, l) in lines.iter().enumerate() {
        if l.blank_before {
            s.push('\n');
        }
        for c in &before[li] {
            indent(&mut s, l.depth);
            s.push_str(c);
            s.push('\n');
        }
        let line = Line {
            depth: l.depth,
            text: l.text.clone(),
            anchor: None,
            blank_before: false,
        };
        push_line(&mut s, &line, line_trailing[li]);
    }
    if !at_end.is_empty() {
        s.push('\n');
        for c in at_end {
            s.push_str(c);
            s.push('\n');
        }
    }
    s
}
