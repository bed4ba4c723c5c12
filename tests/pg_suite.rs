//! The server suites again, each server on PostgreSQL in a schema of its own in
//! `PLAYBOOK_TEST_DATABASE_URL` (`server_common::database` chooses by this crate's name).
//! Without that variable this binary prints one line and passes: there is nothing to run
//! against. `.ci/run` sets it, so there a database that cannot be reached fails the tests.

// Each suite brings its own copy of the shared helpers: they are the same file, compiled as
// the suites expect it.
#![allow(clippy::duplicate_mod)]

#[path = "server.rs"]
mod server;
#[path = "server_api.rs"]
mod server_api;
#[path = "server_kinds.rs"]
mod server_kinds;
#[path = "server_state.rs"]
mod server_state;
