//! Fuzzing of what the portal's public functions read from a request or a
//! resource: form tokens (`csrf`), `Accept-Language` (`i18n::negotiate`),
//! the proxy's identity headers (`proxy::identity`), HTML escaping, and the
//! decision a ProvisioningRequest carries (`decision`). Nothing panics, and
//! each keeps the promise of its documentation. The forms, pages and router
//! are fuzzed inside the crate (`src/fuzz.rs`).
//!
//! Each target runs its corpus (`tests/fuzz-corpus/<target>/`) first, then
//! `MUTU_FUZZ_CASES` random cases.

#[path = "../../../tests/fuzz-corpus/harness.rs"]
mod harness;
#[path = "../../../tests/fuzz-corpus/resources.rs"]
mod resources;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue};
use mutu_api::ProvisioningRequest;
use mutu_api::provisioning::Decision;
use mutu_portal::csrf::{BadToken, Key, MAX_AGE};
use mutu_portal::decision::{current_decision, decision_text, rendered};
use mutu_portal::i18n::{Lang, negotiate};
use mutu_portal::proxy::{GROUPS, NoIdentity, USER};
use mutu_portal::{html, identity};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use harness::{corpus_lines, fuzz};
use resources::*;

// ---------------------------------------------------------------------------
// Form tokens.

#[derive(Clone, Debug)]
struct Tokens {
    user: String,
    other: String,
    issued: u64,
    after: u64,
    forged: String,
    change: (usize, char),
}

fn key() -> Key {
    Key::random().unwrap_or_else(|e| panic!("a key: {e}"))
}

fn check_tokens(key: &Key, t: Tokens) -> Result<(), TestCaseError> {
    let token = key.token_at(&t.user, t.issued);
    let now = t.issued.saturating_add(t.after);
    // Its user's, for a working day.
    let fresh = t.after <= MAX_AGE;
    prop_assert_eq!(
        key.check_at(&t.user, Some(&token), now),
        if fresh {
            Ok(())
        } else {
            Err(BadToken::Expired)
        }
    );
    prop_assert_eq!(
        key.check_at(&t.user, Some(&format!(" {token}\t")), t.issued),
        Ok(())
    );
    // Nobody else's, whatever the time.
    if t.other != t.user {
        prop_assert_eq!(
            key.check_at(&t.other, Some(&token), t.issued),
            Err(BadToken::Invalid)
        );
    }
    // Any other character anywhere makes it no token.
    let (at, c) = t.change;
    let at = at % token.len();
    let mut changed: Vec<char> = token.chars().collect();
    if changed[at] != c {
        changed[at] = c;
        let changed: String = changed.into_iter().collect();
        prop_assert_ne!(
            key.check_at(&t.user, Some(&changed), t.issued),
            Ok(()),
            "{}",
            changed
        );
    }
    // Nor is anything sent that was not made by the key.
    let forged = key.check_at(&t.user, Some(&t.forged), t.issued);
    if t.forged.trim().is_empty() {
        prop_assert_eq!(forged, Err(BadToken::Missing));
    } else {
        prop_assert_eq!(forged, Err(BadToken::Invalid), "{:?}", t.forged);
    }
    prop_assert_eq!(
        key.check_at(&t.user, None, t.issued),
        Err(BadToken::Missing)
    );
    Ok(())
}

#[test]
fn fuzz_csrf_tokens() {
    let key = key();
    let seeds = corpus_lines("csrf-token")
        .into_iter()
        .map(|(at, forged)| {
            let t = Tokens {
                user: "agent@ans.be".into(),
                other: "marie@imio.be".into(),
                issued: 1_750_000_000,
                after: 60,
                forged,
                change: (0, '9'),
            };
            (at, t)
        })
        .collect();
    let forged = prop_oneof![
        2 => weird(),
        2 => ("[0-9]{1,21}", "[0-9a-f]{60,68}").prop_map(|(t, m)| format!("{t}.{m}")),
        1 => "[0-9a-fA-F. +-]{0,90}",
    ];
    let tokens = (
        prop_oneof![2 => Just("agent@ans.be".to_string()), 1 => weird()],
        weird(),
        prop_oneof![
            any::<u64>().prop_map(|n| n / 2),
            0u64..100,
            Just(1_750_000_000u64)
        ],
        prop_oneof![0..=MAX_AGE, MAX_AGE..MAX_AGE * 3, any::<u64>()],
        forged,
        (any::<usize>(), any::<char>()),
    )
        .prop_map(|(user, other, issued, after, forged, change)| Tokens {
            user,
            other,
            issued,
            after,
            forged,
            change,
        });
    fuzz("csrf-token", seeds, tokens, |t| check_tokens(&key, t));
}

// ---------------------------------------------------------------------------
// Accept-Language.

