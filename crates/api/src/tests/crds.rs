//! The generated CRDs: names, scope, status subresource, printer columns, field docs for
//! `kubectl explain`, and CEL rules that compile, stay cheap and name their field.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{AnalysisWarning, ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;

use crate::{GROUP, VERSION, crd_file_name, crd_yaml, crds};

/// Calls `visit(path, node)` for `schema` and every schema below it (properties, items,
/// additionalProperties), with a dotted path such as `spec.hostnames[]`.
pub(crate) fn walk(schema: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, schema);
    if let Some(properties) = schema["properties"].as_object() {
        for (name, child) in properties {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(child, &child_path, visit);
        }
    }
    if schema["items"].is_object() {
        walk(&schema["items"], &format!("{path}[]"), visit);
    }
    if schema["additionalProperties"].is_object() {
        walk(&schema["additionalProperties"], &format!("{path}.*"), visit);
    }
}

fn schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).unwrap_or_default()
}

#[test]
fn crds_come_in_a_stable_order_with_their_file_names() {
    let files: Vec<String> = crds().iter().map(crd_file_name).collect();
    assert_eq!(
        files,
        [
            "membertenants",
            "products",
            "plonesites",
            "solrindexes",
            "certificates",
            "certificateissuers",
            "backuppolicies",
            "backups",
            "restores",
            "migrationplans",
            "releaserollouts",
            "provisioningrequests",
        ]
        .map(|plural| format!("{plural}.hosting.imio.be.yaml"))
    );
}

#[test]
fn every_crd_is_in_the_hosting_group_and_version_and_category_mutu() {
    for crd in crds() {
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, VERSION);
        assert_eq!(crd.spec.names.categories, Some(vec!["mutu".to_string()]));
    }
}

#[test]
fn kinds_have_the_scope_of_the_architecture() {
    let namespaced: BTreeSet<String> = crds()
        .into_iter()
        .filter(|crd| crd.spec.scope == "Namespaced")
        .map(|crd| crd.spec.names.kind)
        .collect();
    let expected = [
        "Backup",
        "Certificate",
        "PloneSite",
        "ProvisioningRequest",
        "Restore",
        "SolrIndex",
    ];
    assert_eq!(namespaced, expected.map(String::from).into());
}

#[test]
fn short_names_are_unique_and_clash_with_no_built_in_resource() {
    // Short names of built-in kinds (and of cert-manager's Certificate, often installed too).
    let taken = [
        "cm", "cs", "csr", "cj", "crd", "crds", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits",
        "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc", "rs", "sa",
        "sc", "sts", "svc", "cert", "certs", "cr", "crs",
    ];
    let mut seen = BTreeSet::new();
    for crd in crds() {
        let names = crd.spec.names.short_names.clone().unwrap_or_default();
        assert!(
            !names.is_empty(),
            "{} has no short name",
            crd.spec.names.kind
        );
        for name in names {
            assert!(
                !taken.contains(&name.as_str()),
                "{name} is taken by a built-in kind"
            );
            assert!(seen.insert(name.clone()), "{name} is used twice");
        }
    }
}

#[test]
fn every_crd_has_a_status_subresource_with_observed_generation_and_conditions() {
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind}"
        );
        let status = &schema(&crd)["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "integer", "{kind}");
        assert_eq!(
            status["conditions"]["x-kubernetes-list-type"], "map",
            "{kind}"
        );
    }
}

#[test]
fn every_crd_has_printer_columns_that_point_at_real_fields() {
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(columns.len() >= 3, "{kind} has too few printer columns");
        assert!(
            columns.iter().any(|c| c.name == "Age"),
            "{kind} has no Age column"
        );
        let mut paths = BTreeSet::new();
        walk(&schema(&crd), "", &mut |path, _| {
            paths.insert(path.replace("[]", ""));
        });
        for column in columns
            .iter()
            .filter(|c| !c.json_path.starts_with(".metadata"))
        {
            let path = strip_brackets(&column.json_path);
            assert!(
                paths.contains(&path),
                "{kind} column {} reads {path}: no such field",
                column.name
            );
        }
    }
}

/// `.status.conditions[?(@.type=="Ready")].status` -> `status.conditions.status`.
fn strip_brackets(json_path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in json_path.trim_start_matches('.').chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let schema = schema(&crd);
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 40),
            "{kind}"
        );
        walk(&schema, "", &mut |path, node| {
            if path.is_empty()
                || path.starts_with("metadata")
                || path.ends_with("[]")
                || path.ends_with(".*")
            {
                return;
            }
            let description = node["description"].as_str().unwrap_or_default();
            assert!(
                !description.trim().is_empty(),
                "{kind}: {path} has no description"
            );
            let unwrapped = !description.replace("\n\n", " ").contains('\n');
            assert!(
                unwrapped,
                "{kind}: {path} has line breaks inside a paragraph"
            );
        });
    }
}

#[test]
fn every_cel_message_starts_with_the_field_it_is_about() {
    for crd in crds() {
        walk(&schema(&crd), "", &mut |path, node| {
            for rule in node["x-kubernetes-validations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let message = rule["message"].as_str().unwrap_or_default();
                let field = message.split(':').next().unwrap_or_default();
                assert!(
                    field == "spec" || field.starts_with("spec."),
                    "{}: rule at {path} has a message not starting with its field: {message:?}",
                    crd.spec.names.kind
                );
                assert!(
                    !message.contains('\n'),
                    "messages must be one line: {message:?}"
                );
            }
        });
    }
}

