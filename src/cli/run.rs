//! `playbook run FILE`: talk to a playbook in the terminal, as the visitor and (with `/`
//! commands) as the agents, or drive it with JSON lines (`--json`).
//!
//! Thin over [`crate::runtime::Hub`]: one conversation, `conv-1`. Typed lines and JSON lines
//! become the same [`Command`]s the server and scenarios send (defaults such as "the first
//! online agent" are filled in first); only waiting, listing and quitting are `run`'s own.
//! Time is virtual: the clock
//! starts at the wall clock (or `--start-ms`) and moves only with `/wait` (or a `wait`
//! event), so nobody sits out a two-minute wait timer and transcripts are reproducible.
//! Simulated agents from `--agents` are online and belong to every team a live-chat card
//! routes to and to every distribution pool a capture card names.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, print_err, theme};
use crate::capture::{RecordData, Stored};
use crate::desk::{Desk, Presence};
use crate::engine::{Channel, Effect, Instant, Speaker, Status};
use crate::load::LoadError;
use crate::model::DeskRef;
use crate::runtime::{Command, Hub, HubError, Outputs, StartOptions};

/// The id of the one conversation `run` holds.
pub const CONVERSATION: &str = "conv-1";

/// One line of input, typed or a `--json` protocol line: a [`Command`] for the conversation
/// or the desk (the same vocabulary the server and scenarios use), or a request only the REPL
/// knows. Both kinds of line are parsed into it and dispatched by one function.
#[derive(Debug)]
enum Input {
    Command(Box<Command>),
    Repl(Repl),
}

/// What only `run` does: let time pass, list things, leave. Tagged like a [`Command`]
/// (`{"event":"wait","duration":"2m"}`).
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
enum Repl {
    Wait {
        duration: String,
    },
    Records,
    Agents,
    Quit,
    /// `/help`: only typed, never a JSON event.
    #[serde(skip_deserializing)]
    Help,
}

/// The `event` tags [`Repl`] reads; every other tag is a [`Command`].
const REPL_EVENTS: [&str; 4] = ["wait", "records", "agents", "quit"];

/// The `event` tags of the protocol that are commands (the README's table). `start` is not
/// one: `run` starts its conversation itself.
const COMMAND_EVENTS: [&str; 8] = [
    "visitor_text",
    "visitor_choice",
    "pickup",
    "agent_message",
    "reassign",
    "close",
    "presence",
    "create_record",
];

const NO_HANDLER: &str = "no agent handles this conversation (use /pickup first)";
const NO_AGENT: &str = "no agent is online (start with --agents ana,bob)";

struct Run {
    hub: Hub,
    agents: Vec<String>,
    now: Instant,
    json: bool,
    channel: Channel,
    out: std::io::StdoutLock<'static>,
}

/// Runs `playbook run`.
pub fn run(path: &Path, agents: &[String], json: bool, start_ms: Option<u64>) -> u8 {
    let loaded = match crate::load::file(path) {
        Ok(loaded) => loaded,
        Err(e @ LoadError::Io { .. }) => {
            print_err(&format!("error: {e}\n"));
            return EXIT_USAGE;
        }
        Err(LoadError::Invalid(invalid)) => {
            print_err(&invalid.render(&theme()));
            return EXIT_ERRORS;
        }
    };
    print_err(&loaded.source.render(&loaded.warnings, &theme()).concat());
    let program = loaded.program;
    let agents: Vec<String> = agents
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let desk = simulated_desk(&program, &agents);
    let now = Instant(start_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }));
    let mut r = Run {
        hub: Hub::from_program(program, desk),
        agents,
        now,
        json,
        channel: if json {
            Channel::Api
        } else {
            Channel::Terminal
        },
        out: std::io::stdout().lock(),
    };
    if !json {
        r.line(&format!(
            "(talking to {}: type answers, or /help for agent commands)",
            path.display()
        ));
    }
    let opts = StartOptions {
        channel: r.channel,
        ..Default::default()
    };
    let started = r.hub.start(CONVERSATION, opts, now);
    r.show(started);
    let stdin = std::io::stdin();
    let echo = !json && !stdin.is_terminal();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        if !json {
            r.raw("you> ");
        }
        line.clear();
        // Bytes, not `read_line`: one line that is not UTF-8 is reported and skipped instead
        // of ending the session.
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                print_err(&format!("error: cannot read stdin: {e}\n"));
                return EXIT_USAGE;
            }
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim_end_matches(['\n', '\r']),
            Err(e) => {
                if echo {
                    let lossy = String::from_utf8_lossy(&line);
                    r.raw(&format!("{}\n", lossy.trim_end_matches(['\n', '\r'])));
                }
                r.error(&format!(
                    "the line is not valid UTF-8 (at byte {}); it was skipped",
                    e.valid_up_to() + 1
                ));
                continue;
            }
        };
        if echo {
            r.raw(&format!("{text}\n"));
        }
        let line = if json {
            parse_json_line(text)
        } else {
            parse_text_line(text)
        };
        let go_on = match line.and_then(|l| l.map(|v| r.input(v, !json)).transpose()) {
            Ok(None) => true,
            Ok(Some(input)) => r.dispatch(input),
            Err(e) => {
                r.error(&e);
                true
            }
        };
        if !go_on {
            break;
        }
    }
    if !json {
        r.raw("\n");
    }
    EXIT_OK
}

