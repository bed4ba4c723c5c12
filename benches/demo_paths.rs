//! Five conversations of `playbooks/demo.playbook`, as steps on a [`Hub`] from a start at
//! `t`: a qualified demo request with a re-prompted email (a lead), a sales chat an agent
//! picks up and closes, a sales chat nobody picks up that falls back to the offline form (a
//! lead), a company too small, a visitor just browsing. Shared by the benches that seed data.

use playbook::engine::{Channel, Instant};
use playbook::runtime::{Command, Hub};

/// The id the paths' conversation runs under.
pub const ID: &str = "c_feedfacefeedfaceabcd";

/// One path: steps on a hub whose conversation [`ID`] started at `t`.
pub type Step = fn(&mut Hub, u64) -> Result<(), playbook::runtime::HubError>;

fn choice(i: usize) -> Command {
    Command::VisitorChoice {
        index: i,
        channel: Channel::Web,
    }
}
fn text(t: &str) -> Command {
    Command::VisitorText {
        text: t.into(),
        channel: Channel::Web,
    }
}
fn ap(h: &mut Hub, c: Command, at: u64) -> Result<(), playbook::runtime::HubError> {
    h.apply(ID, c, Instant(at)).map(drop)
}
/// The five paths, with their names.
pub fn paths() -> [(&'static str, Step); 5] {
    [
        (
            "qualified demo request (lead, re-prompted email)",
            |h, t| {
                ap(h, choice(0), t + 4_000)?;
                ap(h, choice(1), t + 9_000)?;
                ap(h, text("Ann"), t + 15_000)?;
                ap(h, text("ann at acme"), t + 24_000)?;
                ap(h, text("ann@acme.example"), t + 31_000)
            },
        ),
        ("sales chat picked up and closed by an agent", |h, t| {
            ap(h, choice(1), t + 4_000)?;
            let agent = || "ana".to_owned();
            ap(h, Command::Pickup { agent: agent() }, t + 20_000)?;
            ap(
                h,
                Command::AgentMessage {
                    agent: agent(),
                    text: "Hi! Happy to help — what would you like to know?".into(),
                },
                t + 30_000,
            )?;
            ap(h, text("Do you have an annual plan?"), t + 50_000)?;
            ap(
                h,
                Command::AgentMessage {
                    agent: agent(),
                    text: "Yes, two months free. I'll send the details.".into(),
                },
                t + 70_000,
            )?;
            ap(h, Command::Close { agent: agent() }, t + 90_000)
        }),
        (
            "sales chat nobody picked up, offline form (lead)",
            |h, t| {
                ap(h, choice(1), t + 4_000)?;
                h.advance(Instant(t + 4_000 + 121_000));
                ap(h, text("Bo"), t + 140_000)?;
                ap(h, text("bo@example.com"), t + 150_000)
            },
        ),
        ("company too small", |h, t| {
            ap(h, choice(0), t + 4_000)?;
            ap(h, choice(0), t + 8_000)
        }),
        ("just browsing", |h, t| ap(h, choice(2), t + 5_000)),
    ]
}
