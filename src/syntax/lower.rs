//! Lowering: pest parse tree → [`Playbook`] plus a [`SourceMap`] keyed by the JSON pointer of
//! every value, so that checks (which speak JSON pointers) can point into DSL text.
//!
//! Collects every lowering error (bad durations, templates, patterns, ids, duplicate or
//! misplaced fields, missing required fields) instead of stopping at the first. Must not
//! know about pest error messages (that is `grammar`) or printing (that is `print`).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use pest::iterators::Pair;

use super::grammar::Rule;
use super::strings;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::*;
use crate::source::{SourceMap, Span, pointer_segment};

type P<'i> = Pair<'i, Rule>;

/// Lowers a parsed `file` pair.
pub(crate) fn lower(file: P<'_>) -> Result<(Playbook, SourceMap), Vec<Diagnostic>> {
    let mut l = Lower {
        map: SourceMap::new(),
        errors: Vec::new(),
    };
    let mut header: Option<(Header, Span)> = None;
    let mut cards = Vec::new();
    // Card indices follow the text even when a card fails to lower.
    let mut index = 0usize;
    for item in file.into_inner() {
        match item.as_rule() {
            Rule::header => {
                let span = span(&item);
                if let Some((_, first)) = &header {
                    let d = Diagnostic::new(Code::InvalidValue, "the playbook has two headers")
                        .at_span(span, "second header")
                        .at_span(*first, "first header")
                        .with_help("keep one `playbook \"...\" { ... }` block");
                    l.errors.push(d);
                } else if let Some(h) = l.header(item) {
                    header = Some((h, span));
                }
            }
            Rule::EOI => {}
            _ => {
                let ptr = format!("/cards/{index}");
                index += 1;
                let before = l.errors.len();
                let item_span = span(&item);
                match l.card(item, &ptr) {
                    Some(card) => cards.push(card),
                    None if l.errors.len() == before => l.errors.push(
                        Diagnostic::new(Code::Syntax, "this card could not be read")
                            .at_span(item_span, ""),
                    ),
                    None => {}
                }
            }
        }
    }
    if header.is_none() {
        l.errors.push(
            Diagnostic::new(Code::InvalidValue, "the playbook has no header")
                .at_span(Span::new(0, 0), "")
                .with_help("start the file with `playbook \"Name\" { start first_card }`"),
        );
    }
    match header {
        Some((header, _)) if l.errors.is_empty() => Ok((
            Playbook {
                playbook: header,
                cards,
            },
            l.map,
        )),
        _ => Err(l.errors),
    }
}