const TAGS: &[&str] = &[
    "fr",
    "de",
    "en",
    "nl",
    "de-BE",
    "EN-us",
    "Fr",
    "*",
    "fr-CA",
    "x-klingon",
    "",
    "de_DE",
];
const QS: &[&str] = &[
    "1", "0", "0.5", "0.9", "1.0", "0.000", "2", "-1", "abc", "", "1e0", "NaN", "inf",
];

/// The language a list of ranges asks for, as `negotiate` documents it: the
/// one of highest q-value the portal speaks (the first of equals; `*` is
/// French), French if none.
fn oracle(ranges: &[(String, Vec<(String, String)>)]) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for (tag, params) in ranges {
        let mut q = Some(1.0f32);
        for (name, value) in params {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q));
            }
        }
        let tag = tag.trim();
        let primary = tag
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let lang = if tag == "*" {
            Some(Lang::Fr)
        } else {
            Lang::ALL.into_iter().find(|l| l.code() == primary)
        };
        if let (Some(q), Some(lang)) = (q, lang)
            && q > 0.0
            && best.is_none_or(|(b, _)| q > b)
        {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::Fr)
}

#[test]
fn fuzz_accept_language() {
    let seeds = corpus_lines("accept-language")
        .into_iter()
        .map(|(at, line)| (at, (vec![], Some(line))))
        .collect();
    let range = (
        prop_oneof![3 => pick(TAGS), 1 => weird()],
        vec(
            (
                prop_oneof![4 => pick(&["q", "Q", " q "]), 1 => weird()],
                prop_oneof![4 => pick(QS), 1 => weird()],
            ),
            0..2,
        ),
    );
    let header = (vec(range, 0..5), prop::option::weighted(0.2, weird()));
    fuzz("accept-language", seeds, header, |(ranges, raw)| {
        if let Some(raw) = raw {
            // Anything at all: one of the portal's languages.
            let lang = negotiate(Some(&raw));
            prop_assert!(Lang::ALL.contains(&lang));
            prop_assert_eq!(negotiate(Some(&raw)), lang);
            return Ok(());
        }
        // Ranges whose parts hold no separator, written out as a browser does.
        let clean = |s: &String| !s.contains([',', ';', '=']);
        if !ranges
            .iter()
            .all(|(t, p)| clean(t) && p.iter().all(|(n, v)| clean(n) && clean(v)))
        {
            return Ok(());
        }
        let header: Vec<String> = ranges
            .iter()
            .map(|(tag, params)| {
                let mut r = tag.clone();
                for (n, v) in params {
                    r.push_str(&format!(";{n}={v}"));
                }
                r
            })
            .collect();
        let header = header.join(", ");
        prop_assert_eq!(negotiate(Some(&header)), oracle(&ranges), "{:?}", header);
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// The proxy's identity headers.

#[derive(Clone, Debug)]
struct Sent {
    trusted: bool,
    users: Vec<Vec<u8>>,
    groups: Vec<Vec<u8>>,
}

const NAMES: &[&str] = &[
    "agent@ans.be",
    "jdupont@mons.be",
    "mons-admins",
    "/imio/approvers",
    "staff",
    "system:masters",
    "SYSTEM:nodes",
    "a b",
    "é",
    "",
    " ",
];

fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => vec(prop_oneof![4 => pick(NAMES), 1 => weird()], 0..4)
            .prop_map(|names| names.join(",").into_bytes()),
        1 => vec(any::<u8>(), 0..40),
    ]
    .boxed()
}

/// A name the documentation accepts: 1 to 253 of ASCII letters, digits and
/// `._@+-:/`, not `system:...` in any case.
fn accepted(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-:/".contains(&b))
        && !name.to_ascii_lowercase().starts_with("system:")
}

fn check_identity(s: Sent) -> Result<(), TestCaseError> {
    let trusted = BTreeSet::from([IpAddr::from([127, 0, 0, 1])]);
    let peer = if s.trusted {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    } else {
        SocketAddr::from(([10, 0, 0, 1], 40000))
    };
    let mut headers = HeaderMap::new();
    let mut sent_users = Vec::new();
    for (name, values) in [(USER, &s.users), (GROUPS, &s.groups)] {
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                if name == USER {
                    sent_users.push(v.as_bytes().to_vec());
                }
                headers.append(name, v);
            }
        }
    }
    let got = identity(&trusted, peer, &headers);
    if !s.trusted {
        prop_assert!(matches!(got, Err(NoIdentity::Untrusted(_))), "{got:?}");
        return Ok(());
    }
    if sent_users.len() > 1 {
        prop_assert_eq!(got, Err(NoIdentity::Repeated(USER)));
        return Ok(());
    }
    if let Ok(id) = got {
        let sent = String::from_utf8_lossy(&sent_users[0]).into_owned();
        prop_assert_eq!(&id.user, &sent.trim_matches([' ', '\t']).to_string());
        prop_assert!(accepted(&id.user), "user {:?}", id.user);
        let mut sorted = id.groups.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(&sorted, &id.groups);
        for g in &id.groups {
            prop_assert!(accepted(g), "group {g:?}");
        }
        prop_assert!(headers.get_all(GROUPS).iter().count() <= 1);
    }
    Ok(())
}