#[test]
fn every_cel_rule_compiles_and_is_cheap_enough_for_the_api_server() {
    for crd in crds() {
        walk(&schema(&crd), "", &mut |path, node| {
            let rules = node["x-kubernetes-validations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if rules.is_empty() {
                return;
            }
            let compiled = compile_schema(node);
            assert!(
                compiled.compilation_errors().is_empty(),
                "{path}: {:?}",
                compiled.compilation_errors()
            );
            for rule in rules {
                let rule = rule["rule"].as_str().unwrap_or_default();
                let warnings: Vec<_> = analyze_rule(rule, &compiled, ScopeContext::CrdValidation)
                    .into_iter()
                    .filter(|w| !is_comprehension_variable(w, rule))
                    .collect();
                assert!(
                    warnings.is_empty(),
                    "{}: {path}: {rule}: {warnings:?}",
                    crd.spec.names.kind
                );
            }
        });
    }
}

/// kube-cel's scope check does not know the variables of `all(x, ...)`-style macros.
fn is_comprehension_variable(warning: &AnalysisWarning, rule: &str) -> bool {
    let variable = warning.message.split('\'').nth(1).unwrap_or_default();
    warning.kind == WarningKind::WrongScope && rule.contains(&format!("({variable}, "))
}

/// Lists and strings that CEL reads have `maxItems` / `maxLength`, or the API server's cost
/// estimate refuses the CRD (strings bounded by an `enum` excepted).
#[test]
fn strings_and_lists_read_by_cel_are_bounded() {
    for crd in crds() {
        walk(&schema(&crd), "", &mut |path, node| {
            let has_rules = node["x-kubernetes-validations"].is_array();
            let ruled_items = node["items"]["x-kubernetes-validations"].is_array();
            if (has_rules || ruled_items) && node["type"] == "array" {
                assert!(node["maxItems"].is_u64(), "{path} has no maxItems");
            }
            if (has_rules && node["type"] == "string") || ruled_items {
                let item = if ruled_items { &node["items"] } else { node };
                if item["type"] == "string" && !item["enum"].is_array() {
                    assert!(item["maxLength"].is_u64(), "{path} has no maxLength");
                }
            }
        });
    }
}

#[test]
fn crd_yaml_reads_back_as_the_same_crd() {
    for crd in crds() {
        let yaml = match crd_yaml(&crd) {
            Ok(yaml) => yaml,
            Err(err) => panic!("{}: {err}", crd_file_name(&crd)),
        };
        assert!(yaml.starts_with(crate::CRD_HEADER));
        let back: CustomResourceDefinition = match serde_saphyr::from_str(&yaml) {
            Ok(back) => back,
            Err(err) => panic!("{}: {err}", crd_file_name(&crd)),
        };
        assert_eq!(back, crd);
    }
}

/// The kinds whose `Ready` condition an operator sets to False, with a reason that says why
/// (as cert-manager shows it): MemberTenant (operators/tenant), Product and PloneSite
/// (operators/site), SolrIndex (operators/solr-index), Certificate and CertificateIssuer
/// (operators/certificate), BackupPolicy (operators/backup) and ProvisioningRequest
/// (operators/provisioning).
const READY_KINDS: [&str; 8] = [
    "MemberTenant",
    "Product",
    "PloneSite",
    "SolrIndex",
    "Certificate",
    "CertificateIssuer",
    "BackupPolicy",
    "ProvisioningRequest",
];

/// The other kinds, and the condition their printer columns show instead: a Backup's `Ready`
/// is only ever True ("Restorable"), so its columns (and a Restore's) show `Complete`; the
/// plans report `Progressing`, `Complete` and `Failed`, and their columns count sites.
const OTHER_KINDS: [(&str, Option<&str>); 4] = [
    ("Backup", Some("Complete")),
    ("Restore", Some("Complete")),
    ("MigrationPlan", None),
    ("ReleaseRollout", None),
];

fn condition_path(condition: &str, field: &str) -> String {
    format!(".status.conditions[?(@.type==\"{condition}\")].{field}")
}

#[test]
fn every_kind_with_a_ready_condition_shows_its_reason_beside_it() {
    let kinds: BTreeSet<String> = crds().into_iter().map(|c| c.spec.names.kind).collect();
    let classified: BTreeSet<String> = READY_KINDS
        .iter()
        .copied()
        .chain(OTHER_KINDS.iter().map(|(kind, _)| *kind))
        .map(String::from)
        .collect();
    assert_eq!(
        kinds, classified,
        "a new kind: add it to READY_KINDS (with Ready and Reason columns) or OTHER_KINDS"
    );
    for crd in crds() {
        let kind = crd.spec.names.kind.as_str();
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let shown = if READY_KINDS.contains(&kind) {
            Some("Ready")
        } else {
            OTHER_KINDS
                .iter()
                .find(|(k, _)| *k == kind)
                .and_then(|(_, condition)| *condition)
        };
        let Some(condition) = shown else {
            assert!(
                !columns.iter().any(|c| c.json_path.contains("conditions")),
                "{kind} shows a condition: classify it in READY_KINDS or OTHER_KINDS"
            );
            continue;
        };
        let status = columns
            .iter()
            .position(|c| c.json_path == condition_path(condition, "status"));
        let Some(status) = status else {
            panic!("{kind} has no column with the status of its {condition} condition");
        };
        let reason = &columns[status + 1];
        assert_eq!(
            (reason.name.as_str(), reason.type_.as_str()),
            ("Reason", "string"),
            "{kind}: the column after {} must be Reason",
            columns[status].name
        );
        assert_eq!(
            reason.json_path,
            condition_path(condition, "reason"),
            "{kind}"
        );
        assert_eq!(
            reason.priority, None,
            "{kind}: Reason shows without -o wide"
        );
        if condition == "Ready" {
            assert_eq!(columns[status].name, "Ready", "{kind}");
        }
    }
}