fn span(p: &P<'_>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

struct Lower {
    map: SourceMap,
    errors: Vec<Diagnostic>,
}

/// Remembers where an optional field was first given, to report a second one.
fn once<T>(
    slot: &mut Option<T>,
    seen: &mut Option<Span>,
    value: Option<T>,
    at: Span,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) {
    if let Some(first) = seen {
        errors.push(
            Diagnostic::new(Code::InvalidValue, format!("{what} is given twice"))
                .at_span(at, "given again here")
                .at_span(*first, "first given here")
                .with_help("keep one of them"),
        );
        return;
    }
    *seen = Some(at);
    if value.is_some() {
        *slot = value;
    }
}

/// A field of a block with its slot for duplicates.
struct Field<T> {
    value: Option<T>,
    seen: Option<Span>,
}

impl<T> Default for Field<T> {
    fn default() -> Self {
        Self {
            value: None,
            seen: None,
        }
    }
}

impl<T> Field<T> {
    fn set(&mut self, value: Option<T>, at: Span, what: &str, errors: &mut Vec<Diagnostic>) {
        once(&mut self.value, &mut self.seen, value, at, what, errors);
    }
}

impl Lower {
    fn record(&mut self, ptr: &str, span: Span) {
        self.map.insert(ptr, span);
    }

    fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn string(&mut self, p: P<'_>, ptr: &str) -> Option<String> {
        let sp = span(&p);
        match strings::unescape(p.as_str()) {
            Ok(s) => {
                self.record(ptr, sp);
                Some(s)
            }
            Err(e) => {
                self.error(
                    Diagnostic::new(Code::Syntax, e.message)
                        .at_span(Span::new(sp.start + e.start, sp.start + e.end), "")
                        .with_help(
                            "write `\\\"` for a quote, `\\\\` for a backslash, `\\n` for a line break",
                        ),
                );
                None
            }
        }
    }

    fn template(&mut self, p: P<'_>, ptr: &str) -> Option<Template> {
        let sp = span(&p);
        let literal = p.as_str();
        let text = self.string(p, ptr)?;
        match Template::new(text) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = sp.start + strings::source_offset(literal, e.offset());
                let len = literal[at - sp.start..]
                    .chars()
                    .next()
                    .map_or(1, char::len_utf8);
                self.error(
                    Diagnostic::new(Code::InvalidTemplate, e.to_string())
                        .at_span(Span::new(at, at + len), "here")
                        .with_help(
                            "`{name}` inserts a variable; write `{{` and `}}` for literal braces",
                        ),
                );
                None
            }
        }
    }

    fn card_id(&mut self, p: P<'_>, ptr: &str) -> Option<CardId> {
        let sp = span(&p);
        match CardId::new(p.as_str()) {
            Ok(id) => {
                self.record(ptr, sp);
                Some(id)
            }
            Err(e) => {
                self.error(Diagnostic::new(Code::InvalidValue, e.to_string()).at_span(sp, ""));
                None
            }
        }
    }

    fn var(&mut self, p: P<'_>, ptr: &str) -> Option<VarName> {
        let sp = span(&p);
        match VarName::new(p.as_str()) {
            Ok(v) => {
                self.record(ptr, sp);
                Some(v)
            }
            Err(e) => {
                self.error(
                    Diagnostic::new(Code::InvalidValue, format!("bad variable name: {e}"))
                        .at_span(sp, "")
                        .with_help("variable names use letters, digits and `_` (no `-`)"),
                );
                None
            }
        }
    }

    fn duration(&mut self, p: P<'_>, ptr: &str) -> Option<Duration> {
        let sp = span(&p);
        match p.as_str().parse::<Duration>() {
            Ok(d) => {
                self.record(ptr, sp);
                Some(d)
            }
            Err(e) => {
                self.error(
                    Diagnostic::new(Code::InvalidDuration, e.to_string())
                        .at_span(sp, "")
                        .with_help("durations look like `30s`, `5m`, `1h30m` or `2d`"),
                );
                None
            }
        }
    }

    fn count(&mut self, p: P<'_>, ptr: &str, what: &str) -> Option<NonZeroU32> {
        let sp = span(&p);
        match p.as_str().parse::<u32>().ok().and_then(NonZeroU32::new) {
            Some(n) => {
                self.record(ptr, sp);
                Some(n)
            }
            None => {
                self.error(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("{what} must be a whole number from 1 to {}", u32::MAX),
                    )
                    .at_span(sp, ""),
                );
                None
            }
        }
    }

    fn missing(&mut self, at: Span, card: &str, field: &str, example: &str) {
        self.error(
            Diagnostic::new(Code::InvalidValue, format!("{card} has no `{field}`"))
                .at_span(at, "")
                .with_help(format!("add `{example}`")),
        );
    }

    // ---- header ---------------------------------------------------------------------------

    fn header(&mut self, p: P<'_>) -> Option<Header> {
        let sp = span(&p);
        self.record("/playbook", sp);
        let mut name = None;
        let mut bot = Field::default();
        let mut language = Field::default();
        let mut start = Field::default();
        let mut greeting = Field::default();
        let mut idle_capture = Field::default();
        let mut max_steps = Field::default();
        let mut ok = true;
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::string => {
                    name = self.string(f, "/playbook/name");
                    ok &= name.is_some();
                }
                Rule::h_bot => {
                    let v = self.string(last(f)?, "/playbook/bot");
                    ok &= v.is_some();
                    bot.set(v, fs, "`bot`", &mut self.errors);
                }
                Rule::h_language => {
                    let v = last(f)?;
                    let v = if v.as_rule() == Rule::string {
                        self.string(v, "/playbook/language")
                    } else {
                        self.record("/playbook/language", span(&v));
                        Some(v.as_str().to_owned())
                    };
                    ok &= v.is_some();
                    language.set(v, fs, "`language`", &mut self.errors);
                }
                Rule::h_start => {
                    let v = self.card_id(last(f)?, "/playbook/start");
                    ok &= v.is_some();
                    start.set(v, fs, "`start`", &mut self.errors);
                }
                Rule::h_greeting => {
                    let v = self.template(last(f)?, "/playbook/greeting");
                    ok &= v.is_some();
                    greeting.set(v, fs, "`greeting`", &mut self.errors);
                }
                Rule::h_idle_capture => {
                    let v = self.duration(last(f)?, "/playbook/limits/idle_capture");
                    ok &= v.is_some();
                    idle_capture.set(v, fs, "`idle capture`", &mut self.errors);
                }
                Rule::h_max_steps => {
                    let v = self.count(last(f)?, "/playbook/limits/max_steps", "`max steps`");
                    ok &= v.is_some();
                    max_steps.set(v, fs, "`max steps`", &mut self.errors);
                }
                _ => {}
            }
        }
        if start.seen.is_none() {
            self.missing(sp, "the playbook header", "start", "start first_card_id");
            return None;
        }
        if !ok {
            return None;
        }
        Some(Header {
            name: name?,
            bot: bot.value,
            language: language.value,
            start: start.value?,
            greeting: greeting.value,
            limits: Limits {
                idle_capture: idle_capture.value,
                max_steps: max_steps.value,
            },
        })
    }

    // ---- cards ----------------------------------------------------------------------------

    fn card(&mut self, p: P<'_>, ptr: &str) -> Option<Card> {
        let before = self.errors.len();
        self.record(ptr, span(&p));
        if let Some(kw) = p.clone().into_inner().next() {
            self.record(&format!("{ptr}/kind"), span(&kw));
        }
        let card = match p.as_rule() {
            Rule::message => self.message(p, ptr).map(Card::Message),
            Rule::question => self.question(p, ptr).map(Card::Question),
            Rule::ask => self.ask(p, ptr).map(Card::Ask),
            Rule::branch => self.branch(p, ptr).map(Card::Branch),
            Rule::livechat => self.livechat(p, ptr).map(Card::LiveChat),
            Rule::capture => self.capture(p, ptr).map(Card::Capture),
            Rule::consent => self.consent(p, ptr).map(Card::Consent),
            Rule::end_card => self.end_card(p, ptr).map(Card::End),
            _ => None,
        };
        // A card is only built when everything inside it was read.
        if self.errors.len() > before {
            None
        } else {
            card
        }
    }

    fn next(&mut self, p: P<'_>, ptr: &str) -> Option<Next> {
        let ptr = format!("{ptr}/then");
        self.record(&ptr, span(&p));
        let inner = p.into_inner().next()?;
        match inner.as_rule() {
            Rule::goto => {
                let t = last(inner)?;
                self.card_id(t, &format!("{ptr}/goto")).map(Next::Goto)
            }
            _ => {
                let outcome = match inner.into_inner().find(|p| p.as_rule() == Rule::outcome) {
                    Some(o) => {
                        self.record(&format!("{ptr}/end"), span(&o));
                        outcome(o.as_str())
                    }
                    None => Outcome::None,
                };
                Some(Next::End(outcome))
            }
        }
    }

    fn idle(&mut self, p: P<'_>, ptr: &str) -> Option<Idle> {
        let ptr = format!("{ptr}/idle");
        self.record(&ptr, span(&p));
        let mut after = None;
        let mut then = None;
        for f in p.into_inner() {
            match f.as_rule() {
                Rule::duration => after = self.duration(f, &format!("{ptr}/after")),
                Rule::nudge => {
                    self.record(&format!("{ptr}/then"), span(&f));
                    then = self
                        .template(last(f)?, &format!("{ptr}/then/nudge"))
                        .map(IdleAction::Nudge);
                }
                Rule::goto => {
                    self.record(&format!("{ptr}/then"), span(&f));
                    then = self
                        .card_id(last(f)?, &format!("{ptr}/then/goto"))
                        .map(IdleAction::Goto);
                }
                _ => {}
            }
        }
        Some(Idle {
            after: after?,
            then: then?,
        })
    }

    fn message(&mut self, p: P<'_>, ptr: &str) -> Option<Message> {
        let mut it = p.into_inner().filter(|p| p.as_rule() != Rule::kw_message);
        let id = self.card_id(it.next()?, &format!("{ptr}/id"));
        let text = self.template(it.next()?, &format!("{ptr}/text"));
        let then = self.next(it.next()?, ptr);
        Some(Message {
            id: id?,
            text: text?,
            then: then?,
        })
    }

    fn question(&mut self, p: P<'_>, ptr: &str) -> Option<Question> {
        let mut id = None;
        let mut text = None;
        let mut save = None;
        let mut answers = Vec::new();
        let mut free_text: Field<CardId> = Field::default();
        let mut idle: Field<Idle> = Field::default();
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::string => text = self.template(f, &format!("{ptr}/text")),
                Rule::save => save = self.var(last(f)?, &format!("{ptr}/save")),
                Rule::answer => {
                    let ap = format!("{ptr}/answers/{}", answers.len());
                    self.record(&ap, fs);
                    let mut it = f.into_inner().filter(|p| p.as_rule() != Rule::arrow);
                    let label = self.string(it.next()?, &format!("{ap}/label"));
                    let to = self.card_id(it.next()?, &format!("{ap}/to"));
                    if let (Some(label), Some(to)) = (label, to) {
                        answers.push(Answer { label, to });
                    }
                }
                Rule::free_text => {
                    let v = self.card_id(last(f)?, &format!("{ptr}/free_text"));
                    free_text.set(v, fs, "`free text`", &mut self.errors);
                }
                Rule::idle => {
                    let v = self.idle(f, ptr);
                    idle.set(v, fs, "`idle`", &mut self.errors);
                }
                _ => {}
            }
        }
        Some(Question {
            id: id?,
            text: text?,
            save,
            answers,
            free_text: free_text.value,
            idle: idle.value,
        })
    }

    fn ask(&mut self, p: P<'_>, ptr: &str) -> Option<Ask> {
        let mut id = None;
        let mut text = None;
        let mut expect = None;
        let mut save = None;
        let mut then = None;
        let mut reprompt: Field<Template> = Field::default();
        let mut give_up: Field<GiveUp> = Field::default();
        let mut idle: Field<Idle> = Field::default();
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::string => text = self.template(f, &format!("{ptr}/text")),
                Rule::expect => {
                    let ep = format!("{ptr}/expect");
                    self.record(&ep, fs);
                    let k = last(f)?;
                    expect = match k.as_rule() {
                        Rule::input_pattern => {
                            let s = last(k)?;
                            let ss = span(&s);
                            let source = self.string(s, &format!("{ep}/pattern"))?;
                            match Pattern::new(source) {
                                Ok(p) => Some(InputKind::Pattern(p)),
                                Err(e) => {
                                    self.error(
                                        Diagnostic::new(
                                            Code::InvalidPattern,
                                            "this pattern is not a valid regular expression",
                                        )
                                        .at_span(ss, "")
                                        .with_help(first_line(&e.to_string())),
                                    );
                                    None
                                }
                            }
                        }
                        _ => Some(match k.as_str() {
                            "email" => InputKind::Email,
                            "phone" => InputKind::Phone,
                            "number" => InputKind::Number,
                            _ => InputKind::Text,
                        }),
                    };
                }
                Rule::save => save = self.var(last(f)?, &format!("{ptr}/save")),
                Rule::target => then = self.card_id(f, &format!("{ptr}/then")),
                Rule::reprompt => {
                    let v = self.template(last(f)?, &format!("{ptr}/reprompt"));
                    reprompt.set(v, fs, "`reprompt`", &mut self.errors);
                }
                Rule::give_up => {
                    let gp = format!("{ptr}/give_up");
                    self.record(&gp, fs);
                    let mut after = None;
                    let mut to = None;
                    for g in f.into_inner() {
                        match g.as_rule() {
                            Rule::count => {
                                after = self.count(g, &format!("{gp}/after"), "`give up after`")
                            }
                            Rule::target => to = self.card_id(g, &format!("{gp}/to")),
                            _ => {}
                        }
                    }
                    let v = after.zip(to).map(|(after, to)| GiveUp { after, to });
                    give_up.set(v, fs, "`give up`", &mut self.errors);
                }
                Rule::idle => {
                    let v = self.idle(f, ptr);
                    idle.set(v, fs, "`idle`", &mut self.errors);
                }
                _ => {}
            }
        }
        Some(Ask {
            id: id?,
            text: text?,
            expect: expect?,
            save,
            reprompt: reprompt.value,
            give_up: give_up.value,
            idle: idle.value,
            then: then?,
        })
    }

    fn branch(&mut self, p: P<'_>, ptr: &str) -> Option<Branch> {
        let mut id = None;
        let mut rules = Vec::new();
        let mut otherwise = None;
        for f in p.into_inner() {
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::when_rule => {
                    let rp = format!("{ptr}/rules/{}", rules.len());
                    if let Some(r) = self.rule(f, &rp) {
                        rules.push(r);
                    }
                }
                Rule::otherwise => {
                    otherwise = self.card_id(last(f)?, &format!("{ptr}/otherwise"));
                }
                _ => {}
            }
        }
        Some(Branch {
            id: id?,
            rules,
            otherwise: otherwise?,
        })
    }

    fn rule(&mut self, p: P<'_>, rp: &str) -> Option<Rule_> {
        self.record(rp, span(&p));
        let wp = format!("{rp}/when");
        let mut var = None;
        let mut cond: Option<Box<dyn FnOnce(VarName) -> Condition>> = None;
        let mut to = None;
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::var => var = self.var(f, &format!("{wp}/var")),
                Rule::is_set => {
                    self.record(&wp, fs);
                    cond = Some(Box::new(|var| Condition::IsSet { var }));
                }
                Rule::is_not_set => {
                    self.record(&wp, fs);
                    cond = Some(Box::new(|var| Condition::NotSet { var }));
                }
                Rule::is_value => {
                    self.record(&wp, fs);
                    let value = self.string(last(f)?, &format!("{wp}/value"))?;
                    cond = Some(Box::new(|var| Condition::Equals { var, value }));
                }
                Rule::in_values => {
                    self.record(&wp, fs);
                    let mut values = Vec::new();
                    for s in f.into_inner().filter(|p| p.as_rule() == Rule::string) {
                        let vp = format!("{wp}/values/{}", values.len());
                        values.push(self.string(s, &vp)?);
                    }
                    cond = Some(Box::new(|var| Condition::OneOf { var, values }));
                }
                Rule::compare => {
                    self.record(&wp, fs);
                    let mut it = f.into_inner();
                    let op = it.next()?;
                    let cmp = match op.as_str() {
                        "<" => Comparison::Lt,
                        "<=" => Comparison::Le,
                        ">" => Comparison::Gt,
                        _ => Comparison::Ge,
                    };
                    self.record(&format!("{wp}/cmp"), span(&op));
                    let n = it.next()?;
                    let ns = span(&n);
                    match n.as_str().parse::<f64>() {
                        Ok(value) if value.is_finite() => {
                            self.record(&format!("{wp}/value"), ns);
                            cond =
                                Some(Box::new(move |var| Condition::Compare { var, cmp, value }));
                        }
                        _ => {
                            self.error(
                                Diagnostic::new(Code::InvalidValue, "this number is too large")
                                    .at_span(ns, ""),
                            );
                            return None;
                        }
                    }
                }
                Rule::target => to = self.card_id(f, &format!("{rp}/to")),
                _ => {}
            }
        }
        Some(Rule_ {
            when: cond?(var?),
            to: to?,
        })
    }

    fn livechat(&mut self, p: P<'_>, ptr: &str) -> Option<LiveChat> {
        let sp = span(&p);
        let mut id = None;
        let mut online: Field<Template> = Field::default();
        let mut wait: Field<Duration> = Field::default();
        let mut offline: Field<Template> = Field::default();
        let mut route: Field<Route> = Field::default();
        let mut assign: Field<Assignment> = Field::default();
        let mut on_closed: Field<CardId> = Field::default();
        let mut on_offline: Field<CardId> = Field::default();
        let mut on_timeout: Field<CardId> = Field::default();
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::lc_online => {
                    let v = self.template(last(f)?, &format!("{ptr}/online"));
                    online.set(v, fs, "`online`", &mut self.errors);
                }
                Rule::lc_wait => {
                    let v = self.duration(last(f)?, &format!("{ptr}/wait"));
                    wait.set(v, fs, "`wait`", &mut self.errors);
                }
                Rule::lc_offline => {
                    let v = self.template(last(f)?, &format!("{ptr}/offline"));
                    offline.set(v, fs, "`offline`", &mut self.errors);
                }
                Rule::lc_route => {
                    let v = self.route(f, &format!("{ptr}/route"));
                    route.set(v, fs, "`route`", &mut self.errors);
                }
                Rule::lc_assign => {
                    self.record(&format!("{ptr}/route/assign"), fs);
                    let v = match last(f)?.as_str() {
                        "round_robin" => Assignment::RoundRobin,
                        "least_busy" => Assignment::LeastBusy,
                        _ => Assignment::Manual,
                    };
                    assign.set(Some(v), fs, "`assign`", &mut self.errors);
                }
                Rule::lc_on_closed => {
                    let v = self.card_id(last(f)?, &format!("{ptr}/on_closed"));
                    on_closed.set(v, fs, "`on closed`", &mut self.errors);
                }
                Rule::lc_on_offline => {
                    let v = self.card_id(last(f)?, &format!("{ptr}/on_offline"));
                    on_offline.set(v, fs, "`on offline`", &mut self.errors);
                }
                Rule::lc_on_timeout => {
                    let v = self.card_id(last(f)?, &format!("{ptr}/on_timeout"));
                    on_timeout.set(v, fs, "`on timeout`", &mut self.errors);
                }
                _ => {}
            }
        }
        let what = "this livechat card";
        let head = Span::new(sp.start, sp.start + "livechat".len());
        for (seen, field, example) in [
            (
                online.seen,
                "online",
                "online \"Connecting you with our team...\"",
            ),
            (wait.seen, "wait", "wait 2m"),
            (
                offline.seen,
                "offline",
                "offline \"Sorry, nobody is available right now.\"",
            ),
            (on_closed.seen, "on closed", "on closed -> card_id"),
            (on_offline.seen, "on offline", "on offline -> card_id"),
        ] {
            if seen.is_none() {
                self.missing(head, what, field, example);
            }
        }
        Some(LiveChat {
            id: id?,
            online: online.value?,
            wait: wait.value?,
            offline: offline.value?,
            route: Route {
                assign: assign.value,
                ..route.value.unwrap_or_default()
            },
            on_closed: on_closed.value?,
            on_offline: on_offline.value?,
            on_timeout: on_timeout.value,
        })
    }

    fn route(&mut self, p: P<'_>, rp: &str) -> Option<Route> {
        self.record(rp, span(&p));
        let mut to = RouteTarget::Anyone;
        let mut availability = Availability::Available;
        let tp = format!("{rp}/to");
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::kw_anyone => {
                    self.record(&tp, fs);
                    to = RouteTarget::Anyone;
                }
                Rule::kw_owner => {
                    self.record(&tp, fs);
                    to = RouteTarget::Owner;
                }
                Rule::agents => {
                    self.record(&tp, fs);
                    let mut names = Vec::new();
                    for s in f.into_inner().filter(|p| p.as_rule() == Rule::string) {
                        let np = format!("{tp}/agents/{}", names.len());
                        names.push(self.string(s, &np)?);
                    }
                    to = RouteTarget::Agents(names);
                }
                Rule::team => {
                    self.record(&tp, fs);
                    to = RouteTarget::Team(self.string(last(f)?, &format!("{tp}/team"))?);
                }
                Rule::availability => {
                    self.record(&format!("{rp}/availability"), fs);
                    if f.as_str() == "anytime" {
                        availability = Availability::Anyone;
                    }
                }
                _ => {}
            }
        }
        Some(Route {
            to,
            availability,
            assign: None,
        })
    }

    fn capture(&mut self, p: P<'_>, ptr: &str) -> Option<Capture> {
        let mut id = None;
        let mut kind = "lead";
        let mut rec = Rec::default();
        let mut then = None;
        let rp = format!("{ptr}/record");
        for f in p.into_inner() {
            match f.as_rule() {
                Rule::record_type => {
                    kind = match f.as_str() {
                        "deal" => "deal",
                        "activity" => "activity",
                        _ => "lead",
                    };
                    self.record(&rp, span(&f));
                    self.record(&format!("{rp}/type"), span(&f));
                }
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::next => then = self.next(f, ptr),
                r if is_record_field(r) => self.rec_field(f, kind, &rp, &mut rec),
                _ => {}
            }
        }
        let record = match kind {
            "lead" => RecordSpec::Lead(LeadSpec {
                title: rec.title.value,
                person: rec.person.value,
                organization: rec.organization.value,
                value: rec.value.value,
                currency: rec.currency.value,
                owner: rec.owner.value,
                status: rec.status.value,
                source: rec.source.value,
                labels: rec.labels.value.unwrap_or_default(),
                fields: rec.fields,
            }),
            "deal" => RecordSpec::Deal(DealSpec {
                title: rec.title.value,
                value: rec.value.value,
                currency: rec.currency.value,
                pipeline: rec.pipeline.value,
                stage: rec.stage.value,
                person: rec.person.value,
                organization: rec.organization.value,
                owner: rec.owner.value,
                status: rec.status.value,
                labels: rec.labels.value.unwrap_or_default(),
                fields: rec.fields,
            }),
            _ => {
                let Some(activity) = rec.activity.value else {
                    if rec.activity.seen.is_none() {
                        let at = self.map.exact(&rp).unwrap_or_default();
                        self.missing(at, "this activity", "type", "type call");
                    }
                    return None;
                };
                RecordSpec::Activity(ActivitySpec {
                    activity,
                    subject: rec.subject.value,
                    due: rec.due.value,
                    note: rec.note.value,
                    owner: rec.owner.value,
                    link: rec.link.value,
                })
            }
        };
        Some(Capture {
            id: id?,
            record,
            then: then?,
        })
    }

    fn rec_field(&mut self, f: P<'_>, kind: &str, rp: &str, rec: &mut Rec) {
        let fs = span(&f);
        let rule = f.as_rule();
        let (name, json) = field_names(rule);
        let allowed: &[&str] = match kind {
            "lead" => &[
                "title",
                "person",
                "organization",
                "value",
                "currency",
                "owner",
                "status",
                "source",
                "labels",
                "field",
            ],
            "deal" => &[
                "title",
                "value",
                "currency",
                "pipeline",
                "stage",
                "person",
                "organization",
                "owner",
                "status",
                "labels",
                "field",
            ],
            _ => &["type", "subject", "due", "note", "owner", "link"],
        };
        if !allowed.contains(&name) {
            self.error(
                Diagnostic::new(
                    Code::InvalidValue,
                    format!("a {kind} has no `{name}` field"),
                )
                .at_span(fs, "")
                .with_help(format!(
                    "the fields of a {kind} are: {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            return;
        }
        let fp = format!("{rp}/{json}");
        let what = format!("`{name}`");
        macro_rules! tpl {
            ($slot:ident) => {{
                let v = last(f).and_then(|s| self.template(s, &fp));
                rec.$slot.set(v, fs, &what, &mut self.errors);
            }};
        }
        macro_rules! text {
            ($slot:ident) => {{
                let v = last(f).and_then(|s| self.string(s, &fp));
                rec.$slot.set(v, fs, &what, &mut self.errors);
            }};
        }
        match rule {
            Rule::f_title => tpl!(title),
            Rule::f_organization => tpl!(organization),
            Rule::f_value => tpl!(value),
            Rule::f_status => tpl!(status),
            Rule::f_source => tpl!(source),
            Rule::f_subject => tpl!(subject),
            Rule::f_note => tpl!(note),
            Rule::f_currency => text!(currency),
            Rule::f_pipeline => text!(pipeline),
            Rule::f_stage => text!(stage),
            Rule::f_person => {
                self.record(&fp, fs);
                let mut person = PersonSpec::default();
                for part in f.into_inner() {
                    let (slot, key) = match part.as_rule() {
                        Rule::person_name => (&mut person.name, "name"),
                        Rule::person_email => (&mut person.email, "email"),
                        Rule::person_phone => (&mut person.phone, "phone"),
                        _ => continue,
                    };
                    if let Some(s) = last(part) {
                        *slot = self.template(s, &format!("{fp}/{key}"));
                    }
                }
                rec.person.set(Some(person), fs, &what, &mut self.errors);
            }
            Rule::f_owner => {
                self.record(&fp, fs);
                let v = f
                    .into_inner()
                    .find(|p| p.as_rule() != Rule::kw_owner)
                    .and_then(|o| match o.as_rule() {
                        Rule::owner_user => last(o)
                            .and_then(|s| self.string(s, &format!("{fp}/user")))
                            .map(Owner::User),
                        Rule::owner_pool => last(o)
                            .and_then(|s| self.string(s, &format!("{fp}/pool")))
                            .map(Owner::Pool),
                        _ => Some(Owner::Agent),
                    });
                rec.owner.set(v, fs, &what, &mut self.errors);
            }
            Rule::f_labels => {
                self.record(&fp, fs);
                let mut labels = Vec::new();
                for s in f.into_inner().filter(|p| p.as_rule() == Rule::string) {
                    let lp = format!("{fp}/{}", labels.len());
                    if let Some(l) = self.string(s, &lp) {
                        labels.push(l);
                    }
                }
                rec.labels.set(Some(labels), fs, &what, &mut self.errors);
            }
            Rule::f_field => {
                let mut it = f.into_inner().filter(|p| p.as_rule() == Rule::string);
                let (Some(k), Some(v)) = (it.next(), it.next()) else {
                    return;
                };
                let ks = span(&k);
                let Some(key) = self.string(k, &fp) else {
                    return;
                };
                let vp = format!("{rp}/fields/{}", pointer_segment(&key));
                if let Some(first) = rec.field_spans.get(&key) {
                    let d = Diagnostic::new(
                        Code::InvalidValue,
                        format!("the custom field `{key}` is given twice"),
                    )
                    .at_span(ks, "given again here")
                    .at_span(*first, "first given here")
                    .with_help("keep one of them");
                    self.error(d);
                    return;
                }
                rec.field_spans.insert(key.clone(), ks);
                if let Some(t) = self.template(v, &vp) {
                    rec.fields.insert(key, t);
                }
            }
            Rule::f_type => {
                self.record(&fp, fs);
                let v = last(f).map(|t| match t.as_str() {
                    "meeting" => ActivityType::Meeting,
                    "task" => ActivityType::Task,
                    "email" => ActivityType::Email,
                    "deadline" => ActivityType::Deadline,
                    "lunch" => ActivityType::Lunch,
                    _ => ActivityType::Call,
                });
                rec.activity.set(v, fs, &what, &mut self.errors);
            }
            Rule::f_due => {
                let v = last(f).and_then(|d| self.duration(d, &fp));
                rec.due.set(v, fs, &what, &mut self.errors);
            }
            Rule::f_link => {
                self.record(&fp, fs);
                let v = last(f).map(|t| {
                    if t.as_str() == "deal" {
                        LinkTo::Deal
                    } else {
                        LinkTo::Lead
                    }
                });
                rec.link.set(v, fs, &what, &mut self.errors);
            }
            _ => {}
        }
    }

    fn consent(&mut self, p: P<'_>, ptr: &str) -> Option<Consent> {
        let mut id = None;
        let mut mode = ConsentMode::Explicit;
        let mut notice = None;
        let mut then = None;
        let mut agree: Field<String> = Field::default();
        let mut decline: Field<String> = Field::default();
        let mut on_decline: Field<CardId> = Field::default();
        for f in p.into_inner() {
            let fs = span(&f);
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::consent_mode => {
                    self.record(&format!("{ptr}/mode"), fs);
                    if f.as_str() == "implicit" {
                        mode = ConsentMode::Implicit;
                    }
                }
                Rule::string => notice = self.template(f, &format!("{ptr}/notice")),
                Rule::target => then = self.card_id(f, &format!("{ptr}/then")),
                Rule::c_agree => {
                    let v = self.string(last(f)?, &format!("{ptr}/agree"));
                    agree.set(v, fs, "`agree`", &mut self.errors);
                }
                Rule::c_decline => {
                    let v = self.string(last(f)?, &format!("{ptr}/decline"));
                    decline.set(v, fs, "`decline`", &mut self.errors);
                }
                Rule::c_on_decline => {
                    let v = self.card_id(last(f)?, &format!("{ptr}/on_decline"));
                    on_decline.set(v, fs, "`on decline`", &mut self.errors);
                }
                _ => {}
            }
        }
        Some(Consent {
            id: id?,
            mode,
            notice: notice?,
            agree: agree.value,
            decline: decline.value,
            then: then?,
            on_decline: on_decline.value,
        })
    }

    fn end_card(&mut self, p: P<'_>, ptr: &str) -> Option<End> {
        let mut id = None;
        let mut out = Outcome::None;
        for f in p.into_inner() {
            match f.as_rule() {
                Rule::card_id => id = self.card_id(f, &format!("{ptr}/id")),
                Rule::outcome => {
                    self.record(&format!("{ptr}/outcome"), span(&f));
                    out = outcome(f.as_str());
                }
                _ => {}
            }
        }
        Some(End {
            id: id?,
            outcome: out,
        })
    }
}

/// `Rule` the model type, renamed so it does not clash with pest's `Rule`.
type Rule_ = crate::model::Rule;

/// The fields a capture block may hold, for any record type; which ones a type accepts is
/// checked when lowering, so a misplaced field gets a clear message instead of a syntax error.
#[derive(Default)]
struct Rec {
    title: Field<Template>,
    person: Field<PersonSpec>,
    organization: Field<Template>,
    value: Field<Template>,
    currency: Field<String>,
    owner: Field<Owner>,
    status: Field<Template>,
    source: Field<Template>,
    labels: Field<Vec<String>>,
    fields: BTreeMap<String, Template>,
    field_spans: BTreeMap<String, Span>,
    pipeline: Field<String>,
    stage: Field<String>,
    activity: Field<ActivityType>,
    subject: Field<Template>,
    due: Field<Duration>,
    note: Field<Template>,
    link: Field<LinkTo>,
}

fn is_record_field(r: Rule) -> bool {
    !field_names(r).0.is_empty()
}

/// The DSL keyword and JSON key of a capture field rule.
fn field_names(r: Rule) -> (&'static str, &'static str) {
    match r {
        Rule::f_title => ("title", "title"),
        Rule::f_person => ("person", "person"),
        Rule::f_organization => ("organization", "organization"),
        Rule::f_value => ("value", "value"),
        Rule::f_currency => ("currency", "currency"),
        Rule::f_owner => ("owner", "owner"),
        Rule::f_status => ("status", "status"),
        Rule::f_source => ("source", "source"),
        Rule::f_labels => ("labels", "labels"),
        Rule::f_field => ("field", "fields"),
        Rule::f_pipeline => ("pipeline", "pipeline"),
        Rule::f_stage => ("stage", "stage"),
        Rule::f_type => ("type", "activity"),
        Rule::f_subject => ("subject", "subject"),
        Rule::f_due => ("due", "due"),
        Rule::f_note => ("note", "note"),
        Rule::f_link => ("link", "link"),
        _ => ("", ""),
    }
}

fn outcome(s: &str) -> Outcome {
    match s {
        "qualified" => Outcome::Qualified,
        "disqualified" => Outcome::Disqualified,
        _ => Outcome::None,
    }
}

/// The last inner pair (the value after a field's keywords).
fn last(p: P<'_>) -> Option<P<'_>> {
    p.into_inner().last()
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}
