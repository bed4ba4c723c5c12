//! `playbook`: an open chatbot playbook flow interpreter.
//!
//! Sales teams qualify website visitors with bots: a *playbook* is a graph of cards (messages,
//! questions, typed input, branches, a live-chat handoff, consent, and capture cards that make
//! CRM leads, deals and activities). This crate reads playbooks written in a small DSL or in
//! JSON, checks them, and runs them.
//!
//! The data flows one way: text → [`model`] → [`graph`] → checked [`Program`] → engine.
//!
//! ```
//! let text = r#"
//! playbook "Hello" { start hi }
//! message hi "Hi there!" end
//! "#;
//! let (playbook, _spans) = playbook::syntax::parse(text).expect("parses");
//! let checked = playbook::check::check(playbook);
//! assert!(!checked.has_errors());
//! ```

pub mod capture;
pub mod check;
pub mod cli;
pub mod desk;
pub mod diagnostic;
pub mod engine;
pub mod graph;
pub mod model;
pub mod persist;
pub mod program;
pub mod runtime;
pub mod server;
pub mod source;
pub mod syntax;

pub use program::{CardIx, Program};
