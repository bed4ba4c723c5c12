//! The DSL parser, formatter and JSON reader on hand-written inputs: the full example from the
//! language reference, pointers in the source map, and rendered syntax/lowering errors.

use playbook::diagnostic::{Code, Diagnostic};
use playbook::model::*;
use playbook::source::{SourceFile, SourceMap};
use playbook::syntax;

/// Every construct of the language, as in docs/language.md.
pub const EXAMPLE: &str = r#"# comments run to the end of the line
playbook "Website demo requests" {
  bot "Ava"
  language en
  start welcome
  greeting "Hi, I'm Ava."
  idle capture 24h        # limits.idle_capture
  max steps 50            # limits.max_steps
}

message thanks "Thanks! We'll be in touch at {email}." end qualified   # Next::End(Qualified)
message intro "Let's get started." -> welcome

question welcome "Hi! What brings you here today?" save intent {
  "Book a demo"   -> size
  "Talk to sales" -> sales
  free text -> other          # optional
  idle 5m nudge "Still there?"
}

ask email "What's your work email?" expect email save email -> lead
ask phone "Your phone?" expect phone save phone -> done {
  reprompt "That doesn't look like a phone number."
  give up after 3 -> no_phone
  idle 10m nudge "Take your time."
}
ask code "Code?" expect pattern "[A-Z]{2}[0-9]+" save code -> done

branch route {
  when size is "200+" -> enterprise
  when size in ("11-200", "200+") -> mid
  when email is set -> known
  when email is not set -> ask_email
  when employees >= 50 -> big        # numbers like 10, -2.5
  else -> small
}

livechat sales {
  online  "Connecting you with our sales team..."
  wait    2m
  offline "Sorry, we're all busy. Leave your email and we'll get back to you."
  route   team "Sales" available
  on closed  -> bye
  on offline -> email
  on timeout -> email                # optional
}

capture lead lead {
  title  "Demo request ({size})"
  person name "{name}" email "{email}" phone "{phone}"
  organization "{company}"
  value "{budget}"
  currency "EUR"
  owner pool "Inbound SDRs"
  status "New"
  source "Chatbot"
  labels "hot", "demo"
  field "Company size" "{size}"
} -> thanks
capture deal big_deal { title "Big {x}" value "5000" currency "EUR" pipeline "Sales" stage "Qualified" person email "{email}" owner agent } -> next
capture activity callback {
  type call
  subject "Call back {name}"
  due 1d
  note "Asked for a call"
  owner pool "SDRs"
  link deal
} end qualified

consent gdpr explicit "We store your answers to contact you. OK?" -> welcome {
  agree "Yes, that's fine"
  decline "No"
  on decline -> bye
}
consent notice implicit "By chatting you agree to our privacy policy." -> welcome

end done qualified
end bye              # outcome none
"#;

fn parse(text: &str) -> (Playbook, SourceMap) {
    match syntax::parse(text) {
        Ok(x) => x,
        Err(ds) => panic!("{}", render_all(text, &ds)),
    }
}

fn render_all(text: &str, ds: &[Diagnostic]) -> String {
    let file = SourceFile::new("test.playbook", text);
    ds.iter()
        .map(|d| d.render(&file, &SourceMap::new()))
        .collect()
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match syntax::parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ds) => ds,
    }
}

fn snippet<'a>(text: &'a str, map: &SourceMap, ptr: &str) -> &'a str {
    let s = map
        .exact(ptr)
        .unwrap_or_else(|| panic!("no span for {ptr}"));
    &text[s.start..s.end]
}

