//! Random valid playbook models for property tests (proptest strategies).
//!
//! Shared by the syntax round-trip tests and any other test that wants arbitrary playbooks:
//! `#[path = "common/arbitrary.rs"] mod arbitrary;` (or `mod common;` with a `common/mod.rs`). The models
//! are valid as data (every type's own rules hold) but not necessarily as flows: targets may
//! not exist, which `check` would report.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use playbook::model::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// A card id, sometimes one that is also a keyword.
pub fn card_id() -> impl Strategy<Value = CardId> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_-]{0,8}",
        Just("end".to_owned()),
        Just("email".to_owned()),
        Just("qualified".to_owned()),
        Just("a-b".to_owned()),
    ]
    .prop_map(|s| CardId::new(s).expect("valid id"))
}

/// A variable name.
pub fn var() -> impl Strategy<Value = VarName> {
    prop_oneof!["[a-z_][a-z0-9_]{0,8}", Just("email".to_owned())]
        .prop_map(|s| VarName::new(s).expect("valid var"))
}

/// Any text: quotes, backslashes, braces, `#`, line breaks, tabs, control characters, unicode.
pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 \"\\\\{}#\n\t\r\u{0}\u{7f}\u{e9}\u{1F600}-]{0,12}"
}

/// A valid template: literal text, escaped braces and placeholders.
pub fn template() -> impl Strategy<Value = Template> {
    let part = prop_oneof![
        4 => "[a-zA-Z0-9 \"\\\\#\n\t\u{e9}\u{1F600}.!?-]{0,8}",
        1 => Just("{{".to_owned()),
        1 => Just("}}".to_owned()),
        2 => var().prop_map(|v| format!("{{{v}}}")),
    ];
    vec(part, 0..5).prop_map(|parts| Template::new(parts.concat()).expect("valid template"))
}

/// A positive duration up to a year.
pub fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![1u32..=600, 1u32..=MAX_SECONDS]
        .prop_map(|s| Duration::from_secs(s).expect("in range"))
}

fn nonzero() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1u32..10, 1u32..=u32::MAX].prop_map(|n| NonZeroU32::new(n).expect("non-zero"))
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Qualified),
        Just(Outcome::Disqualified),
        Just(Outcome::None)
    ]
}

fn next() -> impl Strategy<Value = Next> {
    prop_oneof![
        card_id().prop_map(Next::Goto),
        outcome().prop_map(Next::End)
    ]
}

fn idle() -> impl Strategy<Value = Idle> {
    (
        duration(),
        prop_oneof![
            template().prop_map(IdleAction::Nudge),
            card_id().prop_map(IdleAction::Goto)
        ],
    )
        .prop_map(|(after, then)| Idle { after, then })
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(-2.5),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let cmp = prop_oneof![
        Just(Comparison::Lt),
        Just(Comparison::Le),
        Just(Comparison::Gt),
        Just(Comparison::Ge)
    ];
    prop_oneof![
        (var(), text()).prop_map(|(var, value)| Condition::Equals { var, value }),
        (var(), vec(text(), 0..3)).prop_map(|(var, values)| Condition::OneOf { var, values }),
        var().prop_map(|var| Condition::IsSet { var }),
        var().prop_map(|var| Condition::NotSet { var }),
        (var(), cmp, number()).prop_map(|(var, cmp, value)| Condition::Compare { var, cmp, value }),
    ]
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        text().prop_map(Owner::User),
        text().prop_map(Owner::Pool),
        Just(Owner::Agent)
    ]
}

fn person() -> impl Strategy<Value = PersonSpec> {
    (of(template()), of(template()), of(template())).prop_map(|(name, email, phone)| PersonSpec {
        name,
        email,
        phone,
    })
}

fn fields() -> impl Strategy<Value = BTreeMap<String, Template>> {
    proptest::collection::btree_map(text(), template(), 0..3)
}

fn record() -> BoxedStrategy<RecordSpec> {
    let lead = (
        (of(template()), of(person()), of(template()), of(template())),
        (of(text()), of(owner()), of(template()), of(template())),
        (vec(text(), 0..3), fields()),
    )
        .prop_map(
            |(
                (title, person, organization, value),
                (currency, owner, status, source),
                (labels, fields),
            )| {
                RecordSpec::Lead(LeadSpec {
                    title,
                    person,
                    organization,
                    value,
                    currency,
                    owner,
                    status,
                    source,
                    labels,
                    fields,
                })
            },
        )
        .boxed();
    let deal = (
        (of(template()), of(template()), of(text()), of(text())),
        (of(text()), of(person()), of(template()), of(owner())),
        (of(template()), vec(text(), 0..3), fields()),
    )
        .prop_map(
            |(
                (title, value, currency, pipeline),
                (stage, person, organization, owner),
                (status, labels, fields),
            )| {
                RecordSpec::Deal(DealSpec {
                    title,
                    value,
                    currency,
                    pipeline,
                    stage,
                    person,
                    organization,
                    owner,
                    status,
                    labels,
                    fields,
                })
            },
        );
    let activity_type = prop_oneof![
        Just(ActivityType::Call),
        Just(ActivityType::Meeting),
        Just(ActivityType::Task),
        Just(ActivityType::Email),
        Just(ActivityType::Deadline),
        Just(ActivityType::Lunch),
    ];
    let link = prop_oneof![Just(LinkTo::Lead), Just(LinkTo::Deal)];
    let activity = (
        activity_type,
        of(template()),
        of(duration()),
        of(template()),
        of(owner()),
        of(link),
    )
        .prop_map(|(activity, subject, due, note, owner, link)| {
            RecordSpec::Activity(ActivitySpec {
                activity,
                subject,
                due,
                note,
                owner,
                link,
            })
        })
        .boxed();
    prop_oneof![lead, deal, activity].boxed()
}

