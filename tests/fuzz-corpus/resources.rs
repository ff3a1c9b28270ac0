//! What a member writes, as proptest strategies of JSON shaped like mutu's
//! resources (included by the fuzz tests with `#[path]`): pools of realistic
//! values, so that sites meet on the same hostnames, products and names,
//! mixed with strange strings, numbers at and beyond the edges of their type,
//! and, rarely, a field of the wrong type or one the API does not know.

// Each fuzz test uses what it needs of these.
#![allow(dead_code)]

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// What a member writes: pools of realistic values (so that sites meet on the
// same hostnames, products and names) mixed with strange ones.

pub const HOSTS: &[&str] = &[
    "www.mons.be",
    "mons.be",
    "deliberations.mons.be",
    "a.b.mons.be",
    "www.ans.be",
    "ans.be",
    "www.clavier.be",
    "x.github.io",
    "github.io",
    "be",
    "notmons.be",
    "MONS.BE",
    "mons.be.",
    "*.mons.be",
    "",
];

pub const DOMAINS: &[&str] = &[
    "mons.be",
    "ans.be",
    "clavier.be",
    "be",
    "github.io",
    "co.uk",
    "deliberations.mons.be",
    "mons.be.",
    "MONS.BE",
    "*.mons.be",
    ".",
    "",
];

pub const NAMESPACES: &[&str] = &[
    "tenant-mons",
    "tenant-ans",
    "tenant-",
    "default",
    "kube-system",
];

pub const SITE_NAMES: &[&str] = &[
    "delib",
    "web",
    "web-2",
    "docs",
    "a",
    "a-zeo",
    "a-offline",
    "x",
    "1web",
    "web.site",
    // The longest a request may ask for, and one more.
    "site-of-forty-characters-0123456789abcde",
    "site-of-forty-one-characters-0123456789ab",
];

pub const PRODUCTS: &[&str] = &["delib", "web", "docs", "urban", ""];

pub const TIMES: &[&str] = &[
    "2019-01-01T00:00:00Z",
    "2020-01-01T00:00:00Z",
    "2020-01-01T00:00:00Z",
    "2021-06-30T12:00:00Z",
];

pub const RELEASES: &[&str] = &["4.2.18", "4.2", "6.1.0", "latest", "_x", "1.0-rc.1"];

pub const QUANTITIES: &[&str] = &[
    "500m",
    "2",
    "1.5",
    "512Mi",
    "1Gi",
    "8Gi",
    "64Gi",
    "10G",
    "1e3",
    "1E3",
    "1e+3",
    "1e-400",
    "0e999",
    "1e999",
    "1e18",
    "9223372036854775807",
    "-1",
    "+1",
    ".5",
    "5.",
    "1Ei",
    "1E",
    "",
    " 2 ",
    "2 Gi",
    "lots",
];

/// Strings no form or schema would suggest.
pub const STRANGE: &[&str] = &[
    "",
    " ",
    ".",
    "..",
    "-",
    "-a",
    "a-",
    "*",
    "\0",
    "\u{feff}mons.be",
    "é.be",
    "xn--mns-ioa.be",
    "null",
    "~",
    "yes",
    "no",
    "0x1F",
    "1e999",
    "#",
    "&amp;",
    "<script>alert(1)</script>",
    "\"quoted\"",
    "'",
    "a: b",
    "- x",
    "? x",
    "!tag",
    "%",
    "@",
    "`",
    "|",
    ">",
    "{}",
    "[]",
    "\n",
    "\r\n",
    "\t",
    "a\nb",
    " leading",
    "trailing ",
    "\u{85}",
    "\u{2028}",
    "\u{1f600}",
    "system:masters",
];

pub fn pick(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(pool).prop_map(str::to_string).boxed()
}

/// A string a member could send anywhere: strange, arbitrary Unicode, DNS-like or long.
pub fn weird() -> BoxedStrategy<String> {
    prop_oneof![
        3 => pick(STRANGE),
        3 => any::<String>(),
        3 => "[a-z0-9.*-]{0,80}",
        1 => (1usize..300).prop_map(|n| "a".repeat(n)),
        1 => (1usize..80, "[a-z]{1,3}").prop_map(|(n, s)| s.repeat(n)),
    ]
    .boxed()
}

/// A value of `pool` mostly, else a strange string.
pub fn text(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![3 => pick(pool), 1 => weird()].boxed()
}

pub fn string(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    text(pool).prop_map(Value::from).boxed()
}