#[test]
fn the_example_parses_to_the_expected_model() {
    let (p, _) = parse(EXAMPLE);
    assert_eq!(p.playbook.name, "Website demo requests");
    assert_eq!(p.playbook.bot.as_deref(), Some("Ava"));
    assert_eq!(p.playbook.language.as_deref(), Some("en"));
    assert_eq!(p.playbook.start.as_str(), "welcome");
    assert_eq!(p.playbook.limits.max_steps.map(|n| n.get()), Some(50));
    assert_eq!(
        p.playbook.limits.idle_capture.map(Duration::as_secs),
        Some(86_400)
    );
    assert_eq!(p.cards.len(), 15);
    let Card::Message(m) = &p.cards[0] else {
        panic!()
    };
    assert_eq!(m.then, Next::End(Outcome::Qualified));
    let Card::Question(q) = &p.cards[2] else {
        panic!()
    };
    assert_eq!(q.answers.len(), 2);
    assert_eq!(q.free_text.as_ref().map(CardId::as_str), Some("other"));
    assert_eq!(q.save.as_ref().map(VarName::as_str), Some("intent"));
    let Card::Ask(a) = &p.cards[4] else { panic!() };
    assert_eq!(a.give_up.as_ref().map(|g| g.after.get()), Some(3));
    assert_eq!(a.expect, InputKind::Phone);
    let Card::Branch(b) = &p.cards[6] else {
        panic!()
    };
    assert_eq!(b.rules.len(), 5);
    assert!(matches!(
        &b.rules[4].when,
        Condition::Compare { cmp: Comparison::Ge, value, .. } if *value == 50.0
    ));
    let Card::LiveChat(l) = &p.cards[7] else {
        panic!()
    };
    assert_eq!(l.route.to, RouteTarget::Team("Sales".into()));
    assert_eq!(l.wait.as_secs(), 120);
    let Card::Capture(c) = &p.cards[8] else {
        panic!()
    };
    let RecordSpec::Lead(lead) = &c.record else {
        panic!()
    };
    assert_eq!(lead.labels, ["hot", "demo"]);
    assert_eq!(lead.owner, Some(Owner::Pool("Inbound SDRs".into())));
    assert_eq!(lead.fields.len(), 1);
    let Card::Capture(c) = &p.cards[10] else {
        panic!()
    };
    let RecordSpec::Activity(act) = &c.record else {
        panic!()
    };
    assert_eq!(act.link, Some(LinkTo::Deal));
    assert_eq!(c.then, Next::End(Outcome::Qualified));
    let Card::Consent(k) = &p.cards[12] else {
        panic!()
    };
    assert_eq!(k.mode, ConsentMode::Implicit);
    assert!(matches!(&p.cards[14], Card::End(e) if e.outcome == Outcome::None));
}

#[test]
fn source_map_uses_the_models_json_pointers() {
    let (p, map) = parse(EXAMPLE);
    let json: serde_json::Value = serde_json::from_str(&to_json(&p)).unwrap();
    for (ptr, text) in [
        ("/playbook/start", "welcome"),
        ("/playbook/limits/max_steps", "50"),
        ("/cards/0/id", "thanks"),
        ("/cards/7/kind", "livechat"),
        ("/cards/8/record/type", "lead"),
        ("/cards/6/rules/4/when/value", "50"),
        ("/cards/3/expect", "expect email"),
        ("/cards/0/then/end", "qualified"),
        ("/cards/1/then/goto", "welcome"),
        ("/cards/2/answers/1/to", "sales"),
        ("/cards/2/answers/1/label", "\"Talk to sales\""),
        ("/cards/2/free_text", "other"),
        ("/cards/2/idle/after", "5m"),
        ("/cards/2/idle/then/nudge", "\"Still there?\""),
        ("/cards/3/then", "lead"),
        ("/cards/4/give_up/to", "no_phone"),
        ("/cards/5/expect/pattern", "\"[A-Z]{2}[0-9]+\""),
        ("/cards/6/rules/1/when/values/0", "\"11-200\""),
        ("/cards/6/rules/4/to", "big"),
        ("/cards/6/otherwise", "small"),
        ("/cards/7/wait", "2m"),
        ("/cards/7/on_closed", "bye"),
        ("/cards/7/route/to/team", "\"Sales\""),
        ("/cards/8/record/title", "\"Demo request ({size})\""),
        ("/cards/8/record/person/email", "\"{email}\""),
        ("/cards/8/record/labels/1", "\"demo\""),
        ("/cards/8/record/fields/Company size", "\"{size}\""),
        ("/cards/8/then/goto", "thanks"),
        ("/cards/10/record/due", "1d"),
        ("/cards/11/on_decline", "bye"),
        ("/cards/13/outcome", "qualified"),
    ] {
        assert_eq!(snippet(EXAMPLE, &map, ptr), text, "{ptr}");
        assert!(json.pointer(ptr).is_some(), "{ptr} is not in the JSON form");
    }
    // Every link's field resolves exactly, as checks rely on.
    for (i, card) in p.cards.iter().enumerate() {
        assert!(map.exact(&format!("/cards/{i}")).is_some());
        for link in card.links() {
            let ptr = format!("/cards/{i}{}", link.field);
            if link.field.to_string() == "/on_timeout" || map.exact(&ptr).is_some() {
                continue;
            }
            panic!("no span for link {ptr}");
        }
    }
}

