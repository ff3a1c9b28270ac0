//! `mutu tenant import --csv FILE`: turns a member register into MemberTenant
//! YAML for `kubectl apply` or a GitOps repository. Every row is checked with
//! the same rules the API server applies; one bad row fails the whole import
//! with its line and column, and nothing is printed.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kube::ResourceExt;
use mutu_api::MemberTenant;
use mutu_api::tenant::{Category, Province};
use serde_json::json;

#[derive(Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Print MemberTenant YAML for every row of a member register (CSV with the
    /// header `name,displayName,category,province,population,domain`; further
    /// columns are ignored; several domains are separated by `;`).
    Import {
        /// The CSV file to read (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
}

pub fn run(args: TenantArgs) -> anyhow::Result<()> {
    match args.command {
        TenantCommand::Import { csv } => {
            let text = if csv.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(&csv)
                    .with_context(|| format!("cannot read {}", csv.display()))?
            };
            let yaml = import(&text)?;
            print!("{yaml}");
            Ok(())
        }
    }
}

/// Columns the register must have, in any order.
const COLUMNS: [&str; 6] = [
    "name",
    "displayName",
    "category",
    "province",
    "population",
    "domain",
];

/// A row that cannot become a MemberTenant: where, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "line 1: the header lacks the column(s) {0}; expected at least: name,displayName,category,province,population,domain"
    )]
    MissingColumns(String),
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("line {line}, column {column}: {message}")]
    Cell {
        line: u64,
        column: &'static str,
        message: String,
    },
    #[error("cannot write YAML: {0}")]
    Yaml(String),
}

/// The YAML of every MemberTenant in the register `text`, or the first error.
pub fn import(text: &str) -> Result<String, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Row {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h == name);
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| index(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns(missing.join(", ")));
    }
    let col = |name: &'static str| index(name).unwrap_or(0);

    let mut out =
        String::from("# MemberTenants imported from a member register by `mutu tenant import`.\n");
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    for record in reader.records() {
        let record = record.map_err(|e| ImportError::Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: format!("{e}; every row needs as many fields as the header"),
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |name: &'static str| record.get(col(name)).unwrap_or("").to_string();
        let bad = |column: &'static str, message: String| ImportError::Cell {
            line,
            column,
            message,
        };

        let name = cell("name");
        if !is_dns_label(&name) {
            return Err(bad(
                "name",
                format!(
                    "{name:?} is not a valid name: use lower-case letters, digits and '-', e.g. ville-de-mons"
                ),
            ));
        }
        if let Some(first) = seen.insert(name.clone(), line) {
            return Err(bad(
                "name",
                format!("{name:?} already appears on line {first}"),
            ));
        }
        let display = cell("displayName");
        if display.is_empty() {
            return Err(bad(
                "displayName",
                "is empty; give the member's official name, e.g. Ville de Mons".into(),
            ));
        }
        let population = match cell("population").replace([' ', '.', '\u{a0}'], "") {
            p if p.is_empty() => None,
            p => Some(p.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad(
                    "population",
                    format!("{p:?} is not a whole number of inhabitants"),
                )
            })?),
        };
        let domains: Vec<String> = cell("domain")
            .split(';')
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let category = cell("category");
        if serde_json::from_value::<Category>(json!(category)).is_err() {
            return Err(bad(
                "category",
                format!(
                    "{category:?} is not a category; allowed: {}",
                    allowed::<Category>()
                ),
            ));
        }
        let province = cell("province");
        if !province.is_empty() && serde_json::from_value::<Province>(json!(province)).is_err() {
            return Err(bad(
                "province",
                format!(
                    "{province:?} is not a province; allowed: {} (or empty)",
                    allowed::<Province>()
                ),
            ));
        }
        let mut spec = json!({
            "displayName": display,
            "category": category,
            "domains": domains,
        });
        if !province.is_empty() {
            spec["province"] = json!(province);
        }
        if let Some(p) = population {
            spec["population"] = json!(p);
        }
        let object = json!({
            "apiVersion": mutu_api::API_VERSION,
            "kind": "MemberTenant",
            "metadata": {"name": name},
            "spec": spec,
        });
        let tenant: MemberTenant =
            serde_json::from_value(object).map_err(|e| ImportError::Row {
                line,
                message: e.to_string(),
            })?;
        if let Err(errors) = tenant.validate_cel() {
            let message = errors.to_string();
            let column = if message.contains("spec.domains") {
                "domain"
            } else {
                "name"
            };
            return Err(bad(column, message));
        }
        let yaml =
            serde_saphyr::to_string(&tenant).map_err(|e| ImportError::Yaml(e.to_string()))?;
        out.push_str(&format!(
            "---\n# {} (line {line})\n{yaml}",
            tenant.name_any()
        ));
    }
    Ok(out)
}