#[test]
fn fuzz_identity() {
    let seeds = corpus_lines("identity")
        .into_iter()
        .map(|(at, line)| {
            let (user, groups) = line.split_once('|').unwrap_or((&line, ""));
            let s = Sent {
                trusted: true,
                users: vec![user.as_bytes().to_vec()],
                groups: vec![groups.as_bytes().to_vec()],
            };
            (at, s)
        })
        .collect();
    let sent = (
        any::<u8>().prop_map(|n| n % 8 != 0),
        vec(header_value(), 0..3),
        vec(header_value(), 0..3),
    )
        .prop_map(|(trusted, users, groups)| Sent {
            trusted,
            users,
            groups,
        });
    fuzz("identity", seeds, sent, check_identity);
}

// ---------------------------------------------------------------------------
// HTML escaping.

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn fuzz_escaping() {
    let seeds = corpus_lines("portal-text");
    fuzz("escaping", seeds, weird(), |text| {
        let escaped = html::esc(&text);
        prop_assert!(!escaped.contains(['<', '>', '"', '\'']), "{escaped:?}");
        for (i, _) in escaped.match_indices('&') {
            let rest = &escaped[i..];
            prop_assert!(
                ["&lt;", "&gt;", "&quot;", "&#39;", "&amp;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "{escaped:?}"
            );
        }
        prop_assert_eq!(unescape(&escaped), text);
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// The decision a request carries.

fn decided_request() -> BoxedStrategy<Value> {
    let status = object(vec![
        ("observedGeneration", 0.7, int64()),
        ("decision", 0.7, one_of(&["Pending", "Approved", "Denied"])),
        ("decidedBy", 0.6, string(&["mutu", "marie@imio.be"])),
        ("decidedGeneration", 0.7, int64()),
        (
            "renderedSite",
            0.6,
            string(&["apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\n"]),
        ),
        (
            "reasons",
            0.4,
            vec(
                object(vec![
                    ("code", 1.0, string(&["Denied", "QuotaExceeded"])),
                    ("message", 1.0, string(&["denied by marie: no budget"])),
                ]),
                0..3,
            )
            .prop_map(Value::from)
            .boxed(),
        ),
    ]);
    (request_json(), status, any::<bool>())
        .prop_map(|(mut request, status, same)| {
            if let Some(r) = request.as_object_mut() {
                // Half decided on the generation the request has.
                if same {
                    let g = status["decidedGeneration"].clone();
                    if let Some(m) = r.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("generation".into(), g);
                    }
                }
                r.insert("status".into(), status);
            }
            request
        })
        .boxed()
}

fn check_decision(value: Value) -> Result<(), TestCaseError> {
    let Some(request) = read::<ProvisioningRequest>(&value) else {
        return Ok(());
    };
    let status = request.status.clone().unwrap_or_default();
    let current = current_decision(&request);
    let on_this_spec = status.decided_generation.is_some()
        && status.decided_generation == request.metadata.generation;
    let want = if on_this_spec {
        status.decision.unwrap_or_default()
    } else {
        Decision::Pending
    };
    prop_assert_eq!(current, want);
    let text = decision_text(&request);
    let by = status.decided_by.clone().unwrap_or_else(|| "?".into());
    let expected = match (status.decision, current) {
        (Some(Decision::Approved | Decision::Denied), Decision::Pending) => {
            "it was edited after its decision".to_string()
        }
        (_, Decision::Approved) => format!("approved by {by}"),
        (_, Decision::Denied) => format!("denied by {by}"),
        _ => "pending".to_string(),
    };
    prop_assert_eq!(text, expected);
    match rendered(&request) {
        Ok(yaml) => {
            prop_assert_eq!(current, Decision::Approved);
            prop_assert_eq!(Some(yaml), status.rendered_site);
        }
        Err(_) => prop_assert!(current != Decision::Approved || status.rendered_site.is_none()),
    }
    Ok(())
}

#[test]
fn fuzz_decisions() {
    let seeds = docs("provisioningrequest")
        .into_iter()
        .flat_map(|(name, request)| {
            ["Approved", "Denied", "Pending"].map(|decision| {
                let mut r = request.clone();
                r["metadata"]["generation"] = json!(2);
                r["status"] = json!({"decision": decision, "decidedBy": "marie@imio.be",
                    "decidedGeneration": 2, "renderedSite": "kind: PloneSite\n"});
                (format!("{name} {decision}"), r)
            })
        })
        .collect();
    fuzz("decision", seeds, decided_request(), check_decision);
}