pub fn list(pool: &'static [&'static str], most: usize) -> BoxedStrategy<Value> {
    vec(text(pool), 0..=most).prop_map(Value::from).boxed()
}

/// An integer where the API has one: small, at the edges of its type, or beyond.
pub fn int() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (-3i64..12).prop_map(Value::from),
        1 => any::<i32>().prop_map(Value::from),
        1 => prop::sample::select(vec![
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::from(i32::MAX) + 1,
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(1.5)),
        1 => Just(json!(u64::MAX)),
    ]
    .boxed()
}

/// An `int32` of the API: small mostly, at its edges sometimes, rarely beyond it.
pub fn int32() -> BoxedStrategy<Value> {
    prop_oneof![
        30 => (-3i32..12).prop_map(Value::from),
        4 => any::<i32>().prop_map(Value::from),
        2 => prop::sample::select(vec![i32::MAX, i32::MIN, i32::MAX - 1]).prop_map(Value::from),
        1 => int(),
    ]
    .boxed()
}

/// An `int64` of the API.
pub fn int64() -> BoxedStrategy<Value> {
    prop_oneof![10 => (-3i64..100_000).prop_map(Value::from), 1 => int()].boxed()
}

/// One of the values of an enumeration, rarely another string.
pub fn one_of(valid: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![30 => pick(valid).prop_map(Value::from), 1 => weird().prop_map(Value::from)].boxed()
}

pub fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::from).boxed()
}

pub fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        boolean(),
        int(),
        any::<f64>().prop_map(Value::from),
        weird().prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON: arrays and objects of any of it, a few levels deep.
pub fn any_json() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(weird(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A field's value: as `good` says, rarely anything at all (a wrong type).
pub fn field(good: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![200 => good, 1 => any_json()].boxed()
}

/// An object of these fields, each present with its probability, and rarely
/// one the API does not know.
pub fn object(fields: Vec<(&'static str, f64, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(key, presence, good)| {
            let pair = field(good).prop_map(move |v| (key.to_string(), v));
            if presence < 1.0 {
                prop::option::weighted(presence, pair).boxed()
            } else {
                pair.prop_map(Some).boxed()
            }
        })
        .collect();
    (parts, prop::option::weighted(0.03, (weird(), any_json())))
        .prop_map(|(parts, extra)| {
            let mut map = Map::new();
            for (k, v) in parts.into_iter().flatten() {
                map.insert(k, v);
            }
            if let Some((k, v)) = extra {
                map.insert(k, v);
            }
            Value::Object(map)
        })
        .boxed()
}

pub fn fixed(value: Value) -> BoxedStrategy<Value> {
    Just(value).boxed()
}

pub fn quantity_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => pick(QUANTITIES),
        3 => (
            "[+-]?[0-9]{0,20}(\\.[0-9]{0,6})?",
            prop::sample::select(vec![
                "", "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi", "e3", "E2",
                "e-3", "e400", "e", "Ei", "x",
            ]),
        )
            .prop_map(|(n, s)| format!("{n}{s}")),
        1 => weird(),
    ]
    .boxed()
}

pub fn quantity_json() -> BoxedStrategy<Value> {
    prop_oneof![6 => quantity_text().prop_map(Value::from), 1 => int()].boxed()
}

pub fn time() -> BoxedStrategy<Value> {
    prop_oneof![50 => string(TIMES), 1 => Just(json!("2020-13-45T99:00:00Z"))].boxed()
}

pub fn condition(kind: &'static [&'static str]) -> BoxedStrategy<Value> {
    object(vec![
        ("type", 1.0, string(kind)),
        ("status", 1.0, string(&["True", "False", "Unknown", "true"])),
        ("reason", 1.0, string(&["Ready", "Admitted", "Refused"])),
        ("message", 1.0, string(&["", "ok", "quota"])),
        ("lastTransitionTime", 1.0, time()),
    ])
}