fn input_kind() -> impl Strategy<Value = InputKind> {
    prop_oneof![
        Just(InputKind::Text),
        Just(InputKind::Email),
        Just(InputKind::Phone),
        Just(InputKind::Number),
        prop_oneof![
            Just("[A-Z]{2}[0-9]+".to_owned()),
            Just("a\"b\\d+".to_owned()),
            Just("#\\{x\\}".to_owned())
        ]
        .prop_map(|s| InputKind::Pattern(Pattern::new(s).expect("valid regex"))),
    ]
}

fn route() -> impl Strategy<Value = Route> {
    let to = prop_oneof![
        Just(RouteTarget::Anyone),
        vec(text(), 0..3).prop_map(RouteTarget::Agents),
        text().prop_map(RouteTarget::Team),
        Just(RouteTarget::Owner),
    ];
    let availability = prop_oneof![Just(Availability::Available), Just(Availability::Anyone)];
    let assign = of(prop_oneof![
        Just(Assignment::Manual),
        Just(Assignment::RoundRobin),
        Just(Assignment::LeastBusy),
    ]);
    (to, availability, assign).prop_map(|(to, availability, assign)| Route {
        to,
        availability,
        assign,
    })
}

/// One card of any kind, with any combination of optional fields.
pub fn card() -> BoxedStrategy<Card> {
    let message = (card_id(), template(), next())
        .prop_map(|(id, text, then)| Card::Message(Message { id, text, then }))
        .boxed();
    let answer = (text(), card_id()).prop_map(|(label, to)| Answer { label, to });
    let question = (
        card_id(),
        template(),
        of(var()),
        vec(answer, 0..4),
        of(card_id()),
        of(idle()),
    )
        .prop_map(|(id, text, save, answers, free_text, idle)| {
            Card::Question(Question {
                id,
                text,
                save,
                answers,
                free_text,
                idle,
            })
        })
        .boxed();
    let give_up = (nonzero(), card_id()).prop_map(|(after, to)| GiveUp { after, to });
    let ask = (
        (card_id(), template(), input_kind(), of(var())),
        (of(template()), of(give_up), of(idle()), card_id()),
    )
        .prop_map(
            |((id, text, expect, save), (reprompt, give_up, idle, then))| {
                Card::Ask(Ask {
                    id,
                    text,
                    expect,
                    save,
                    reprompt,
                    give_up,
                    idle,
                    then,
                })
            },
        )
        .boxed();
    let rule = (condition(), card_id()).prop_map(|(when, to)| Rule { when, to });
    let branch = (card_id(), vec(rule, 0..4), card_id())
        .prop_map(|(id, rules, otherwise)| {
            Card::Branch(Branch {
                id,
                rules,
                otherwise,
            })
        })
        .boxed();
    let livechat = (
        (card_id(), template(), duration(), template()),
        (route(), card_id(), card_id(), of(card_id())),
    )
        .prop_map(
            |((id, online, wait, offline), (route, on_closed, on_offline, on_timeout))| {
                Card::LiveChat(LiveChat {
                    id,
                    online,
                    wait,
                    offline,
                    route,
                    on_closed,
                    on_offline,
                    on_timeout,
                })
            },
        );
    let capture = (card_id(), record(), next())
        .prop_map(|(id, record, then)| Card::Capture(Capture { id, record, then }))
        .boxed();
    let mode = prop_oneof![Just(ConsentMode::Explicit), Just(ConsentMode::Implicit)];
    let consent = (
        (card_id(), mode, template()),
        (of(text()), of(text()), card_id(), of(card_id())),
    )
        .prop_map(|((id, mode, notice), (agree, decline, then, on_decline))| {
            Card::Consent(Consent {
                id,
                mode,
                notice,
                agree,
                decline,
                then,
                on_decline,
            })
        })
        .boxed();
    let end = (card_id(), outcome()).prop_map(|(id, outcome)| Card::End(End { id, outcome }));
    prop_oneof![
        message, question, ask, branch, livechat, capture, consent, end
    ]
    .boxed()
}

/// A header with any combination of optional fields.
pub fn header() -> impl Strategy<Value = Header> {
    let language = prop_oneof![Just("en".to_owned()), Just("pt-BR".to_owned()), text()];
    (
        (text(), of(text()), of(language), card_id()),
        (of(template()), of(duration()), of(nonzero())),
    )
        .prop_map(
            |((name, bot, language, start), (greeting, idle_capture, max_steps))| Header {
                name,
                bot,
                language,
                start,
                greeting,
                limits: Limits {
                    idle_capture,
                    max_steps,
                },
            },
        )
}

/// A whole playbook of up to `max_cards` cards.
pub fn playbook(max_cards: usize) -> impl Strategy<Value = Playbook> {
    (header(), vec(card(), 0..=max_cards))
        .prop_map(|(playbook, cards)| Playbook { playbook, cards })
}