#[test]
fn keywords_are_contextual() {
    let text = r#"playbook "k" { start end }
message end "hi" -> email
ask email "mail?" expect email save email -> end
end qualified qualified
"#;
    let (p, _) = parse(text);
    assert_eq!(p.cards[0].id().as_str(), "end");
    assert_eq!(p.cards[2].id().as_str(), "qualified");
}

#[test]
fn lowering_collects_every_error() {
    let text = r#"playbook "x" { start a max steps 0 }
message a "Hi {name" -> b
livechat l { online "o" wait 0s offline "f" on closed -> a }
ask p "?" expect pattern "([" -> a
capture activity c { subject "s" pipeline "P" } -> a
capture lead d { title "a" title "b" } end
"#;
    let ds = errors(text);
    let codes: Vec<Code> = ds.iter().map(|d| d.code).collect();
    for code in [
        Code::InvalidTemplate,
        Code::InvalidDuration,
        Code::InvalidPattern,
        Code::InvalidValue,
    ] {
        assert!(codes.contains(&code), "{code} missing in {codes:?}");
    }
    let rendered = render_all(text, &ds);
    assert!(rendered.contains("has no `on offline`"), "{rendered}");
    assert!(rendered.contains("a activity has no `pipeline`") || rendered.contains("an activity"));
    assert!(rendered.contains("`title` is given twice"), "{rendered}");
    assert!(rendered.contains("`max steps` must be"), "{rendered}");
}

#[test]
fn template_errors_point_at_the_brace() {
    let text = "playbook \"x\" { start a }\nmessage a \"Hi \\\"you\\\" {na me}\" end\n";
    let ds = errors(text);
    assert_eq!(ds[0].code, Code::InvalidTemplate);
    let file = SourceFile::new("t", text);
    let json = ds[0].to_json(&file, &SourceMap::new());
    let start = json["labels"][0]["span"]["start"].as_u64().unwrap() as usize;
    assert_eq!(&text[start..start + 1], "{");
}

fn snapshot(name: &str, text: &str) {
    let ds = errors(text);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!(name, format!("{text}\n---\n{}", render_all(text, &ds)));
    });
}

#[test]
fn syntax_errors_render_with_line_and_column() {
    snapshot(
        "syntax_missing_target",
        "playbook \"x\" { start a }\n\nmessage a \"Hi\" -> \n",
    );
    snapshot(
        "syntax_unknown_card",
        "playbook \"x\" { start a }\nmesage a \"Hi\" end\n",
    );
    snapshot(
        "syntax_unclosed_string",
        "playbook \"x\" { start a }\nmessage a \"Hi end\nend b\n",
    );
    snapshot(
        "syntax_branch_without_else",
        "playbook \"x\" { start b }\nbranch b {\n  when x is set -> b\n}\n",
    );
    snapshot(
        "syntax_bad_escape",
        "playbook \"x\" { start a }\nmessage a \"Hi \\q\" end\n",
    );
    snapshot(
        "lower_bad_duration",
        "playbook \"x\" { start a }\nask a \"?\" expect text -> a {\n  idle 5x nudge \"hey\"\n}\n",
    );
    snapshot(
        "lower_missing_wait",
        "playbook \"x\" { start l }\nlivechat l {\n  online \"o\"\n  offline \"f\"\n  on closed -> l\n  on offline -> l\n}\n",
    );
}

