//! `playbook`: an open chatbot playbook flow interpreter.
//!
//! Sales teams qualify website visitors with bots: a *playbook* is a graph of cards (messages,
//! questions, typed input, branches, a live-chat handoff, consent, and capture cards that make
//! CRM leads, deals and activities). This crate reads playbooks written in a small DSL or in
//! JSON, checks them, and runs them.
//!
//! The data flows one way: text → [`model`] → [`graph`] → checked [`Program`] → engine.
//! [`load`] is the way in, in two stages: parse (text → playbook and source map), then check
//! (every check runs; only a playbook without errors becomes a [`Program`]). The
//! [`engine`] is a sans-I/O state machine over that program: an event and a `now` in,
//! effects out.
//!
//! ```
//! use playbook::engine::{Effect, Engine, Event, Instant, NoDesk, Session};
//!
//! let text = r#"
//! playbook "Hello" { start hi }
//! message hi "Hi there!" end
//! "#;
//! // Parse: the file name picks the reader (`.json` is JSON, anything else the DSL).
//! let parsed = playbook::load::parse_text("hello.playbook", text).expect("it parses");
//! // Check: the program comes only from here; warnings are kept beside it.
//! let loaded = parsed.check().expect("it has no errors");
//! assert!(loaded.warnings.is_empty());
//! // Run: one engine, any number of sessions; a step turns an event into effects.
//! let engine = Engine::new(loaded.program);
//! let mut session = Session::new();
//! let start = Event::Start {
//!     conversation: "conv-1".into(),
//!     channel: Default::default(),
//!     page_url: None,
//!     contact_owner: None,
//!     said: None,
//! };
//! let effects = engine
//!     .step_vec(&mut session, start, Instant(0), &NoDesk)
//!     .expect("a new session starts");
//! assert!(effects.iter().any(|e| matches!(e, Effect::Say { text, .. } if text == "Hi there!")));
//! assert!(effects.iter().any(|e| matches!(e, Effect::End { .. })));
//!
//! // A playbook with errors is refused with every diagnostic, rendered against its text.
//! let broken = "playbook \"Hello\" { start hi }\nmessage hi \"Hi!\" -> nowhere\n";
//! let invalid = playbook::load::text("broken.playbook", broken).unwrap_err();
//! assert_eq!(invalid.stage, playbook::load::Stage::Check);
//! let theme = miette::GraphicalTheme::unicode_nocolor();
//! assert!(invalid.source.render(invalid.errors(), &theme)[0].contains("nowhere"));
//! ```

pub mod bench;
pub mod capture;
pub mod check;
pub mod cli;
pub mod crm;
pub mod desk;
pub mod diagnostic;
pub mod engine;
pub mod graph;
pub mod load;
pub mod model;
pub mod persist;
pub mod program;
pub mod runtime;
pub mod scenario;
pub mod secret;
pub mod server;
pub mod source;
pub mod stats;
pub mod store;
pub mod syntax;

pub use program::{CardIx, Program};