pub fn metadata(names: &'static [&'static str], namespaced: bool) -> BoxedStrategy<Value> {
    let annotations = btree_map(
        text(&[
            mutu_api::POOL_ANNOTATION,
            mutu_api::DATA_VOLUME_ANNOTATION,
            mutu_api::RELEASE_ANNOTATION,
            "hosting.imio.be/title",
        ]),
        string(&["frontend", "physical", "Not A Pool!", "", "data-x-zeo-1"]),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
    .boxed();
    let labels = btree_map(
        text(&["hosting.imio.be/cohort", "app"]),
        string(&["pilot", "x"]),
        0..2,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
    .boxed();
    object(vec![
        ("name", 0.97, string(names)),
        (
            "namespace",
            if namespaced { 0.97 } else { 0.05 },
            string(NAMESPACES),
        ),
        // Set by the API server: a UUID.
        (
            "uid",
            0.5,
            pick(&[
                "5173e1c2-0d9a-4b8e-9f53-1b2c3d4e5f60",
                "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            ])
            .prop_map(Value::from)
            .boxed(),
        ),
        ("generation", 0.5, int64()),
        ("creationTimestamp", 0.9, time()),
        ("deletionTimestamp", 0.1, time()),
        ("annotations", 0.3, annotations),
        ("labels", 0.2, labels),
    ])
}

/// A resource of `kind`: `apiVersion` and `kind` (nearly always right), its
/// metadata, spec and status.
pub fn resource(
    kind: &'static str,
    meta: BoxedStrategy<Value>,
    spec: BoxedStrategy<Value>,
    status: Option<BoxedStrategy<Value>>,
) -> BoxedStrategy<Value> {
    let mut fields = vec![
        ("apiVersion", 0.98, fixed(json!(mutu_api::API_VERSION))),
        ("kind", 0.98, fixed(json!(kind))),
        ("metadata", 1.0, meta),
        ("spec", 0.99, spec),
    ];
    if let Some(status) = status {
        fields.push(("status", 0.5, status));
    }
    object(fields)
}

pub fn site_json() -> BoxedStrategy<Value> {
    let storage = object(vec![
        ("mode", 0.5, one_of(&["zeo", "relstorage"])),
        ("size", 0.5, quantity_json()),
        ("storageClassName", 0.3, string(&["ceph-rbd", ""])),
        (
            "secretRef",
            0.3,
            object(vec![("name", 1.0, string(&["docs-postgresql", ""]))]),
        ),
    ]);
    let spec = object(vec![
        ("product", 0.98, string(PRODUCTS)),
        ("release", 0.3, string(RELEASES)),
        ("hostnames", 0.98, list(HOSTS, 4)),
        ("replicas", 0.5, int32()),
        ("language", 0.3, one_of(&["fr", "de", "nl", "en"])),
        ("storage", 0.4, storage),
        (
            "solr",
            0.3,
            object(vec![
                ("enabled", 0.8, boolean()),
                ("configsetVersion", 0.5, string(&["3", ""])),
            ]),
        ),
        (
            "tls",
            0.2,
            object(vec![("issuer", 0.8, string(&["letsencrypt"]))]),
        ),
        (
            "backup",
            0.2,
            object(vec![
                ("policy", 0.8, string(&["nightly"])),
                ("suspended", 0.5, boolean()),
            ]),
        ),
        ("deletionPolicy", 0.2, one_of(&["Retain", "Delete"])),
    ]);
    let status = object(vec![
        ("hostnames", 0.6, list(HOSTS, 3)),
        ("release", 0.6, string(RELEASES)),
        (
            "pool",
            0.4,
            string(&["frontend", "physical", "Not A Pool!"]),
        ),
        (
            "conditions",
            0.3,
            vec(condition(&["Ready"]), 0..2)
                .prop_map(Value::from)
                .boxed(),
        ),
    ]);
    resource("PloneSite", metadata(SITE_NAMES, true), spec, Some(status))
}

pub fn tenant_json() -> BoxedStrategy<Value> {
    let entitlements = btree_map(text(PRODUCTS), int32(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed();
    let quota = object(vec![
        ("sites", 0.5, int32()),
        ("cpu", 0.4, quantity_json()),
        ("memory", 0.4, quantity_json()),
        ("storage", 0.4, quantity_json()),
    ]);
    let spec = object(vec![
        (
            "displayName",
            0.98,
            string(&["Ville de Mons", "Commune d'Ans"]),
        ),
        (
            "category",
            0.98,
            one_of(&[
                "commune",
                "cpas",
                "police-zone",
                "rescue-zone",
                "province",
                "intercommunale",
                "rca",
            ]),
        ),
        (
            "province",
            0.3,
            one_of(&["hainaut", "liege", "luxembourg", "namur", "brabant-wallon"]),
        ),
        ("population", 0.3, int64()),
        ("domains", 0.95, list(DOMAINS, 4)),
        ("entitlements", 0.95, entitlements),
        ("quota", 0.2, quota),
        ("suspended", 0.1, boolean()),
    ]);
    let status = object(vec![
        ("domains", 0.6, list(DOMAINS, 3)),
        ("namespace", 0.3, string(NAMESPACES)),
        (
            "conditions",
            0.7,
            vec(condition(&["Ready", "Degraded"]), 0..3)
                .prop_map(Value::from)
                .boxed(),
        ),
    ]);
    resource(
        "MemberTenant",
        metadata(&["mons", "ans", "clavier"], false),
        spec,
        Some(status),
    )
}

pub fn product_spec_json() -> BoxedStrategy<Value> {
    let compute = || {
        object(vec![
            ("cpu", 0.7, quantity_json()),
            ("memory", 0.7, quantity_json()),
        ])
    };
    object(vec![
        ("displayName", 0.98, string(&["ia.Délib", "Site web"])),
        ("engine", 0.98, one_of(&["plone", "generic"])),
        ("image", 0.98, string(&["registry.imio.be/imio/delib", ""])),
        ("release", 0.98, string(RELEASES)),
        ("replicas", 0.6, int32()),
        (
            "resources",
            0.6,
            object(vec![
                ("requests", 0.8, compute()),
                ("limits", 0.4, compute()),
            ]),
        ),
        (
            "storage",
            0.6,
            object(vec![
                ("mode", 0.6, string(&["zeo", "relstorage"])),
                ("size", 0.6, quantity_json()),
                ("storageClassName", 0.3, string(&["ceph-rbd"])),
            ]),
        ),
        (
            "solr",
            0.4,
            object(vec![
                ("enabled", 0.9, boolean()),
                ("configset", 0.7, string(&["delib"])),
                ("configsetVersion", 0.7, string(&["3"])),
            ]),
        ),
        ("upgradeCommand", 0.5, list(&["zconsole", "run"], 3)),
        ("siteCreationCommand", 0.5, list(&["zconsole", "run"], 3)),
        (
            "quota",
            0.3,
            object(vec![
                ("cpu", 0.6, quantity_json()),
                ("memory", 0.6, quantity_json()),
                ("storage", 0.6, quantity_json()),
            ]),
        ),
        (
            "provisioning",
            0.3,
            object(vec![
                ("approval", 0.5, one_of(&["Auto", "Manual"])),
                ("maxReplicas", 0.7, int32()),
            ]),
        ),
        ("healthPath", 0.2, string(&["/ok", "/health"])),
        ("port", 0.2, int32()),
    ])
}

pub fn catalog_json() -> BoxedStrategy<Vec<(String, Value)>> {
    vec((text(PRODUCTS), product_spec_json()), 0..4).boxed()
}

pub fn request_json() -> BoxedStrategy<Value> {
    let spec = object(vec![
        ("product", 0.98, string(PRODUCTS)),
        ("hostnames", 0.98, list(HOSTS, 3)),
        ("siteName", 0.6, string(SITE_NAMES)),
        (
            "options",
            0.6,
            object(vec![
                ("replicas", 0.6, int32()),
                ("language", 0.6, one_of(&["fr", "de", "nl", "en"])),
            ]),
        ),
        ("comment", 0.4, string(&["Nouveau site", ""])),
    ]);
    resource(
        "ProvisioningRequest",
        metadata(&["web", "delib", "req"], true),
        spec,
        None,
    )
}

// ---------------------------------------------------------------------------
// Reading.

/// `value` read as a `T`, if it is one (failing is allowed; panicking is not).
pub fn read<T: DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.clone()).ok()
}

/// The corpus of `target`: one resource per YAML file, as JSON.
pub fn docs(target: &str) -> Vec<(String, Value)> {
    super::harness::corpus(target)
        .into_iter()
        .map(|(name, text)| {
            let value: Value = serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("corpus {target}/{name}: {e}"));
            (name, value)
        })
        .collect()
}

/// A DNS label of at most `max` characters, written out independently of the API's.
pub fn label_of_at_most(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS subdomain (RFC 1123) of at most `max` characters.
pub fn subdomain_of_at_most(name: &str, max: usize) -> bool {
    name.len() <= max && name.split('.').all(|l| label_of_at_most(l, 63))
}

pub fn dns_label() -> BoxedStrategy<String> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?".boxed()
}

pub fn dns_subdomain() -> BoxedStrategy<String> {
    vec(dns_label(), 1..5)
        .prop_map(|labels| labels.join("."))
        .prop_filter("at most 253 characters", |n| n.len() <= 253)
        .boxed()
}
