//! Scenario text → [`Scenario`] (pest, `grammar/scenario.pest`), with a line and column on
//! every step so that failures name `file:line:col`.
//!
//! Owns the scenario syntax and its English error messages. Must not look at the playbook:
//! whether a card, answer or agent exists is decided when the scenario runs.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::engine::Channel;
use crate::model::{Duration, Outcome};

use super::ScenarioError;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/scenario.pest"]
struct ScenarioParser;

/// Where a statement was written: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The file as given (used in messages).
    pub file: String,
    /// The playbook path as written (relative to the scenario's folder), and where.
    pub playbook: Option<(String, Pos)>,
    /// `start at CARD with var = "value", …`: start mid-flow.
    pub start_at: Option<StartAt>,
    /// The channel the visitor starts on (`web` unless told).
    pub channel: Channel,
    /// The page the chat starts on.
    pub page: Option<String>,
    /// The visitor's CRM owner (for `route owner`).
    pub contact_owner: Option<String>,
    /// Every other statement, in order.
    pub steps: Vec<Step>,
}

/// `start at CARD with …`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartAt {
    /// The card id.
    pub card: String,
    /// Variables set before the card runs, in the order written.
    pub vars: Vec<(String, String)>,
    /// Where it was written.
    pub pos: Pos,
}

/// One statement and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Where.
    pub pos: Pos,
    /// What.
    pub action: Action,
}

/// Presence as written in a scenario.
pub use crate::desk::Presence;

/// What the visitor does.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitorInput {
    /// `visitor "Book a demo"`: press the button with this label when a question with that
    /// button is asked; otherwise type the text.
    Say(String),
    /// `visitor 2`: press the second button.
    Button(usize),
    /// `visitor types "…"`: type the text, even when it matches a button.
    Type(String),
}

/// One scripted thing that happens, or an expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `agent ana online [capacity 2]`: declares an agent (before the chat starts; with the
    /// most open chats automatic assignment gives them) or changes presence.
    Agent(String, Presence, Option<u32>),
    /// `team Sales: ana, bob [assign round_robin]`.
    Team(String, Vec<String>, Option<crate::model::Assignment>),
    /// `pool "Inbound SDRs": sam, tia`.
    Pool(String, Vec<String>),
    /// The visitor acts, optionally on another channel.
    Visitor(Option<Channel>, VisitorInput),
    /// `wait 3m`: virtual time passes and due timers fire.
    Wait(Duration),
    /// `ana picks up`.
    PicksUp(String),
    /// `ana says "…"`.
    Says(String, String),
    /// `ana reassigns to bob`.
    Reassigns(String, String),
    /// `ana closes`.
    Closes(String),
    /// `ana creates deal { title "…" value "5000" }`.
    Creates(String, crate::capture::ManualKind, Vec<(String, String)>),
    /// `ana goes away`.
    Goes(String, Presence),
    /// `expect …`.
    Expect(Expect),
}

/// An inline expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// `expect bot "Thanks"`: a bot (or agent-as-bot) message of the latest turn contains it.
    Bot(String),
    /// `expect buttons "A", "B"`: the latest question offers exactly these buttons.
    Buttons(Vec<String>),
    /// `expect record lead { title "…" }`: a record of this kind with these fields exists.
    Record(String, Vec<(String, String)>),
    /// `expect 2 records`.
    Records(usize),
    /// `expect outcome qualified`.
    Outcome(Outcome),
    /// `expect ended`.
    Ended,
    /// `expect at email`: the conversation waits at this card.
    At(String),
}

fn pos(p: &Pair<'_, Rule>) -> Pos {
    let (line, col) = p.line_col();
    Pos { line, col }
}