/// The desk `run` simulates: the given agents online, in every team and pool the playbook
/// names.
fn simulated_desk(program: &crate::Program, agents: &[String]) -> Desk {
    let mut desk = Desk::new();
    for a in agents {
        desk.add_agent(a, Presence::Online);
    }
    let names: Vec<&str> = agents.iter().map(String::as_str).collect();
    for (_, r) in program.playbook().desk_refs() {
        match r {
            // Every member is an agent added above, so this cannot fail.
            DeskRef::Team(t) => {
                let _ = desk.add_team(t, &names);
            }
            DeskRef::Pool(p) => desk.add_pool(p, &names),
            // `route agents` names its agents: the simulated ones are the ones online.
            DeskRef::Agent(_) => {}
        }
    }
    desk
}

const HELP: &str = "\
Type an answer to talk as the visitor (a button by its number or its label).
Agent commands:
  /agents                       list agents, their presence, and the conversation's state
  /pickup [AGENT]               an agent assigns the waiting chat to themselves
  /say AGENT TEXT               an agent writes to the visitor
  /agent TEXT                   the agent handling the chat writes to the visitor
  /reassign AGENT               the handling agent passes the chat to another online agent
  /close                        the handling agent closes the chat
  /presence AGENT online|away|offline
  /wait DURATION                let virtual time pass, e.g. /wait 2m (timers fire)
  /records                      show the records captured so far
  /help                         this text
  /quit                         leave";

/// A `--json` line as a JSON object; `None` for a blank line.
fn parse_json_line(text: &str) -> Result<Option<Value>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("bad event: {e}"))
}

