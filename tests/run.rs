//! `playbook run` driven through the binary with piped stdin, over `playbooks/demo.playbook`.

use std::io::Write;
use std::process::{Command, Stdio};

const START: &str = "1700000000000";

fn run(args: &[&str], stdin: &str) -> String {
    run_bytes(args, stdin.as_bytes())
}

fn run_bytes(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg("playbooks/demo.playbook")
        .args(["--start-ms", START])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn playbook");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn snapshot(name: &str, text: &str) {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.bind(|| insta::assert_snapshot!(name, text));
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn text_offline_path_ends_in_a_lead() {
    let out = run(
        &[],
        "2\nDana\nnot an email\ndana@example.com\n/records\n/quit\n",
    );
    assert!(out.contains("  2. Talk to sales\n"));
    // Nobody online: straight to the offline branch, no Unassigned.
    assert!(!out.contains("Connecting you"));
    assert!(out.contains("Ava: That doesn't look like an email address."));
    assert!(out.contains("── lead captured (conv-1/sales_lead) ──"));
    assert!(out.contains("\"email\": \"dana@example.com\""));
    assert!(out.contains("(the conversation ended: qualified"));
    snapshot("run_text_offline", &out);
}

#[test]
fn text_live_chat_pickup_and_close() {
    let out = run(
        &["--agents", "ana,bob"],
        "2\n/agents\nhello?\n/pickup ana\nis anyone there?\n/say ana Hi, Ana here.\n/reassign bob\n/agent Bob now.\n/close\n/close\n/wait 2m\n/nonsense\n/quit\n",
    );
    assert!(out.contains("Ava: Connecting you with our sales team..."));
    assert!(out.contains("(waiting up to 2m for an agent"));
    assert!(out.contains("* ana joined the conversation"));
    // Once the agent closed, the bot's lines are the bot's again.
    assert!(out.contains("Ava: Have a great day!"));
    assert!(out.contains("error: no agent handles this conversation"));
    assert!(out.contains("error: unknown or incomplete command `/nonsense`"));
    snapshot("run_text_live_chat", &out);
}

#[test]
fn text_wait_lets_the_pickup_time_out() {
    let out = run(&["--agents", "ana"], "2\n/wait 2m\n/pickup\n");
    assert!(out.contains("Ava: Sorry, we're all busy right now."));
    assert!(out.contains("Ava: What's your name?"));
    assert!(out.contains("error: the conversation is not waiting for an agent"));
}

#[test]
fn json_offline_path_ends_in_a_lead() {
    let out = run(
        &["--json"],
        concat!(
            r#"{"event":"visitor_choice","index":1}"#,
            "\n",
            r#"{"event":"visitor_text","text":"Dana"}"#,
            "\n",
            "this is not json\n",
            r#"{"event":"pickup"}"#,
            "\n",
            r#"{"event":"visitor_text","text":"dana@example.com"}"#,
            "\n",
            r#"{"event":"records"}"#,
            "\n",
        ),
    );
    let lines = json_lines(&out);
    let errors = lines.iter().filter(|l| l.get("error").is_some()).count();
    assert_eq!(
        errors, 2,
        "bad JSON and a pick-up with nobody online: {out}"
    );
    let record = lines
        .iter()
        .find(|l| l.get("record").is_some())
        .expect("a record line");
    assert_eq!(record["record"]["key"], "conv-1/sales_lead");
    assert_eq!(
        record["record"]["data"]["person"]["email"],
        "dana@example.com"
    );
    assert!(record["transcript"].as_array().is_some_and(|t| t.len() > 3));
    assert!(
        lines
            .iter()
            .any(|l| l["effect"] == "end" && l["outcome"] == "qualified")
    );
    let listed = lines.last().expect("records reply");
    assert_eq!(listed["records"].as_array().map(Vec::len), Some(1));
}

#[test]
fn json_live_chat_pickup_and_close() {
    let out = run(
        &["--json", "--agents", "ana"],
        concat!(
            r#"{"event":"visitor_choice","index":1}"#,
            "\n",
            r#"{"event":"pickup","agent":"ana"}"#,
            "\n",
            r#"{"event":"visitor_text","text":"hi"}"#,
            "\n",
            r#"{"event":"agent_message","text":"Hello from Ana"}"#,
            "\n",
            r#"{"event":"close"}"#,
            "\n",
            r#"{"event":"create_record","kind":"deal","details":{"title":"Team plan","value":1200}}"#,
            "\n",
            r#"{"event":"quit"}"#,
            "\n",
            r#"{"event":"visitor_text","text":"never read"}"#,
            "\n",
        ),
    );
    let lines = json_lines(&out);
    assert!(lines.iter().any(|l| l["effect"] == "enter_unassigned"));
    assert!(
        lines
            .iter()
            .any(|l| l["notification"] == "entered_unassigned" && l["agent"] == "ana")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["effect"] == "relay_to_agent" && l["agent"] == "ana")
    );
    assert!(lines.iter().any(|l| l["notification"] == "message_arrived"));
    assert!(lines.iter().any(|l| l["effect"] == "say"
        && l["from"]["role"] == "agent"
        && l["text"] == "Hello from Ana"));
    assert!(lines.iter().any(|l| l["effect"] == "end"));
    let deal = lines
        .iter()
        .find(|l| l.get("record").is_some())
        .expect("deal");
    assert_eq!(deal["record"]["key"], "conv-1/#desk-1");
    assert_eq!(deal["record"]["owner"], "ana");
    assert!(!out.contains("never read"));
    assert!(lines.iter().all(|l| l.get("error").is_none()), "{out}");
}