#[test]
fn format_keeps_comments_and_is_stable() {
    let once = syntax::format(EXAMPLE).unwrap();
    let twice = syntax::format(&once).unwrap();
    assert_eq!(once, twice);
    for c in [
        "# comments run to the end of the line",
        "# limits.idle_capture",
        "# Next::End(Qualified)",
        "# optional",
        "# numbers like 10, -2.5",
        "# outcome none",
    ] {
        assert!(once.contains(c), "lost {c:?} in:\n{once}");
    }
    assert!(once.contains("max steps 50  # limits.max_steps"), "{once}");
    assert!(once.contains("free text -> other  # optional"), "{once}");
    assert!(once.contains("end bye  # outcome none"), "{once}");
    assert_eq!(parse(&once).0, parse(EXAMPLE).0);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("syntax_formatted_example", once));
}

#[test]
fn json_reader_maps_pointers_and_names_paths() {
    let (p, _) = parse(EXAMPLE);
    let json = to_json(&p);
    let (again, map) = syntax::parse_json(&json).unwrap();
    assert_eq!(again, p);
    let s = map.exact("/cards/7/wait").unwrap();
    assert_eq!(&json[s.start..s.end], "\"2m\"");
    let with_schema = json.replacen('{', "{\"$schema\": \"x.json\",", 1);
    assert_eq!(syntax::parse_json(&with_schema).unwrap().0, p);

    let bad = json.replace("\"2m\"", "\"0s\"");
    let ds = syntax::parse_json(&bad).unwrap_err();
    assert_eq!(ds[0].code, Code::InvalidDuration, "{ds:?}");
    assert!(ds[0].message.contains("cards[7].wait"), "{}", ds[0].message);
    let file = SourceFile::new("x.json", bad.as_str());
    let rendered = ds[0].render(&file, &SourceMap::new());
    assert!(rendered.contains("\"0s\""), "{rendered}");

    let typo = json.replace("\"on_closed\"", "\"on_close\"");
    let ds = syntax::parse_json(&typo).unwrap_err();
    assert_eq!(ds[0].code, Code::Json);
    assert!(ds[0].message.contains("on_close"), "{}", ds[0].message);

    let tpl = json.replace("Demo request ({size})", "Demo request ({size)");
    let ds = syntax::parse_json(&tpl).unwrap_err();
    assert_eq!(ds[0].code, Code::InvalidTemplate, "{ds:?}");

    let broken = &json[..json.len() / 2];
    let ds = syntax::parse_json(broken).unwrap_err();
    assert_eq!(ds[0].code, Code::Json);
    assert!(syntax::read("a.JSON", &json).is_ok());
    assert!(syntax::read("a.playbook", &json).is_err());
}

/// The code blocks of docs/language.md that hold a whole playbook parse and pass the checks,
/// and every fragment with cards parses once given a header.
#[test]
fn the_language_reference_examples_parse() {
    let doc = include_str!("../docs/language.md");
    // Untagged fenced blocks are DSL; ```json blocks are JSON.
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.starts_with("```")) {
            (None, true) if line == "```" => current = Some(String::new()),
            (None, true) => current = Some("json".into()),
            (Some(b), true) => {
                if !b.starts_with("json") {
                    blocks.push(std::mem::take(b));
                }
                current = None;
            }
            (Some(b), false) if !b.starts_with("json") => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() > 10, "found {} blocks", blocks.len());
    let mut whole = 0;
    for block in &blocks {
        let block = block.as_str();
        let trimmed = block.trim_start();
        let text = if block.contains("playbook \"") {
            whole += 1;
            block.to_owned()
        } else if trimmed.starts_with("idle ") {
            continue;
        } else {
            format!("playbook \"doc\" {{ start x }}\n{block}")
        };
        let (p, _) = parse(&text);
        if block.contains("playbook \"") && block.contains("A demo-request bot") {
            let checked = playbook::check::check(p);
            assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        }
    }
    assert!(whole >= 2);
    for var in SYSTEM_VARIABLES {
        assert!(doc.contains(&format!("`{var}`")), "{var} is not documented");
    }
}