/// A typed line as the protocol line it stands for: a slash command, or else what the
/// visitor says; `None` for a blank line. Fields left out (the agent of `/pickup`, the
/// channel) are filled in by [`Run::input`], as for JSON lines.
fn parse_text_line(text: &str) -> Result<Option<Value>, String> {
    let Some(cmd) = text.strip_prefix('/') else {
        if text.trim().is_empty() {
            return Ok(None);
        }
        return Ok(Some(json!({"event": "visitor_text", "text": text})));
    };
    let (name, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    let rest = rest.trim();
    let event = match name {
        "help" | "?" => json!({"event": "help"}),
        "quit" | "exit" | "q" => json!({"event": "quit"}),
        "agents" => json!({"event": "agents"}),
        "records" => json!({"event": "records"}),
        "wait" if !rest.is_empty() => json!({"event": "wait", "duration": rest}),
        "pickup" if rest.is_empty() => json!({"event": "pickup"}),
        "pickup" => json!({"event": "pickup", "agent": rest}),
        "say" if rest.contains(' ') => {
            let (agent, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            json!({"event": "agent_message", "agent": agent, "text": msg.trim()})
        }
        "agent" if !rest.is_empty() => json!({"event": "agent_message", "text": rest}),
        "reassign" if !rest.is_empty() => json!({"event": "reassign", "to": rest}),
        "close" => json!({"event": "close"}),
        "presence" => {
            let (agent, p) = rest.split_once(' ').unwrap_or((rest, ""));
            match serde_json::from_value::<Presence>(json!(p.trim())) {
                Ok(presence) => json!({"event": "presence", "agent": agent, "presence": presence}),
                Err(_) => return Err("usage: /presence AGENT online|away|offline".into()),
            }
        }
        _ => {
            return Err(format!(
                "unknown or incomplete command `/{cmd}`; /help lists them"
            ));
        }
    };
    Ok(Some(event))
}

impl Run {
    fn raw(&mut self, s: &str) {
        let _ = self
            .out
            .write_all(s.as_bytes())
            .and_then(|()| self.out.flush());
    }

    fn line(&mut self, s: &str) {
        self.raw(&format!("{s}\n"));
    }

    fn json(&mut self, v: &impl serde::Serialize) {
        let s = serde_json::to_string(v)
            .unwrap_or_else(|e| json!({"error": e.to_string()}).to_string());
        self.line(&s);
    }

    fn error(&mut self, msg: &str) {
        if self.json {
            self.json(&json!({ "error": msg }));
        } else {
            self.line(&format!("error: {msg}"));
        }
    }

    fn handler(&self) -> Option<String> {
        self.hub
            .session(CONVERSATION)
            .filter(|s| s.phase() == crate::engine::Phase::Live)
            .and_then(|s| s.agent())
            .map(str::to_owned)
    }

    fn default_agent(&self) -> Option<String> {
        self.agents
            .iter()
            .find(|a| self.hub.desk().presence(a) == Some(Presence::Online))
            .cloned()
    }

    fn wait(&mut self, d: &str) -> Result<Outputs, String> {
        let d: crate::model::Duration = d.trim().parse().map_err(|e| format!("{e}"))?;
        self.now = self.now.after_ms(d.as_millis());
        Ok(self.hub.advance(self.now))
    }

    fn show(&mut self, r: Result<Outputs, HubError>) {
        match r {
            Ok(o) => self.outputs(o),
            Err(e) => self.error(&e.to_string()),
        }
    }

    /// A protocol line as an [`Input`]: a REPL request, or a [`Command`] with the defaults
    /// the protocol promises filled in first (the visitor's channel, the first online agent
    /// for a pick-up, the handling agent for writing, reassigning and closing). `/help` is
    /// only for typed lines.
    fn input(&self, mut v: Value, typed: bool) -> Result<Input, String> {
        let event = v
            .get("event")
            .and_then(Value::as_str)
            .ok_or("bad event: a JSON object with an `event` field is expected")?
            .to_owned();
        if typed && event == "help" {
            return Ok(Input::Repl(Repl::Help));
        }
        if REPL_EVENTS.contains(&event.as_str()) {
            return serde_json::from_value(v)
                .map(Input::Repl)
                .map_err(|e| format!("bad event: {e}"));
        }
        if !COMMAND_EVENTS.contains(&event.as_str()) {
            return Err(format!("bad event: unknown event `{event}`"));
        }
        let given: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let Some(fields) = v.as_object_mut() else {
            return Err("bad event: a JSON object is expected".into());
        };
        let mut fill = |field: &str, value: Option<Value>, missing: &str| {
            if fields.get(field).is_none_or(Value::is_null) {
                fields.insert(field.to_owned(), value.ok_or_else(|| missing.to_owned())?);
            }
            Ok::<_, String>(())
        };
        let handler = self.handler().map(Value::from);
        match event.as_str() {
            "visitor_text" | "visitor_choice" => {
                fill("channel", Some(json!(self.channel)), "")?;
            }
            "pickup" => fill("agent", self.default_agent().map(Value::from), NO_AGENT)?,
            "agent_message" => fill("agent", handler, NO_HANDLER)?,
            "reassign" => fill("by", handler, NO_HANDLER)?,
            "close" => fill("agent", handler, NO_HANDLER)?,
            "create_record" => {
                let agent = handler.or_else(|| self.default_agent().map(Value::from));
                fill("agent", agent, NO_AGENT)?;
            }
            _ => {}
        }
        let cmd: Command = serde_json::from_value(v).map_err(|e| format!("bad event: {e}"))?;
        // Command itself reads leniently (it is also the server's stored form); the protocol
        // refuses fields it does not know, so a typo is not silently replaced by a default.
        let known = serde_json::to_value(&cmd).unwrap_or_default();
        if let Some(f) = given.iter().find(|f| known.get(f.as_str()).is_none()) {
            return Err(format!("bad event: unknown field `{f}` for `{event}`"));
        }
        Ok(Input::Command(Box::new(cmd)))
    }

    /// Carries out one input; `false` means quit.
    fn dispatch(&mut self, input: Input) -> bool {
        let r = match input {
            Input::Repl(Repl::Quit) => return false,
            Input::Repl(Repl::Help) => {
                self.line(HELP);
                return true;
            }
            Input::Repl(Repl::Records) => {
                let records = self.hub.ledger().records().to_vec();
                if self.json {
                    self.json(&json!({ "records": records }));
                } else {
                    if records.is_empty() {
                        self.line("(no records yet)");
                    }
                    for s in &records {
                        self.record_text(s);
                    }
                }
                return true;
            }
            Input::Repl(Repl::Agents) => {
                if self.json {
                    let list: Vec<_> = self
                        .agents
                        .iter()
                        .map(|a| json!({"agent": a, "presence": self.hub.desk().presence(a)}))
                        .collect();
                    self.json(&json!({ "agents": list }));
                } else {
                    self.agents_text();
                }
                return true;
            }
            Input::Repl(Repl::Wait { duration }) => self.wait(&duration),
            Input::Command(cmd) => {
                let presence = match &*cmd {
                    Command::Presence { agent, presence } => Some((agent.clone(), *presence)),
                    _ => None,
                };
                let r = self.hub.apply(CONVERSATION, *cmd, self.now);
                if let (Ok(_), Some((agent, presence))) = (&r, presence) {
                    if self.json {
                        self.json(&json!({"presence": presence, "agent": agent}));
                    } else {
                        self.line(&format!(
                            "  [desk] {agent} is now {}",
                            presence_name(presence)
                        ));
                    }
                }
                r.map_err(|e| e.to_string())
            }
        };
        match r {
            Ok(o) => self.outputs(o),
            Err(e) => self.error(&e),
        }
        true
    }

    fn outputs(&mut self, o: Outputs) {
        if self.json {
            for e in &o.effects {
                self.json(&e.effect);
            }
            for n in &o.notifications {
                self.json(n);
            }
            for s in &o.records {
                self.json(s);
            }
            for e in &o.sink_errors {
                self.error(e);
            }
            return;
        }
        for e in &o.effects {
            self.effect_text(&e.effect);
        }
        for n in &o.notifications {
            let s = match n {
                crate::desk::Notification::EnteredUnassigned { agent, .. } => {
                    format!(
                        "  [desk] {agent}: a conversation is waiting in Unassigned (/pickup {agent})"
                    )
                }
                crate::desk::Notification::MessageArrived { agent, .. } => {
                    format!("  [desk] {agent}: new message from the visitor")
                }
                crate::desk::Notification::AssignedToYou { agent, .. } => {
                    format!("  [desk] {agent}: a conversation was assigned to you")
                }
            };
            self.line(&s);
        }
        for s in &o.records {
            self.record_text(s);
        }
    }

    fn effect_text(&mut self, e: &Effect<'_>) {
        let who = |s: &Speaker<'_>| match s {
            Speaker::System => "*".to_owned(),
            other => format!("{}:", other.name()),
        };
        match e {
            Effect::Say { from, text, .. } => self.line(&format!("{} {text}", who(from))),
            Effect::Ask {
                from,
                text,
                buttons,
                ..
            } => {
                self.line(&format!("{} {text}", who(from)));
                for (i, b) in buttons.iter().enumerate() {
                    self.line(&format!("  {}. {b}", i + 1));
                }
            }
            Effect::RelayToAgent { agent, .. } => {
                let to = agent.as_deref().unwrap_or("Unassigned");
                self.line(&format!("  (delivered to {to})"));
            }
            Effect::SetTimer(t) if t.kind == crate::engine::TimerKind::Wait => {
                let secs = t.at.0.saturating_sub(self.now.0) / 1000;
                let d = crate::model::Duration::from_secs(secs as u32)
                    .map_or_else(|| format!("{secs}s"), |d| d.to_string());
                self.line(&format!(
                    "  (waiting up to {d} for an agent: /pickup, or /wait {d} to let it time out)"
                ));
            }
            Effect::End { outcome } => {
                let o = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.line(&format!("(the conversation ended: {o}; /records, /quit)"));
            }
            Effect::Failed(f) => self.line(&format!("(the conversation failed: {f})")),
            _ => {}
        }
    }

    fn record_text(&mut self, s: &Stored) {
        let kind = match &s.record.data {
            RecordData::Lead(_) => "lead",
            RecordData::Deal(_) => "deal",
            RecordData::Activity(_) => "activity",
        };
        self.line(&format!("── {kind} captured ({}) ──", s.record.key));
        let text = serde_json::to_string_pretty(&s.record).unwrap_or_default();
        self.line(&text);
    }

    fn agents_text(&mut self) {
        if self.agents.is_empty() {
            self.line("(no agents: start with --agents ana,bob)");
        }
        for a in self.agents.clone() {
            let p = self.hub.desk().presence(&a).map_or("?", presence_name);
            self.line(&format!("  {a}: {p}"));
        }
        let state = self
            .hub
            .desk()
            .conversation(CONVERSATION)
            .map(|c| format!("{:?}", c.state))
            .unwrap_or_else(|| "not on the desk".into());
        let status = match self.hub.session(CONVERSATION).map(|s| s.status()) {
            Some(Status::Ended(_)) => "ended",
            Some(Status::Failed) => "failed",
            _ => "open",
        };
        self.line(&format!(
            "  conversation {CONVERSATION}: {status}, desk: {state}"
        ));
    }
}

fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    }
}
