//! Issue 13, "explanations that match the decision": for random accounts, every fact the
//! rationale cites is among the counted evidence (events counted by the same fold `explain`
//! reports, triggers in the window, active deals), and the matched decision-table row agrees
//! with the cluster.

use abm_core::engagement::LevelBasis;
use abm_core::{
    assess, AccountSchema, AccountTable, Config, Deal, DealOutcome, EngagementState, Facts,
    Firmographics, Instant, Rules, ScoringModel, Tier, Trigger, Verdict,
};
use proptest::prelude::*;

const AS_OF: &str = "2026-11-01T00:00:00Z";
const EVENTS: &[&str] = &[
    "demo",
    "meeting",
    "email_reply",
    "content_download",
    "website_visit",
    "ad_click",
    "champion_left",
    "no_priority",
];
const TRIGGERS: &[&str] = &["funding_round", "expansion", "layoffs", "tech_change"];

#[derive(Debug, Clone)]
struct Case {
    tier: usize,
    /// (type, days before as_of (negative: after), contact)
    events: Vec<(usize, i32, u8)>,
    triggers: Vec<(usize, i32)>,
    /// (created days before, closed days before (None: open), last change days before, won)
    deals: Vec<(i32, Option<i32>, i32, bool)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0usize..5,
        prop::collection::vec((0..EVENTS.len(), -20i32..200, 0u8..5), 0..12),
        prop::collection::vec((0..TRIGGERS.len(), -20i32..150), 0..4),
        prop::collection::vec(
            (
                0i32..200,
                prop::option::of(-30i32..150),
                0i32..120,
                any::<bool>(),
            ),
            0..3,
        ),
    )
        .prop_map(|(tier, events, triggers, deals)| Case {
            tier,
            events,
            triggers,
            deals,
        })
}

fn day(as_of: Instant, d: i32) -> Instant {
    if d >= 0 {
        as_of.minus_days(d as u32)
    } else {
        as_of.plus_days((-d) as u32)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn the_rationale_cites_only_counted_evidence_and_the_row_agrees(c in case()) {
        let as_of = Instant::parse(AS_OF).unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, as_of).unwrap();
        let tier = Tier::ALL[c.tier];
        let mut table = AccountTable::new(AccountSchema::new(["name".to_string()]));
        table.push(
            ["A1", "Acme"],
            &Firmographics {
                icp_tier: Some(tier),
                icp_score: Some(50.0),
                ..Default::default()
            },
            2,
        );
        let model = ScoringModel::new(&cfg.icp, table.schema());
        // The fold, as `explain` runs it: each event with its verdict.
        let mut st = EngagementState::default();
        let mut counted = Vec::new();
        for (ty, d, contact) in &c.events {
            let code = rules.events.lookup(EVENTS[*ty].as_bytes()).unwrap();
            let at = day(as_of, *d);
            let contact = if *contact == 0 { String::new() } else { format!("c{contact}") };
            if let Verdict::Counted(_) = st.observe(&rules, code, at, contact.as_bytes(), Instant::MIN) {
                counted.push((EVENTS[*ty], at, contact));
            }
        }
        let triggers: Vec<Trigger> = c
            .triggers
            .iter()
            .map(|(ty, d)| Trigger {
                account: 0,
                code: rules.triggers.lookup(TRIGGERS[*ty].as_bytes()).unwrap(),
                at: day(as_of, *d),
                headline: String::new(),
            })
            .collect();
        let deals: Vec<Deal> = c
            .deals
            .iter()
            .enumerate()
            .map(|(i, (created, closed, changed, won))| Deal {
                product: None,
                history: Vec::new(),
                account: 0,
                deal_id: format!("D{i}"),
                stage: "proposal".into(),
                amount: None,
                created_at: day(as_of, *created),
                closed_at: closed.map(|d| day(as_of, d.min(*created))),
                last_stage_change_at: Some(day(as_of, (*changed).min(*created))),
                outcome: match closed {
                    None => DealOutcome::Open,
                    Some(_) if *won => DealOutcome::Won,
                    Some(_) => DealOutcome::Lost,
                },
            })
            .collect();
        let facts = Facts {
            engagement: &st,
            triggers: &triggers,
            deals: &deals,
            signals: &[],
            floor: Instant::MIN,
            products: &[],
        };
        let a = assess(&rules, &model, &table.get(0), &facts, true);
        let text = abm_core::assess::rationale(&rules, &a, &facts);

        // The matched row agrees with the cluster, and no earlier row matches.
        let row = &rules.decision.rows[a.rule as usize - 1];
        prop_assert!(row.matches(a.score.tier, a.level, a.has_triggers()), "{text}");
        prop_assert_eq!(row.cluster, a.cluster);
        for r in &rules.decision.rows[..a.rule as usize - 1] {
            prop_assert!(!r.matches(a.score.tier, a.level, a.has_triggers()));
        }
        prop_assert!(text.ends_with(&format!("rule {}", a.rule)) || text.contains(&format!("rule {};", a.rule)), "{text}");

        // Every cited fact is counted evidence.
        match &a.basis {
            LevelBasis::Event { code, at } => {
                let name = rules.event_name(*code);
                prop_assert!(counted.iter().any(|(t, when, _)| *t == name && when == at), "{text}");
                prop_assert!(text.contains(&format!("via {name} {}", at.date_string())), "{text}");
            }
            LevelBasis::Contacts(n) => {
                let mut cs: Vec<&String> = counted.iter().map(|x| &x.2).filter(|c| !c.is_empty()).collect();
                cs.sort();
                cs.dedup();
                // The state tracks contacts up to what the thresholds need: n is the distinct
                // counted contacts, capped there.
                prop_assert_eq!((cs.len() as u32).min(rules.contacts_needed), *n);
            }
            LevelBasis::OpenDeal(i) => {
                prop_assert!(a.active_deals.contains(i));
                let d = &deals[*i];
                prop_assert!(d.created_at <= as_of && d.outcome_at(as_of) == DealOutcome::Open);
            }
            LevelBasis::Nothing => prop_assert!(counted.is_empty() || a.level == abm_core::EngagementLevel::None),
        }
        if a.counted_events > 0 {
            prop_assert_eq!(a.counted_events as usize, counted.len(), "{}", text);
            prop_assert!(text.contains(&format!("{} event", counted.len())), "{text}");
        }
        for (code, at) in &a.triggers {
            prop_assert!(*at <= as_of && *at >= rules.trigger_from, "{text}");
            prop_assert!(triggers.iter().any(|t| t.code == *code && t.at == *at));
        }
        if let Some((code, at)) = a.triggers.first() {
            let cited = format!("({} {})", rules.trigger_name(*code), at.date_string());
            prop_assert!(text.contains(&cited), "{text}");
        } else {
            prop_assert!(text.contains("no triggers"), "{text}");
        }
        // A customer is cited only with deals won by as_of.
        if text.contains("; customer (") {
            prop_assert!(deals.iter().any(|d| d.won_by(as_of)));
        } else {
            prop_assert!(!deals.iter().any(|d| d.won_by(as_of)));
        }
    }
}