/// Reads a string literal: `\"`, `\\`, `\n`, `\t` are the escapes.
fn unquote(p: &Pair<'_, Rule>, file: &str) -> Result<String, ScenarioError> {
    let raw = p.as_str();
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            other => {
                return Err(err(
                    file,
                    pos(p),
                    format!(
                        "unknown escape `\\{}` in a string (use \\\" \\\\ \\n or \\t)",
                        other.map(String::from).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn err(file: &str, pos: Pos, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.to_owned(),
        line: pos.line,
        col: pos.col,
        message: message.into(),
    }
}

/// A name or a string (agents, teams, pools).
fn who(p: Pair<'_, Rule>, file: &str) -> Result<String, ScenarioError> {
    match p.as_rule() {
        Rule::string => unquote(&p, file),
        _ => Ok(p.as_str().to_owned()),
    }
}

/// Reads a channel name (`web`, `whatsapp`, …).
pub fn channel(name: &str) -> Option<Channel> {
    serde_json::from_value(serde_json::Value::String(name.to_ascii_lowercase())).ok()
}

fn presence(s: &str) -> Presence {
    match s {
        "online" => Presence::Online,
        "away" => Presence::Away,
        _ => Presence::Offline,
    }
}

/// Parses a scenario file's text. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let mut pairs = ScenarioParser::parse(Rule::file, text).map_err(|e| syntax_error(file, e))?;
    let root = pairs
        .next()
        .ok_or_else(|| err(file, Pos::default(), "the file could not be read"))?;
    let mut sc = Scenario {
        file: file.to_owned(),
        playbook: None,
        start_at: None,
        channel: Channel::Web,
        page: None,
        contact_owner: None,
        steps: Vec::new(),
    };
    let mut seen_channel = false;
    for stmt in root.into_inner() {
        let at = pos(&stmt);
        let rule = stmt.as_rule();
        let mut it = stmt.into_inner();
        // Every statement starts with its keyword(s); `next_value` skips them.
        let mut next = |skip: usize| {
            for _ in 0..skip {
                it.next();
            }
            it.next()
        };
        let missing = || err(file, at, "incomplete statement");
        match rule {
            Rule::EOI => {}
            Rule::s_playbook => {
                if sc.playbook.is_some() {
                    return Err(err(file, at, "the playbook is named twice"));
                }
                let s = next(1).ok_or_else(missing)?;
                sc.playbook = Some((unquote(&s, file)?, pos(&s)));
            }
            Rule::s_start_at => {
                if sc.start_at.is_some() {
                    return Err(err(file, at, "`start at` is given twice"));
                }
                let card = next(2).ok_or_else(missing)?.as_str().to_owned();
                let mut vars = Vec::new();
                for a in it.by_ref() {
                    if a.as_rule() != Rule::assign {
                        continue;
                    }
                    let mut kv = a.into_inner();
                    let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                        return Err(missing());
                    };
                    vars.push((k.as_str().to_owned(), unquote(&v, file)?));
                }
                sc.start_at = Some(StartAt {
                    card,
                    vars,
                    pos: at,
                });
            }
            Rule::s_channel => {
                let c = next(1).ok_or_else(missing)?;
                if seen_channel {
                    return Err(err(
                        file,
                        at,
                        "the channel is given twice; to switch channels later, write `visitor on whatsapp \"…\"`",
                    ));
                }
                seen_channel = true;
                sc.channel = channel(c.as_str()).ok_or_else(|| unknown_channel(file, &c))?;
            }
            Rule::s_page => {
                let s = next(1).ok_or_else(missing)?;
                sc.page = Some(unquote(&s, file)?);
            }
            Rule::s_owner => {
                let s = next(2).ok_or_else(missing)?;
                sc.contact_owner = Some(who(s, file)?);
            }
            Rule::s_agent => {
                let name = who(next(1).ok_or_else(missing)?, file)?;
                let p = next(0).ok_or_else(missing)?;
                let capacity = match next(1) {
                    Some(n) => Some(n.as_str().parse::<u32>().map_err(|_| {
                        err(file, pos(&n), "a capacity is a whole number of chats")
                    })?),
                    None => None,
                };
                sc.push(at, Action::Agent(name, presence(p.as_str()), capacity));
            }
            Rule::s_team | Rule::s_pool => {
                let name = who(next(1).ok_or_else(missing)?, file)?;
                let members = next(0)
                    .ok_or_else(missing)?
                    .into_inner()
                    .map(|m| who(m, file))
                    .collect::<Result<Vec<_>, _>>()?;
                let assign = next(1).map(|a| match a.as_str() {
                    "round_robin" => crate::model::Assignment::RoundRobin,
                    "least_busy" => crate::model::Assignment::LeastBusy,
                    _ => crate::model::Assignment::Manual,
                });
                sc.push(
                    at,
                    if rule == Rule::s_team {
                        Action::Team(name, members, assign)
                    } else {
                        Action::Pool(name, members)
                    },
                );
            }
            Rule::s_visitor => {
                let mut ch = None;
                let mut input = None;
                for p in it.by_ref() {
                    match p.as_rule() {
                        Rule::channel => {
                            ch = Some(channel(p.as_str()).ok_or_else(|| unknown_channel(file, &p))?)
                        }
                        Rule::count => {
                            let Ok(n) = p.as_str().parse::<usize>() else {
                                return Err(err(
                                    file,
                                    pos(&p),
                                    format!("`{}` is too large for a button number", p.as_str()),
                                ));
                            };
                            if n == 0 {
                                return Err(err(
                                    file,
                                    pos(&p),
                                    "buttons are counted from 1: `visitor 1` presses the first",
                                ));
                            }
                            input = Some(VisitorInput::Button(n));
                        }
                        Rule::string => input = Some(VisitorInput::Say(unquote(&p, file)?)),
                        Rule::v_types => {
                            let s = p.into_inner().nth(1).ok_or_else(missing)?;
                            input = Some(VisitorInput::Type(unquote(&s, file)?));
                        }
                        _ => {}
                    }
                }
                sc.push(at, Action::Visitor(ch, input.ok_or_else(missing)?));
            }
            Rule::s_wait => {
                let d = next(1).ok_or_else(missing)?;
                let dur: Duration = d.as_str().parse().map_err(|e| {
                    err(
                        file,
                        pos(&d),
                        format!(
                            "`{}` is not a duration ({e}); write e.g. `30s`, `3m`, `1h30m`",
                            d.as_str()
                        ),
                    )
                })?;
                sc.push(at, Action::Wait(dur));
            }
            Rule::s_expect => {
                let e = next(1).ok_or_else(missing)?;
                let expect = expectation(e, file)?;
                sc.push(at, Action::Expect(expect));
            }
            Rule::s_agent_action => {
                let agent = who(next(0).ok_or_else(missing)?, file)?;
                let act = next(0).ok_or_else(missing)?;
                let arule = act.as_rule();
                let mut parts = act.into_inner();
                let action = match arule {
                    Rule::a_picks => Action::PicksUp(agent),
                    Rule::a_says => {
                        let s = parts.nth(1).ok_or_else(missing)?;
                        Action::Says(agent, unquote(&s, file)?)
                    }
                    Rule::a_reassigns => {
                        let s = parts.nth(2).ok_or_else(missing)?;
                        Action::Reassigns(agent, who(s, file)?)
                    }
                    Rule::a_closes => Action::Closes(agent),
                    Rule::a_creates => {
                        let kind = match parts.nth(1).map(|p| p.as_str().to_owned()).as_deref() {
                            Some("deal") => crate::capture::ManualKind::Deal,
                            _ => crate::capture::ManualKind::Lead,
                        };
                        let fields = block(parts.next().ok_or_else(missing)?, file)?;
                        Action::Creates(agent, kind, fields)
                    }
                    Rule::a_goes => {
                        let p = parts.nth(1).ok_or_else(missing)?;
                        Action::Goes(agent, presence(p.as_str()))
                    }
                    _ => return Err(missing()),
                };
                sc.push(at, action);
            }
            _ => {}
        }
    }
    Ok(sc)
}

impl Scenario {
    fn push(&mut self, pos: Pos, action: Action) {
        self.steps.push(Step { pos, action });
    }
}

fn unknown_channel(file: &str, p: &Pair<'_, Rule>) -> ScenarioError {
    err(
        file,
        pos(p),
        format!(
            "unknown channel `{}`; channels are web, whatsapp, messenger, instagram, telegram, sms, email, terminal, api",
            p.as_str()
        ),
    )
}

fn block(p: Pair<'_, Rule>, file: &str) -> Result<Vec<(String, String)>, ScenarioError> {
    let mut out = Vec::new();
    for f in p.into_inner().filter(|f| f.as_rule() == Rule::field) {
        let parts: Vec<Pair<'_, Rule>> = f.into_inner().collect();
        match parts.as_slice() {
            [kw, k, v] if kw.as_rule() == Rule::kw_field => {
                out.push((format!("field {}", unquote(k, file)?), unquote(v, file)?))
            }
            [k, v] => out.push((k.as_str().to_owned(), unquote(v, file)?)),
            _ => {}
        }
    }
    Ok(out)
}

fn expectation(e: Pair<'_, Rule>, file: &str) -> Result<Expect, ScenarioError> {
    let rule = e.as_rule();
    let parts: Vec<Pair<'_, Rule>> = e.into_inner().collect();
    let strings = |ps: &[Pair<'_, Rule>]| {
        ps.iter()
            .filter(|p| p.as_rule() == Rule::string)
            .map(|p| unquote(p, file))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match rule {
        Rule::e_bot => Expect::Bot(strings(&parts)?.into_iter().next().unwrap_or_default()),
        Rule::e_buttons => Expect::Buttons(strings(&parts)?),
        Rule::e_record => {
            let kind = parts
                .iter()
                .find(|p| p.as_rule() == Rule::record_kind)
                .map_or("lead", |p| p.as_str())
                .to_owned();
            let fields = match parts.into_iter().find(|p| p.as_rule() == Rule::block) {
                Some(b) => block(b, file)?,
                None => Vec::new(),
            };
            Expect::Record(kind, fields)
        }
        Rule::e_records => Expect::Records(
            parts
                .first()
                .and_then(|p| p.as_str().parse().ok())
                .unwrap_or(0),
        ),
        Rule::e_outcome => Expect::Outcome(match parts.get(1).map(|p| p.as_str()) {
            Some("qualified") => Outcome::Qualified,
            Some("disqualified") => Outcome::Disqualified,
            _ => Outcome::None,
        }),
        Rule::e_ended => Expect::Ended,
        _ => Expect::At(
            parts
                .get(1)
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        ),
    })
}

/// Grammar rule names in words.
fn word(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::string => "a quoted string",
        Rule::name => "a name",
        Rule::duration => "a duration like `3m`",
        Rule::count => "a number",
        Rule::channel => "a channel",
        Rule::presence => "`online`, `away` or `offline`",
        Rule::assignment => "`manual`, `round_robin` or `least_busy`",
        Rule::kw_capacity => "`capacity`",
        Rule::kw_assign => "`assign`",
        Rule::outcome => "`qualified`, `disqualified` or `none`",
        Rule::record_kind => "`lead`, `deal` or `activity`",
        Rule::manual_kind => "`lead` or `deal`",
        Rule::EOI => "the end of the file",
        Rule::kw_playbook
        | Rule::kw_start
        | Rule::kw_channel
        | Rule::kw_page
        | Rule::kw_contact
        | Rule::kw_agent
        | Rule::kw_team
        | Rule::kw_pool
        | Rule::kw_visitor
        | Rule::kw_wait
        | Rule::kw_expect => {
            "a statement (`visitor`, `wait`, `expect`, `agent`, an agent's action…)"
        }
        Rule::kw_picks
        | Rule::kw_says
        | Rule::kw_reassigns
        | Rule::kw_closes
        | Rule::kw_creates
        | Rule::kw_goes => {
            "an agent action (`picks up`, `says`, `reassigns to`, `closes`, `creates`, `goes`)"
        }
        Rule::kw_bot
        | Rule::kw_buttons
        | Rule::kw_record
        | Rule::kw_records
        | Rule::kw_ended
        | Rule::kw_outcome => {
            "an expectation (`bot`, `buttons`, `record`, `outcome`, `ended`, `at`)"
        }
        Rule::kw_at => "`at`",
        Rule::kw_with => "`with`",
        Rule::kw_on => "`on`",
        Rule::kw_types => "`types`",
        Rule::kw_up => "`up`",
        Rule::kw_to => "`to`",
        Rule::kw_owner => "`owner`",
        Rule::kw_field => "`field`",
        Rule::field => "a field like `title \"…\"`",
        Rule::eol => "the end of the line",
        _ => return None,
    })
}