/// The values a unit enum accepts, from its schema (so the list never drifts).
fn allowed<T: schemars::JsonSchema>() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    // Documented variants come as `oneOf` of `const`s, bare ones as an `enum`.
    let values: Vec<String> = match schema.get("oneOf").and_then(|o| o.as_array()) {
        Some(variants) => variants
            .iter()
            .flat_map(|v| {
                let single = v.get("const").cloned().into_iter();
                let listed = v
                    .get("enum")
                    .and_then(|e| e.as_array())
                    .cloned()
                    .unwrap_or_default();
                single.chain(listed)
            })
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => schema
            .get("enum")
            .and_then(|e| e.as_array())
            .map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    values.join(", ")
}

/// A lower-case RFC 1123 label of at most 56 characters (room for `tenant-`).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63 - mutu_api::common::TENANT_NAMESPACE_PREFIX.len()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "\
name,displayName,category,province,population,domain,contact
mons,Ville de Mons,commune,hainaut,95299,mons.be,info@mons.be
cpas-wanze,CPAS de Wanze,cpas,liege,14000,cpas-wanze.be;wanze.be,
zs-hainaut-centre,Zone de Secours Hainaut-Centre,rescue-zone,hainaut,,hainaut-centre.be,
";

    #[test]
    fn a_register_becomes_member_tenants_ignoring_extra_columns() {
        let yaml = import(REGISTER).unwrap_or_else(|e| panic!("{e}"));
        let docs: Vec<MemberTenant> = yaml
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].name_any(), "mons");
        assert_eq!(docs[0].spec.population, Some(95299));
        assert_eq!(docs[1].spec.domains, vec!["cpas-wanze.be", "wanze.be"]);
        assert_eq!(docs[2].spec.population, None);
        assert!(!yaml.contains("info@mons.be"), "extra columns are ignored");
    }

    fn error_of(csv: &str) -> String {
        match import(csv) {
            Ok(yaml) => panic!("accepted a bad register:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_bad_category_names_its_line_and_column() {
        let csv = "name,displayName,category,province,population,domain\nmons,Ville de Mons,commune,hainaut,1,mons.be\nans,Commune d'Ans,village,liege,1,ans.be\n";
        let e = error_of(csv);
        assert!(e.starts_with("line 3, column category:"), "{e}");
        assert!(e.contains("allowed: commune"), "{e}");
    }

    #[test]
    fn a_bad_domain_or_population_or_name_is_refused() {
        let header = "name,displayName,category,province,population,domain\n";
        let e = error_of(&format!(
            "{header}mons,Ville de Mons,commune,hainaut,1,Mons.BE_\n"
        ));
        assert!(e.starts_with("line 2, column domain:"), "{e}");
        let e = error_of(&format!(
            "{header}mons,Ville de Mons,commune,hainaut,beaucoup,mons.be\n"
        ));
        assert!(e.starts_with("line 2, column population:"), "{e}");
        let e = error_of(&format!(
            "{header}Ville de Mons,Ville de Mons,commune,hainaut,1,mons.be\n"
        ));
        assert!(e.starts_with("line 2, column name:"), "{e}");
        let e = error_of(&format!(
            "{header}mons,A,commune,,1,a.be\nmons,B,commune,,1,b.be\n"
        ));
        assert!(e.contains("already appears on line 2"), "{e}");
    }

    #[test]
    fn a_row_with_missing_fields_or_header_columns_is_refused() {
        let e = error_of(
            "name,displayName,category,province,population,domain\nmons,Ville de Mons,commune\n",
        );
        assert!(e.starts_with("line 2:"), "{e}");
        let e = error_of("name,displayName\nmons,Ville de Mons\n");
        assert!(e.contains("category, province, population, domain"), "{e}");
    }
}
