//! Shared helpers for the runtime tests: the demo playbook, a desk, a start time.

#![allow(dead_code)]

use playbook::desk::{Desk, Presence};
use playbook::engine::{Engine, Instant};

/// A Tuesday morning, in ms since the epoch.
pub const T0: Instant = Instant(1_700_000_000_000);

/// `ms` after [`T0`].
pub fn at(ms: u64) -> Instant {
    T0.after_ms(ms)
}

/// Compiles a playbook file of `playbooks/`.
pub fn engine(file: &str) -> Engine {
    let path = format!("{}/playbooks/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("playbook file");
    let (pb, _) = playbook::syntax::read(&path, &text).expect("parses");
    Engine::new(playbook::check::check(pb).into_result().expect("checks"))
}

/// A desk with the given agents online in team "Sales" and a pool "Inbound SDRs".
pub fn desk(agents: &[&str]) -> Desk {
    let mut d = Desk::new();
    for a in agents {
        d.add_agent(a, Presence::Online);
    }
    d.add_team("Sales", agents).expect("agents exist");
    d.add_pool("Inbound SDRs", &["sam", "tia"]);
    d
}