/// A UTF-8 byte order mark is accepted in JSON as in the DSL, and spans still point into the
/// text as given (BOM included).
#[test]
fn a_byte_order_mark_is_accepted_in_json_with_spans_intact() {
    let (p, _) = parse(EXAMPLE);
    let json = format!("\u{FEFF}{}", to_json(&p));
    let (again, map) = syntax::read("a.json", &json).unwrap();
    assert_eq!(again, p);
    assert_eq!(snippet(&json, &map, "/cards/7/wait"), "\"2m\"");
    let bad = json.replace("\"2m\"", "\"0s\"");
    let ds = syntax::parse_json(&bad).unwrap_err();
    let file = SourceFile::new("x.json", bad.as_str());
    let rendered = ds[0].render(&file, &SourceMap::new());
    assert!(rendered.contains("\"0s\""), "{rendered}");
    let dsl = format!("\u{FEFF}{EXAMPLE}");
    assert_eq!(parse(&dsl).0, p);
}

/// Text at the top level that starts no header and no card says what may start there, not
/// the grammar's rule name (`file`).
#[test]
fn a_stray_top_level_word_is_described_in_english() {
    for text in ["x\n", "}\n", "\"a\"\n"] {
        let ds = errors(text);
        assert!(!ds[0].message.contains("`file`"), "{}", ds[0].message);
        assert!(
            ds[0].message.contains("the `playbook` header or a card"),
            "{}",
            ds[0].message
        );
    }
}

/// A live-chat card's own `assign` line: into the route, with its source span, back out
/// through the formatter, once only.
#[test]
fn a_livechat_may_say_how_it_is_assigned() {
    let text = "playbook \"t\" { start lc }\nlivechat lc {\n  online \"Connecting...\"\n  wait 2m\n  offline \"Sorry.\"\n  route team \"Sales\"\n  assign least_busy\n  on closed -> bye\n  on offline -> bye\n}\nend bye\n";
    let (p, map) = parse(text);
    let Card::LiveChat(lc) = &p.cards[0] else {
        panic!("not a livechat")
    };
    assert_eq!(lc.route.assign, Some(Assignment::LeastBusy));
    assert_eq!(
        snippet(text, &map, "/cards/0/route/assign"),
        "assign least_busy"
    );
    let json = serde_json::to_value(&lc.route).unwrap();
    assert_eq!(json["assign"], "least_busy");
    let out = syntax::format(text).unwrap();
    assert!(
        out.contains("  route team \"Sales\"\n  assign least_busy\n"),
        "{out}"
    );
    assert_eq!(parse(&out).0, p);
    // Without a route line the route is `anyone`, still assigned as asked.
    let (p, _) = parse(&text.replace("  route team \"Sales\"\n", ""));
    let Card::LiveChat(lc) = &p.cards[0] else {
        panic!("not a livechat")
    };
    assert_eq!(lc.route.assign, Some(Assignment::LeastBusy));
    assert_eq!(lc.route.to, RouteTarget::Anyone);
    let twice = errors(&text.replace(
        "  assign least_busy\n",
        "  assign least_busy\n  assign manual\n",
    ));
    assert!(
        render_all(text, &twice).contains("`assign`"),
        "{}",
        render_all(text, &twice)
    );
    let bad = errors(&text.replace("least_busy", "randomly"));
    assert!(
        render_all(text, &bad).contains("`manual`, `round_robin` or `least_busy`"),
        "{}",
        render_all(text, &bad)
    );
}