fn syntax_error(file: &str, e: pest::error::Error<Rule>) -> ScenarioError {
    let (line, col) = match e.line_col {
        pest::error::LineColLocation::Pos(p) | pest::error::LineColLocation::Span(p, _) => p,
    };
    let mut words: Vec<&str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for w in positives.iter().filter_map(word) {
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    let found = e
        .line()
        .chars()
        .skip(col.saturating_sub(1))
        .collect::<String>();
    let found = found.split_whitespace().next().unwrap_or("");
    let message = match (words.is_empty(), found.is_empty()) {
        (true, _) => "this line could not be read".to_owned(),
        (false, true) => format!("expected {}", words.join(" or ")),
        (false, false) => format!("expected {}, found `{found}`", words.join(" or ")),
    };
    ScenarioError {
        file: file.to_owned(),
        line,
        col,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_statement() {
        let text = r#"
# a comment
playbook "demo.playbook"
start at email with name = "Ann", size = "11-200"
channel whatsapp
page "https://acme.example/pricing"
contact owner ana
agent ana online   # trailing comment
agent "Bob Lee" away
team Sales: ana, "Bob Lee"
pool "Inbound SDRs": sam, tia
visitor "Book a demo"
visitor 2
visitor on web types "3"
wait 1h30m
ana picks up
ana says "Hi \"there\""
ana reassigns to "Bob Lee"
"Bob Lee" closes
"Bob Lee" creates deal {
  title "Big" value "5000"
  field "Size" "11-200"
}
ana goes offline
expect bot "Thanks"
expect buttons "A", "B"
expect buttons
expect record lead { title "T" email "a@b.co" }
expect record activity
expect 2 records
expect outcome qualified
expect ended
expect at email
"#;
        let s = parse("x.scenario", text).unwrap();
        assert_eq!(
            s.playbook,
            Some(("demo.playbook".into(), Pos { line: 3, col: 10 }))
        );
        assert_eq!(s.start_at.as_ref().unwrap().vars.len(), 2);
        assert_eq!(s.channel, Channel::WhatsApp);
        assert_eq!(s.contact_owner.as_deref(), Some("ana"));
        assert_eq!(s.steps.len(), 23);
        assert_eq!(s.steps[0].pos, Pos { line: 8, col: 1 });
        assert_eq!(
            s.steps[6].action,
            Action::Visitor(Some(Channel::Web), VisitorInput::Type("3".into()))
        );
        assert_eq!(
            s.steps[9].action,
            Action::Says("ana".into(), "Hi \"there\"".into())
        );
        let Action::Creates(_, _, f) = &s.steps[12].action else {
            panic!()
        };
        assert_eq!(f[2], ("field Size".into(), "11-200".into()));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("a.scenario", "playbook \"x\"\nvisitor\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 8), "{e}");
        assert!(e.to_string().starts_with("a.scenario:2:8: expected"), "{e}");
        let e = parse("a.scenario", "wait 3x\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("a.scenario:1:6: `3x` is not a duration"),
            "{e}"
        );
        let e = parse("a.scenario", "channel pigeon\n").unwrap_err();
        assert!(e.to_string().contains("unknown channel `pigeon`"), "{e}");
        let e = parse("a.scenario", "visitor 0\n").unwrap_err();
        assert!(e.to_string().contains("counted from 1"), "{e}");
        let e = parse("a.scenario", "visitor 99999999999999999999\n").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        assert!(!e.to_string().contains("counted from 1"), "{e}");
        let e = parse("a.scenario", "ana dances\n").unwrap_err();
        assert!(e.message.contains("agent action"), "{e}");
    }
}