/// A line that is not UTF-8 is reported as an error line and the session goes on.
#[test]
fn a_line_that_is_not_utf8_is_an_error_not_the_end() {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"event\":\"visitor_text\",\"text\":\"caf\xe9\"}\n");
    input.extend_from_slice(b"{\"event\":\"visitor_choice\",\"index\":1}\n");
    let out = run_bytes(&["--json"], &input);
    let lines = json_lines(&out);
    let errors: Vec<_> = lines.iter().filter_map(|l| l.get("error")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.contains("not valid UTF-8")),
        "{out}"
    );
    // The next line was still read: the choice led on to the sales question.
    assert!(
        out.contains("Connecting you") || out.contains("What's your name?"),
        "{out}"
    );

    let out = run_bytes(&[], b"\xff\xfe\n2\n/quit\n");
    assert!(out.contains("error: the line is not valid UTF-8"), "{out}");
    assert!(out.contains("What's your name?"), "{out}");
}

/// JSON lines become the hub's `Command`s: defaults are resolved first (the first online
/// agent picks up, the handling agent reassigns), presence is a desk command, unknown fields
/// and events are refused, and the engine's `entered` reports are printed.
#[test]
fn json_lines_resolve_defaults_and_refuse_unknown_fields() {
    let out = run(
        &["--json", "--agents", "ana,bob"],
        concat!(
            r#"{"event":"visitor_choice","index":1}"#,
            "\n",
            r#"{"event":"pickup","agnet":"bob"}"#,
            "\n",
            r#"{"event":"pickup"}"#,
            "\n",
            r#"{"event":"reassign","to":"bob"}"#,
            "\n",
            r#"{"event":"presence","agent":"ana","presence":"away"}"#,
            "\n",
            r#"{"event":"start"}"#,
            "\n",
        ),
    );
    let lines = json_lines(&out);
    let errors: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.get("error").and_then(|e| e.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            "bad event: unknown field `agnet` for `pickup`",
            "bad event: unknown event `start`"
        ],
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["effect"] == "say" && l["text"] == "ana joined the conversation")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["effect"] == "say" && l["text"] == "bob joined the conversation")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["presence"] == "away" && l["agent"] == "ana")
    );
    assert!(lines.iter().any(|l| l["effect"] == "entered"
        && l["card"] == "sales"
        && l["via"]["from"] == "welcome"
        && l["via"]["link"]["answer"] == 1));
}
