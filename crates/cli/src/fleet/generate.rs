//! `mutu fleet generate --profile NAME`: the YAML of a whole fleet (the product catalog, the
//! member tenants and their sites) drawn from a profile, such as iMio's hosting at the end of
//! 2019 (`imio-2019`, ../shared/data/imio-2019.md).
//!
//! A profile fixes the figures (members by category and province, communes by population
//! bracket, instances by product, which kinds of member take which products); a seed decides
//! what the figures leave open (which communes are members, who hosts which product). The
//! same profile and seed always give the same bytes: the only source of randomness is
//! [`SplitMix64`], written here so that its sequence never changes with a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kube::ResourceExt;
use mutu_api::tenant::{Category, Province};
use mutu_api::{API_VERSION, BackupPolicy, MemberTenant, PloneSite, Product, tenant_namespace};
use serde_json::{Value, json};

/// Seed used when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 2019;

/// Label on every generated object naming the profile it came from, so the whole fleet can be
/// listed or removed at once (`kubectl delete plonesites -A -l hosting.imio.be/profile=imio-2019`).
pub const PROFILE_LABEL: &str = "hosting.imio.be/profile";
/// Label of the rollout cohort of a site (see examples/rollout.yaml).
const COHORT_LABEL: &str = "hosting.imio.be/cohort";
/// Annotation holding the title the site-creation Job gives a Plone site.
const TITLE_ANNOTATION: &str = "hosting.imio.be/title";

pub use super::profile::*;

#[derive(Args)]
pub struct GenerateArgs {
    /// The fleet profile. Known: imio-2019 (iMio's hosting at the end of 2019, from its
    /// activity report: 11 products, 310 members, 819 sites) and small (one member with one
    /// site of each product, for a quick demo).
    #[arg(long, value_name = "NAME")]
    profile: String,
    /// Where to write the YAML: a file, or `-` for standard output.
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    out: PathBuf,
    /// Seed of what the profile leaves open (which communes are members, which member hosts
    /// which product). The same profile and seed always give the same bytes.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let profile = profile(&args.profile)?;
    let fleet = generate(profile, args.seed)?;
    validate(&fleet)?;
    let yaml = to_yaml(profile, args.seed, &fleet)?;
    if args.out.as_os_str() == "-" {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(yaml.as_bytes())
            .and_then(|()| stdout.flush())
            .or_else(|e| {
                // `mutu fleet generate ... | head` closes the pipe early: not an error.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .context("cannot write to standard output")?;
    } else {
        std::fs::write(&args.out, yaml)
            .with_context(|| format!("--out: cannot write {}", args.out.display()))?;
        eprintln!(
            "wrote {}: {} products, a backup policy, {} members, {} sites (profile {}, seed {})",
            args.out.display(),
            fleet.products.len(),
            fleet.tenants.len(),
            fleet.sites.len(),
            profile.name,
            args.seed
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// A generated fleet: the catalog, the members and their sites, in printing order.
pub struct Fleet {
    pub products: Vec<Product>,
    /// The default backup policy: every site, every night.
    pub backups: BackupPolicy,
    pub tenants: Vec<MemberTenant>,
    pub sites: Vec<PloneSite>,
}

/// A member before it becomes a MemberTenant.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    display: String,
    category: Category,
    province: Option<Province>,
    population: Option<i64>,
    domain: String,
    /// Sites per product.
    products: BTreeMap<&'static str, usize>,
}

/// A commune of the region, as the profile's table gives it.
#[derive(Clone, Debug)]
struct Commune {
    province: Province,
    name: String,
    population: i64,
    display: Option<String>,
}

/// The fleet of `profile` for `seed`.
pub fn generate(profile: &Profile, seed: u64) -> anyhow::Result<Fleet> {
    let mut rng = SplitMix64::new(seed);
    let products = catalog(profile)?;
    if let Some(body) = &profile.single_member {
        return single_member(profile, body, products);
    }
    let communes = communes(profile)?;
    let mut members = member_communes(profile, &communes, &mut rng)?;
    let commune_members = members.clone();
    for body in profile.commune_bodies {
        members.extend(commune_bodies(profile, body, &commune_members, &mut rng)?);
    }
    for (category, _) in profile.categories {
        if matches!(category, Category::Commune)
            || profile
                .commune_bodies
                .iter()
                .any(|b| b.category == *category)
        {
            continue;
        }
        let wanted = wanted(profile.categories, category);
        let bodies: Vec<&Body> = profile
            .bodies
            .iter()
            .filter(|b| b.category == *category)
            .collect();
        if bodies.len() < wanted {
            anyhow::bail!(
                "profile {}: {wanted} members of category {} but only {} are listed",
                profile.name,
                category_name(*category),
                bodies.len()
            );
        }
        members.extend(bodies.into_iter().take(wanted).map(|b| Member {
            name: b.name.to_string(),
            display: b.display.to_string(),
            category: b.category,
            province: b.province,
            population: None,
            domain: b.domain.to_string(),
            products: BTreeMap::new(),
        }));
    }
    // Printing order: by category as the profile lists them, then by name.
    let order = |c: Category| {
        profile
            .categories
            .iter()
            .position(|(k, _)| *k == c)
            .unwrap_or(usize::MAX)
    };
    members.sort_by(|a, b| {
        order(a.category)
            .cmp(&order(b.category))
            .then_with(|| a.name.cmp(&b.name))
    });
    check_unique(&members)?;
    allocate(profile, &mut members, &mut rng)?;

    let mut tenants = Vec::with_capacity(members.len());
    let mut sites = Vec::new();
    for member in &members {
        tenants.push(tenant(profile, member)?);
        sites.extend(member_sites(profile, member, &products)?);
    }
    Ok(Fleet {
        products,
        backups: nightly_backups(profile, sites.len())?,
        tenants,
        sites,
    })
}

/// The fleet of a profile of one member: one site of every product of the catalog.
fn single_member(profile: &Profile, body: &Body, products: Vec<Product>) -> anyhow::Result<Fleet> {
    let member = Member {
        name: body.name.to_string(),
        display: body.display.to_string(),
        category: body.category,
        province: body.province,
        population: None,
        domain: body.domain.to_string(),
        products: products
            .iter()
            .filter_map(|p| {
                let name = p.name_any();
                profile
                    .products
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(known, n)| (*known, *n))
            })
            .collect(),
    };
    let sites = member_sites(profile, &member, &products)?;
    Ok(Fleet {
        products,
        backups: nightly_backups(profile, sites.len())?,
        tenants: vec![tenant(profile, &member)?],
        sites,
    })
}

/// Every site backed up every night between 22:00 and 05:00 (Brussels), with
/// enough backups at once for the whole fleet to fit the window at the
/// default expected length (10 min), and the usual retention.
fn nightly_backups(profile: &Profile, sites: usize) -> anyhow::Result<BackupPolicy> {
    let window_minutes = 7 * 60;
    // Twice the average: the starts spread by a hash of each site's name
    // leave gaps that a tight bound would push after the window.
    let at_once = 2 * (sites * 10).div_ceil(window_minutes).max(1);
    serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "BackupPolicy",
        "metadata": metadata(profile, "nightly", None),
        "spec": {
            "default": true,
            "window": {"start": "22:00", "end": "05:00", "timeZone": "Europe/Brussels"},
            "maxConcurrent": at_once,
            "retention": {"daily": 7, "weekly": 4, "monthly": 6},
            "pack": {"day": "sunday", "start": "21:00", "keepDays": 7},
        },
    }))
    .map_err(|e| anyhow::anyhow!("profile {}: the backup policy: {e}", profile.name))
}

/// Checks every object of `fleet` with the API server's own rules (CEL), as `kubectl apply`
/// would. (Separate from [`generate`]: it takes most of the time.)
pub fn validate(fleet: &Fleet) -> anyhow::Result<()> {
    for p in &fleet.products {
        if let Err(errors) = p.validate_cel() {
            anyhow::bail!("Product {} breaks a rule: {errors}", p.name_any());
        }
    }
    if let Err(errors) = fleet.backups.validate_cel() {
        anyhow::bail!(
            "BackupPolicy {} breaks a rule: {errors}",
            fleet.backups.name_any()
        );
    }
    for t in &fleet.tenants {
        if let Err(errors) = t.validate_cel() {
            anyhow::bail!("MemberTenant {} breaks a rule: {errors}", t.name_any());
        }
    }
    for s in &fleet.sites {
        if let Err(errors) = s.validate_cel() {
            anyhow::bail!(
                "PloneSite {}/{} breaks a rule: {errors}",
                s.namespace().unwrap_or_default(),
                s.name_any()
            );
        }
    }
    Ok(())
}

fn wanted<K: PartialEq>(table: &[(K, usize)], key: &K) -> usize {
    table
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

fn category_name(c: Category) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn province_name(p: Province) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The profile's Products, in the order of `profile.products`, each checked with the API
/// server's rules.
fn catalog(profile: &Profile) -> anyhow::Result<Vec<Product>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(profile.catalog)
        .map_err(|e| anyhow::anyhow!("profile {}: its catalog is not YAML: {e}", profile.name))?;
    let mut by_name = BTreeMap::new();
    for doc in docs {
        let mut product: Product = serde_json::from_value(doc).map_err(|e| {
            anyhow::anyhow!(
                "profile {}: a catalog entry is not a Product: {e}",
                profile.name
            )
        })?;
        if let Err(errors) = product.validate_cel() {
            anyhow::bail!(
                "profile {}: Product {} breaks a rule: {errors}",
                profile.name,
                product.name_any()
            );
        }
        product
            .labels_mut()
            .insert(PROFILE_LABEL.to_string(), profile.name.to_string());
        by_name.insert(product.name_any(), product);
    }
    let mut out = Vec::new();
    for (name, _) in profile.products {
        let product = by_name.remove(*name).ok_or_else(|| {
            anyhow::anyhow!(
                "profile {}: product {name} has instances but no Product in the catalog",
                profile.name
            )
        })?;
        out.push(product);
    }
    if let Some(extra) = by_name.keys().next() {
        anyhow::bail!(
            "profile {}: the catalog has Product {extra}, which the profile gives no instances",
            profile.name
        );
    }
    Ok(out)
}

/// The communes of the profile's table.
fn communes(profile: &Profile) -> anyhow::Result<Vec<Commune>> {
    let mut out = Vec::new();
    for (i, line) in profile.communes.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: String| {
            anyhow::anyhow!("profile {}: communes, line {}: {what}", profile.name, i + 1)
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let (province, name, population) = match fields.as_slice() {
            [p, n, pop] | [p, n, pop, _] => (*p, *n, *pop),
            _ => {
                return Err(bad(
                    "expected province, name, population[, display name]".into()
                ));
            }
        };
        let province: Province = serde_json::from_value(json!(province))
            .map_err(|_| bad(format!("{province:?} is not a province")))?;
        let population: i64 = population
            .parse()
            .map_err(|_| bad(format!("{population:?} is not a population")))?;
        out.push(Commune {
            province,
            name: name.to_string(),
            population,
            display: fields.get(3).map(|d| d.to_string()),
        });
    }
    Ok(out)
}

/// The member communes: per province the required ones and those over
/// `always_member_population`, then others drawn at random; their populations fitted into the
/// profile's brackets by rank.
fn member_communes(
    profile: &Profile,
    communes: &[Commune],
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<Member>> {
    for name in profile.required_communes.iter().chain(profile.departed) {
        if !communes.iter().any(|c| c.name == *name) {
            anyhow::bail!(
                "profile {}: commune {name:?} is not in its communes",
                profile.name
            );
        }
    }
    let mut chosen: Vec<&Commune> = Vec::new();
    for (province, count) in profile.commune_provinces {
        let candidates: Vec<&Commune> = communes
            .iter()
            .filter(|c| c.province == *province && !profile.departed.contains(&c.name.as_str()))
            .collect();
        let (mut required, mut others): (Vec<&Commune>, Vec<&Commune>) =
            candidates.into_iter().partition(|c| {
                profile.required_communes.contains(&c.name.as_str())
                    || c.population > profile.always_member_population
            });
        if required.len() > *count || required.len() + others.len() < *count {
            anyhow::bail!(
                "profile {}: {count} member communes in {} cannot be drawn from {} required and {} other communes",
                profile.name,
                province_name(*province),
                required.len(),
                others.len()
            );
        }
        rng.shuffle(&mut others);
        required.extend(others.into_iter().take(count - required.len()));
        chosen.extend(required);
    }
    let populations = fit_populations(profile, &chosen, rng)?;
    Ok(chosen
        .iter()
        .zip(populations)
        .map(|(c, population)| {
            let display = c.display.clone().unwrap_or_else(|| {
                let title = if population > 20_000 {
                    "Ville"
                } else {
                    "Commune"
                };
                format!("{title} {}", of(&c.name))
            });
            let slug = slug(&c.name);
            Member {
                domain: format!("{slug}.be"),
                name: slug,
                display,
                category: Category::Commune,
                province: Some(c.province),
                population: Some(population),
                products: BTreeMap::new(),
            }
        })
        .collect())
}

/// A population for each chosen commune, in the same order: ranked by their table
/// population, the largest take the highest bracket, and so on down; a commune whose table
/// population lies outside its bracket gets one just inside it.
fn fit_populations(
    profile: &Profile,
    chosen: &[&Commune],
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<i64>> {
    let total: usize = profile.brackets.iter().map(|(_, _, n)| n).sum();
    if total != chosen.len() {
        anyhow::bail!(
            "profile {}: its population brackets count {total} communes, its provinces {}",
            profile.name,
            chosen.len()
        );
    }
    let mut rank: Vec<usize> = (0..chosen.len()).collect();
    rank.sort_by(|&a, &b| {
        chosen[b]
            .population
            .cmp(&chosen[a].population)
            .then_with(|| chosen[a].name.cmp(&chosen[b].name))
    });
    let mut brackets: Vec<(i64, i64, usize)> = profile.brackets.to_vec();
    brackets.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut out = vec![0; chosen.len()];
    let mut next = rank.into_iter();
    for (low, high, count) in brackets {
        for i in next.by_ref().take(count) {
            let table = chosen[i].population;
            let room = ((high - low) / 20).clamp(0, 300) as u64 + 1;
            out[i] = if table > high {
                high - rng.below(room) as i64
            } else if table < low {
                low + rng.below(room) as i64
            } else if table % 100 == 0 {
                // A rounded figure of the table: a plausible exact one near it.
                (table - 49 + rng.below(99) as i64).clamp(low, high)
            } else {
                table
            };
        }
    }
    Ok(out)
}

/// The members of kind `body` (CPAS, RCA): those it names, then others drawn from the member
/// communes.
fn commune_bodies(
    profile: &Profile,
    body: &CommuneBody,
    communes: &[Member],
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<Member>> {
    let count = wanted(profile.categories, &body.category);
    let display_of = |m: &Member| {
        // The commune's name is its display name without "Ville de" / "Commune d'"...
        m.display
            .split_once(' ')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_else(|| m.display.clone())
    };
    let mut named = Vec::new();
    for n in body.named {
        let commune = communes.iter().find(|m| m.name == slug(n)).ok_or_else(|| {
            anyhow::anyhow!(
                "profile {}: the {} of {n} is named but {n} is not a member commune",
                profile.name,
                body.title
            )
        })?;
        named.push(commune);
    }
    let mut others: Vec<&Member> = communes
        .iter()
        .filter(|m| {
            m.population.unwrap_or(0) >= body.min_population
                && !named.iter().any(|n| n.name == m.name)
        })
        .collect();
    if named.len() > count || named.len() + others.len() < count {
        anyhow::bail!(
            "profile {}: {count} members of category {} cannot be drawn from {} member communes",
            profile.name,
            category_name(body.category),
            named.len() + others.len()
        );
    }
    rng.shuffle(&mut others);
    let take = count - named.len();
    Ok(named
        .into_iter()
        .chain(others.into_iter().take(take))
        .map(|commune| {
            // "de Mons" -> "CPAS de Mons"; the commune's own preposition is kept.
            let of_commune = display_of(commune);
            Member {
                name: format!("{}-{}", body.prefix, commune.name),
                display: format!("{} {of_commune}", body.title),
                category: body.category,
                province: commune.province,
                population: commune
                    .population
                    .filter(|_| body.category == Category::Cpas),
                domain: format!("{}-{}", body.prefix, commune.domain),
                products: BTreeMap::new(),
            }
        })
        .collect())
}

/// `de Mons`, `d'Ans`, `du Roeulx`, `des Bons Villers`.
fn of(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("Les ") {
        return format!("des {rest}");
    }
    if let Some(rest) = name.strip_prefix("Le ") {
        return format!("du {rest}");
    }
    let vowel = name
        .chars()
        .next()
        .is_some_and(|c| "AEIOUYÉÈÊÂÎÔÛ".contains(c));
    if vowel {
        format!("d'{name}")
    } else {
        format!("de {name}")
    }
}

/// A DNS label from a place name: `Braine-l'Alleud` -> `braine-lalleud`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' => 'e',
            'î' | 'ï' | 'Î' => 'i',
            'ô' | 'ö' | 'Ô' => 'o',
            'û' | 'ü' | 'ù' | 'Û' => 'u',
            'ç' => 'c',
            '\'' | '’' => continue,
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => '-',
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('-').to_string()
}

/// Names and domains must be unique, and no domain may be under another member's.
fn check_unique(members: &[Member]) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    for m in members {
        if !names.insert(m.name.as_str()) {
            anyhow::bail!("two members are named {}", m.name);
        }
        if !is_tenant_name(&m.name) || !mutu_api::common::is_dns_name(&m.domain) {
            anyhow::bail!(
                "member {} ({}): its name or domain {} is not a DNS name",
                m.name,
                m.display,
                m.domain
            );
        }
    }
    for a in members {
        for b in members {
            if a.name != b.name && mutu_api::common::is_within_domain(&a.domain, &b.domain) {
                anyhow::bail!(
                    "the domain {} of {} is under {} of {}",
                    a.domain,
                    a.name,
                    b.domain,
                    b.name
                );
            }
        }
    }
    Ok(())
}

/// A tenant name: a DNS label short enough for the namespace `tenant-<name>`.
pub fn is_tenant_name(name: &str) -> bool {
    mutu_api::common::is_dns_label(name)
        && name.len() <= 63 - mutu_api::common::TENANT_NAMESPACE_PREFIX.len()
}

/// How many sites of `product` the member may host.
fn capacity(profile: &Profile, member: &Member, product: &str) -> usize {
    let variants = profile
        .sites
        .iter()
        .find(|(p, _)| *p == product)
        .map(|(_, v)| v.len())
        .unwrap_or(0);
    let allowed = match member.category {
        // More sites of one product for larger communes: a tourism site over 10,000
        // inhabitants, a cultural one over 40,000.
        Category::Commune => {
            let p = member.population.unwrap_or(0);
            1 + usize::from(p > 10_000) + usize::from(p > 40_000)
        }
        Category::Province => variants,
        _ => 1,
    };
    allowed.min(variants)
}

/// Whether `member` may get one more site of `product`.
fn eligible(profile: &Profile, member: &Member, product: &str) -> bool {
    let has = member.products.get(product).copied().unwrap_or(0);
    let excluded = profile.exclusive.iter().any(|(a, b)| {
        (*a == product && member.products.contains_key(b))
            || (*b == product && member.products.contains_key(a))
    });
    !excluded && has < capacity(profile, member, product)
}

/// How likely a member is to host one more product: larger communes host more.
fn weight(member: &Member) -> u64 {
    match member.category {
        Category::Commune | Category::Cpas => isqrt(member.population.unwrap_or(0).max(1) as u64),
        _ => isqrt(20_000),
    }
}

fn isqrt(n: u64) -> u64 {
    let mut x = (n as f64).sqrt() as u64;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x.max(1)
}

/// Spreads each category's instances over its members: first one primary product each (so
/// every member hosts something), then the rest, each site to a member drawn with a
/// probability growing with its size.
fn allocate(profile: &Profile, members: &mut [Member], rng: &mut SplitMix64) -> anyhow::Result<()> {
    // The allocation must add up to the profile's instances.
    for (product, instances) in profile.products {
        let allocated: usize = profile
            .allocation
            .iter()
            .map(|(_, table)| wanted(table, product))
            .sum();
        if allocated != *instances {
            anyhow::bail!(
                "profile {}: {product} has {instances} instances but its allocation to categories sums to {allocated}",
                profile.name
            );
        }
    }
    for (category, table) in profile.allocation {
        let mut left: BTreeMap<&'static str, usize> = table.iter().copied().collect();
        let mut ids: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].category == *category)
            .collect();
        let primary: &[&str] = profile
            .primary
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, p)| *p)
            .unwrap_or(&[]);
        rng.shuffle(&mut ids);
        for &i in &ids {
            let choices: Vec<(&'static str, u64)> = left
                .iter()
                .filter(|(p, n)| {
                    **n > 0 && primary.contains(p) && eligible(profile, &members[i], p)
                })
                .map(|(p, n)| (*p, *n as u64))
                .collect();
            if let Some(product) = rng.pick(&choices) {
                *members[i].products.entry(product).or_default() += 1;
                if let Some(n) = left.get_mut(product) {
                    *n -= 1;
                }
            }
        }
        ids.sort_unstable();
        for (product, _) in table.iter() {
            let Some(&count) = left.get(product) else {
                continue;
            };
            for _ in 0..count {
                let choices: Vec<(usize, u64)> = ids
                    .iter()
                    .filter(|&&i| eligible(profile, &members[i], product))
                    .map(|&i| (i, weight(&members[i])))
                    .collect();
                let Some(i) = rng.pick(&choices) else {
                    anyhow::bail!(
                        "profile {}: no {} member can host one more {product} site",
                        profile.name,
                        category_name(*category)
                    );
                };
                *members[i].products.entry(product).or_default() += 1;
            }
        }
    }
    Ok(())
}

fn metadata(profile: &Profile, name: &str, namespace: Option<&str>) -> Value {
    let mut meta = json!({
        "name": name,
        "labels": { PROFILE_LABEL: profile.name },
    });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

fn tenant(profile: &Profile, m: &Member) -> anyhow::Result<MemberTenant> {
    let mut spec = json!({
        "displayName": m.display,
        "category": m.category,
        "domains": [m.domain],
        "admins": { "groups": [format!("{}-admins", m.name)] },
        "entitlements": m.products,
    });
    if let Some(p) = m.province {
        spec["province"] = json!(p);
    }
    if let Some(p) = m.population {
        spec["population"] = json!(p);
    }
    let tenant: MemberTenant = serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "MemberTenant",
        "metadata": metadata(profile, &m.name, None),
        "spec": spec,
    }))
    .with_context(|| format!("member {}", m.name))?;
    Ok(tenant)
}

fn member_sites(
    profile: &Profile,
    m: &Member,
    products: &[Product],
) -> anyhow::Result<Vec<PloneSite>> {
    let namespace = tenant_namespace(&m.name);
    let mut out = Vec::new();
    // Sites in the catalog's order of products.
    for product in products {
        let product_name = product.name_any();
        let count = m.products.get(product_name.as_str()).copied().unwrap_or(0);
        let variants = profile
            .sites
            .iter()
            .find(|(p, _)| *p == product_name)
            .map(|(_, v)| *v)
            .unwrap_or(&[]);
        if count > variants.len() {
            anyhow::bail!(
                "profile {}: {} has {count} {product_name} sites but the profile names only {}",
                profile.name,
                m.name,
                variants.len()
            );
        }
        for variant in &variants[..count] {
            let hostnames: Vec<String> = variant
                .hosts
                .iter()
                .map(|h| {
                    if h.is_empty() {
                        m.domain.clone()
                    } else {
                        format!("{h}.{}", m.domain)
                    }
                })
                .collect();
            let mut meta = metadata(profile, variant.name, Some(&namespace));
            meta["labels"][mutu_api::PRODUCT_LABEL] = json!(product_name);
            meta["labels"][mutu_api::TENANT_LABEL] = json!(m.name);
            if profile.pilot.contains(&m.name.as_str()) {
                meta["labels"][COHORT_LABEL] = json!("pilot");
            }
            if product.spec.engine == mutu_api::product::Engine::Plone {
                // The member's own web site bears its name; the others say what they are.
                let title = match (product_name.as_str(), variant.hosts) {
                    ("web", [_, ""]) => m.display.clone(),
                    ("web", [what, ..]) => format!("{} ({what})", m.display),
                    _ => format!("{} — {}", product.spec.display_name, m.display),
                };
                meta["annotations"] = json!({ TITLE_ANNOTATION: title });
            }
            let site: PloneSite = serde_json::from_value(json!({
                "apiVersion": API_VERSION,
                "kind": "PloneSite",
                "metadata": meta,
                "spec": { "product": product_name, "hostnames": hostnames },
            }))
            .with_context(|| format!("site {namespace}/{}", variant.name))?;
            out.push(site);
        }
    }
    Ok(out)
}

/// The fleet as multi-document YAML, with a header saying what it is and how to apply it.
pub fn to_yaml(profile: &Profile, seed: u64, fleet: &Fleet) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The fleet of profile {}: {}.\n\
         # {} products, {} members, {} sites. Generated by `mutu fleet generate --profile {} --seed {seed}`;\n\
         # the same profile and seed always give the same bytes.\n\
         #\n\
         # Apply with `kubectl apply -f` after the CRDs (`mutu crds | kubectl apply -f -`). The sites\n\
         # go in their members' namespaces (tenant-<member>), which mutu creates: apply again once\n\
         # `kubectl wait --for=condition=Ready membertenants -l {PROFILE_LABEL}={}` returns.",
        profile.name,
        profile.source,
        fleet.products.len(),
        fleet.tenants.len(),
        fleet.sites.len(),
        profile.name,
        profile.name,
    );
    for product in &fleet.products {
        let name = product.name_any();
        let instances = wanted(profile.products, &name.as_str());
        let _ = writeln!(
            out,
            "---\n# Product {}: {instances} instances in profile {}.",
            product.spec.display_name, profile.name
        );
        out.push_str(&yaml(product)?);
    }
    let _ = writeln!(
        out,
        "---\n# Every site is backed up every night (the default policy)."
    );
    out.push_str(&yaml(&fleet.backups)?);
    let mut sites_of: BTreeMap<String, Vec<&PloneSite>> = BTreeMap::new();
    for site in &fleet.sites {
        sites_of
            .entry(site.namespace().unwrap_or_default())
            .or_default()
            .push(site);
    }
    let mut category = None;
    for tenant in &fleet.tenants {
        if category != Some(tenant.spec.category) {
            category = Some(tenant.spec.category);
            let count = wanted(profile.categories, &tenant.spec.category);
            let _ = writeln!(
                out,
                "---\n# Members of category {}: {count}.",
                category_name(tenant.spec.category)
            );
        } else {
            out.push_str("---\n");
        }
        out.push_str(&yaml(tenant)?);
    }
    for tenant in &fleet.tenants {
        let namespace = tenant_namespace(&tenant.name_any());
        for (i, site) in sites_of.get(&namespace).into_iter().flatten().enumerate() {
            if i == 0 {
                let _ = writeln!(
                    out,
                    "---\n# Sites of {} ({namespace}).",
                    tenant.spec.display_name
                );
            } else {
                out.push_str("---\n");
            }
            out.push_str(&yaml(*site)?);
        }
    }
    Ok(out)
}

/// One object as a YAML document (without the `---` that separates it from the previous one).
fn yaml<T: serde::Serialize>(object: &T) -> anyhow::Result<String> {
    serde_saphyr::to_string(object).map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The random numbers
// ---------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea and Flood, 2014): small, fast, and its sequence for a seed is fixed
/// forever, so a fleet generated today is generated byte for byte the same tomorrow.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` without modulo bias; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// One of `choices`, each as likely as its weight; `None` when all weigh 0.
    pub fn pick<T: Copy>(&mut self, choices: &[(T, u64)]) -> Option<T> {
        let total: u64 = choices.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut r = self.below(total);
        for (item, w) in choices {
            if r < *w {
                return Some(*item);
            }
            r -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::common::is_within_domain;

    fn fleet(seed: u64) -> Fleet {
        generate(&IMIO_2019, seed).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn yaml(seed: u64) -> String {
        to_yaml(&IMIO_2019, seed, &fleet(seed)).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn members_by_category_and_province_are_the_reports() {
        for seed in [DEFAULT_SEED, 0, 1, 42] {
            let f = fleet(seed);
            assert_eq!(f.tenants.len(), 310);
            let count = |c: Category| f.tenants.iter().filter(|t| t.spec.category == c).count();
            assert_eq!(count(Category::Commune), 224);
            assert_eq!(count(Category::Province), 3);
            assert_eq!(count(Category::Cpas), 60);
            assert_eq!(count(Category::PoliceZone), 6);
            assert_eq!(count(Category::RescueZone), 8);
            assert_eq!(count(Category::Intercommunale), 6);
            assert_eq!(count(Category::Rca), 3);
            let communes = |p: Province| {
                f.tenants
                    .iter()
                    .filter(|t| t.spec.category == Category::Commune && t.spec.province == Some(p))
                    .count()
            };
            assert_eq!(communes(Province::Hainaut), 60);
            assert_eq!(communes(Province::Liege), 67);
            assert_eq!(communes(Province::Luxembourg), 38);
            assert_eq!(communes(Province::Namur), 34);
            assert_eq!(communes(Province::BrabantWallon), 25);
            assert!(
                f.tenants.iter().all(|t| t.spec.province.is_some()),
                "every member of this profile lies in one province"
            );
        }
    }

    #[test]
    fn communes_follow_the_population_brackets() {
        let f = fleet(DEFAULT_SEED);
        let brackets = [
            (0, 5_000, 52),
            (5_001, 10_000, 69),
            (10_001, 15_000, 43),
            (15_001, 20_000, 22),
            (20_001, 40_000, 29),
            (40_001, 100_000, 6),
            (100_001, i64::MAX, 3),
        ];
        for (low, high, n) in brackets {
            let got = f
                .tenants
                .iter()
                .filter(|t| t.spec.category == Category::Commune)
                .filter(|t| t.spec.population.is_some_and(|p| (low..=high).contains(&p)))
                .count();
            assert_eq!(got, n, "communes of {low}-{high} inhabitants");
        }
        let cpas_population = f
            .tenants
            .iter()
            .filter(|t| t.spec.category == Category::Cpas)
            .all(|t| t.spec.population.is_some());
        assert!(cpas_population, "a CPAS serves its commune's inhabitants");
    }

    #[test]
    fn the_reports_members_are_there_with_their_names() {
        let f = fleet(DEFAULT_SEED);
        let find = |display: &str| {
            f.tenants
                .iter()
                .find(|t| t.spec.display_name == display)
                .unwrap_or_else(|| panic!("{display} is missing"))
        };
        for (display, category) in [
            ("Ville de Mons", Category::Commune),
            ("Commune de Clavier", Category::Commune),
            ("Commune d'Ans", Category::Commune),
            ("Ville d'Arlon", Category::Commune),
            ("Commune de Braine-l'Alleud", Category::Commune),
            ("Commune des Bons Villers", Category::Commune),
            ("Commune d'Hélécine", Category::Commune),
            ("Commune de Herve", Category::Commune),
            ("CPAS de Mouscron", Category::Cpas),
            ("CPAS de Wanze", Category::Cpas),
            ("CPAS d'Ohey", Category::Cpas),
            ("CPAS d'Engis", Category::Cpas),
            ("Zone de Secours Hainaut-Centre", Category::RescueZone),
            ("Zone de Secours Brabant Wallon", Category::RescueZone),
            ("Zone de police Ans/Saint-Nicolas", Category::PoliceZone),
        ] {
            assert_eq!(find(display).spec.category, category, "{display}");
        }
        let mons = find("Ville de Mons");
        assert_eq!(mons.name_any(), "mons");
        assert_eq!(mons.spec.domains, vec!["mons.be"]);
        assert_eq!(mons.spec.province, Some(Province::Hainaut));
        assert_eq!(find("CPAS de Wanze").name_any(), "cpas-wanze");
        assert_eq!(find("Commune d'Ans").spec.province, Some(Province::Liege));
        assert!(
            !f.tenants.iter().any(|t| t.name_any() == "aubange"),
            "Aubange left in 2019"
        );
    }

    #[test]
    fn sites_by_product_are_the_reports_819() {
        for seed in [DEFAULT_SEED, 0, 7, 12345] {
            let f = fleet(seed);
            assert_eq!(f.sites.len(), 819);
            let mut by_product: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &f.sites {
                *by_product.entry(s.spec.product.as_str()).or_default() += 1;
            }
            let expected: BTreeMap<&str, usize> = [
                ("docs", 66),
                ("intranet", 2),
                ("delib", 159),
                ("pst", 66),
                ("urban", 52),
                ("web", 266),
                ("teleservices-v1", 12),
                ("teleservices", 99),
                ("aes", 36),
                ("atal", 52),
                ("os-skills", 9),
            ]
            .into_iter()
            .collect();
            assert_eq!(by_product, expected, "seed {seed}");
            let plone: usize = ["docs", "intranet", "delib", "pst", "urban", "web"]
                .iter()
                .map(|p| expected[p])
                .sum();
            assert_eq!(plone, 611, "the report's Plone instances");
        }
    }

    #[test]
    fn the_catalog_has_every_product_with_the_right_engine() {
        let f = fleet(DEFAULT_SEED);
        let names: Vec<String> = f.products.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            [
                "docs",
                "intranet",
                "delib",
                "pst",
                "urban",
                "web",
                "teleservices-v1",
                "teleservices",
                "aes",
                "atal",
                "os-skills"
            ]
        );
        use mutu_api::product::Engine;
        for p in &f.products {
            let plone = ["docs", "intranet", "delib", "pst", "urban", "web"]
                .contains(&p.name_any().as_str());
            let spec = &p.spec;
            if plone {
                assert_eq!(spec.engine, Engine::Plone, "{}", p.name_any());
                assert!(!spec.site_creation_command.is_empty(), "{}", p.name_any());
            } else {
                assert_eq!(spec.engine, Engine::Generic, "{}", p.name_any());
                assert!(spec.site_creation_command.is_empty() && spec.upgrade_command.is_empty());
                assert!(spec.solr.is_none());
                assert!(
                    spec.storage
                        .as_ref()
                        .is_some_and(|s| s.size.is_some() && s.mode.is_none()),
                    "{} needs a volume and no storage mode",
                    p.name_any()
                );
            }
            assert!(
                spec.image.starts_with("registry.imio.be/"),
                "{}",
                spec.image
            );
            assert!(spec.health_path.starts_with('/'));
            assert!(
                spec.quota.is_some(),
                "{} has no per-instance quota",
                p.name_any()
            );
        }
        let solr: Vec<String> = f
            .products
            .iter()
            .filter(|p| p.spec.solr.as_ref().is_some_and(|s| s.enabled))
            .map(|p| p.name_any())
            .collect();
        assert_eq!(solr, ["docs", "delib", "urban", "web"]);
    }

    /// Every field examples/catalog.yaml sets on a product, the profile sets the same way.
    #[test]
    fn the_catalog_agrees_with_examples_catalog() {
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
            .join("../../examples/catalog.yaml");
        let text = std::fs::read_to_string(&root)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()));
        let examples: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{e}"));
        let ours: Vec<Value> =
            serde_saphyr::from_multiple(IMIO_2019.catalog).unwrap_or_else(|e| panic!("{e}"));
        fn subset(small: &Value, big: &Value, path: &str) {
            match (small, big) {
                (Value::Object(s), Value::Object(b)) => {
                    for (k, v) in s {
                        let Some(w) = b.get(k) else {
                            panic!("{path}.{k} is in examples/catalog.yaml but not in the profile")
                        };
                        subset(v, w, &format!("{path}.{k}"));
                    }
                }
                _ => assert_eq!(small, big, "{path} differs from examples/catalog.yaml"),
            }
        }
        assert!(!examples.is_empty());
        for e in &examples {
            let name = &e["metadata"]["name"];
            let Some(o) = ours.iter().find(|o| &o["metadata"]["name"] == name) else {
                panic!("product {name} of examples/catalog.yaml is not in the profile");
            };
            subset(&e["spec"], &o["spec"], &format!("{name}.spec"));
        }
    }

    #[test]
    fn hostnames_are_unique_and_under_their_tenants_domains() {
        let f = fleet(DEFAULT_SEED);
        let tenants: BTreeMap<String, &MemberTenant> = f
            .tenants
            .iter()
            .map(|t| (tenant_namespace(&t.name_any()), t))
            .collect();
        let mut seen = BTreeSet::new();
        let mut names = BTreeSet::new();
        for s in &f.sites {
            let ns = s.namespace().unwrap_or_default();
            let tenant = tenants
                .get(&ns)
                .unwrap_or_else(|| panic!("{ns} is no tenant's"));
            assert!(
                names.insert((ns.clone(), s.name_any())),
                "{ns}/{} twice",
                s.name_any()
            );
            assert!(!s.spec.hostnames.is_empty());
            for h in &s.spec.hostnames {
                assert!(seen.insert(h.clone()), "hostname {h} used twice");
                assert!(mutu_api::common::is_dns_name(h), "{h}");
                assert!(
                    tenant.spec.domains.iter().any(|d| is_within_domain(h, d)),
                    "{h} is not under {:?}",
                    tenant.spec.domains
                );
            }
        }
        // Domains: unique, and none under another member's.
        let domains: Vec<&String> = f.tenants.iter().flat_map(|t| &t.spec.domains).collect();
        for a in &domains {
            for b in &domains {
                assert!(std::ptr::eq(*a, *b) || !is_within_domain(a, b), "{a} / {b}");
            }
        }
    }

    #[test]
    fn entitlements_are_exactly_the_sites() {
        for seed in [DEFAULT_SEED, 3] {
            let f = fleet(seed);
            let mut sites: BTreeMap<String, BTreeMap<String, i32>> = BTreeMap::new();
            for s in &f.sites {
                *sites
                    .entry(s.namespace().unwrap_or_default())
                    .or_default()
                    .entry(s.spec.product.clone())
                    .or_default() += 1;
            }
            for t in &f.tenants {
                let ns = tenant_namespace(&t.name_any());
                let got = sites.remove(&ns).unwrap_or_default();
                assert_eq!(t.spec.entitlements, got, "{}", t.name_any());
                assert!(!got.is_empty(), "{} hosts nothing", t.name_any());
            }
            assert!(sites.is_empty(), "sites outside any tenant: {sites:?}");
        }
    }

    #[test]
    fn a_commune_hosts_more_than_a_cpas() {
        let f = fleet(DEFAULT_SEED);
        let mean = |c: Category| {
            let members: Vec<&MemberTenant> =
                f.tenants.iter().filter(|t| t.spec.category == c).collect();
            let sites: i32 = members
                .iter()
                .flat_map(|t| t.spec.entitlements.values())
                .sum();
            sites as f64 / members.len() as f64
        };
        assert!(mean(Category::Commune) > 2.0 * mean(Category::Cpas));
        // Town planning and strategic plans are communal.
        for t in &f.tenants {
            if t.spec.category != Category::Commune {
                assert!(
                    !t.spec.entitlements.contains_key("urban"),
                    "{}",
                    t.name_any()
                );
            }
            assert!(
                !(t.spec.entitlements.contains_key("teleservices")
                    && t.spec.entitlements.contains_key("teleservices-v1")),
                "{} has both generations of the e-services",
                t.name_any()
            );
        }
    }

    #[test]
    fn the_small_profile_is_one_member_with_one_site_of_each_product() {
        let small = profile("small").unwrap_or_else(|e| panic!("{e}"));
        let fleet = generate(small, DEFAULT_SEED).unwrap_or_else(|e| panic!("{e:#}"));
        validate(&fleet).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(fleet.tenants.len(), 1);
        assert_eq!(fleet.products.len(), 11);
        let mut products: Vec<String> =
            fleet.sites.iter().map(|s| s.spec.product.clone()).collect();
        products.sort();
        let mut catalog: Vec<String> = fleet.products.iter().map(|p| p.name_any()).collect();
        catalog.sort();
        assert_eq!(products, catalog, "one site of each product");
        for site in &fleet.sites {
            assert_eq!(site.namespace().as_deref(), Some("tenant-namur"));
            assert!(
                site.spec.hostnames.iter().all(|h| h.ends_with("namur.be")),
                "{:?}",
                site.spec.hostnames
            );
        }
        let entitled: i32 = fleet.tenants[0].spec.entitlements.values().sum();
        assert_eq!(entitled, 11);
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let a = yaml(DEFAULT_SEED);
        assert_eq!(a, yaml(DEFAULT_SEED));
        assert_ne!(a, yaml(DEFAULT_SEED + 1), "the seed must matter");
    }

    #[test]
    fn the_yaml_reads_back_as_the_api_kinds_and_passes_their_rules() {
        let f = fleet(DEFAULT_SEED);
        let text = yaml(DEFAULT_SEED);
        // More documents than serde-saphyr's default budget (1,024) allows.
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! { max_documents: 10_000 },
        };
        let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, options)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 11 + 1 + 310 + 819);
        let (mut products, mut tenants, mut sites) = (vec![], vec![], vec![]);
        let mut policies = vec![];
        for doc in docs {
            assert_eq!(doc["apiVersion"], API_VERSION);
            match doc["kind"].as_str() {
                Some("Product") => {
                    let p: Product = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                    assert!(p.validate_cel().is_ok());
                    products.push(p);
                }
                Some("BackupPolicy") => {
                    let b: BackupPolicy =
                        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                    assert!(b.validate_cel().is_ok());
                    assert!(b.spec.default, "the policy covers every site");
                    // 819 sites x 10 min in a window of 7 h: at least 20 at once.
                    assert!(b.spec.max_concurrent >= 20, "{}", b.spec.max_concurrent);
                    policies.push(b);
                }
                Some("MemberTenant") => {
                    let t: MemberTenant =
                        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                    assert!(t.validate_cel().is_ok());
                    assert!(is_tenant_name(&t.name_any()), "{}", t.name_any());
                    assert!(t.spec.display_name.chars().count() <= 128);
                    tenants.push(t);
                }
                Some("PloneSite") => {
                    let s: PloneSite =
                        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                    assert!(s.validate_cel().is_ok());
                    assert!(mutu_api::common::is_dns_label(&s.name_any()));
                    sites.push(s);
                }
                other => panic!("unexpected kind {other:?}"),
            }
        }
        assert_eq!(products, f.products);
        assert_eq!(policies, vec![f.backups.clone()]);
        assert_eq!(tenants, f.tenants);
        assert_eq!(sites, f.sites);
    }

    #[test]
    fn an_unknown_profile_is_refused_with_the_known_ones() {
        let Err(e) = profile("imio-2020") else {
            panic!("accepted an unknown profile");
        };
        let e = e.to_string();
        assert!(e.contains("\"imio-2020\""), "{e}");
        assert!(e.contains("known profiles: imio-2019, small"), "{e}");
        assert!(profile("imio-2019").is_ok());
    }

    #[test]
    fn names_become_dns_labels_and_french_prepositions() {
        assert_eq!(slug("Braine-l'Alleud"), "braine-lalleud");
        assert_eq!(slug("La Louvière"), "la-louviere");
        assert_eq!(slug("Vaux-sur-Sûre"), "vaux-sur-sure");
        assert_eq!(slug("Écaussinnes"), "ecaussinnes");
        assert_eq!(of("Ans"), "d'Ans");
        assert_eq!(of("Écaussinnes"), "d'Écaussinnes");
        assert_eq!(of("Le Roeulx"), "du Roeulx");
        assert_eq!(of("Les Bons Villers"), "des Bons Villers");
        assert_eq!(of("Herve"), "de Herve");
        let communes = communes(&IMIO_2019).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(communes.len(), 262, "the communes of Wallonia");
        let slugs: BTreeSet<String> = communes.iter().map(|c| slug(&c.name)).collect();
        assert_eq!(slugs.len(), 262);
        assert!(
            slugs
                .iter()
                .all(|s| is_tenant_name(s) && is_tenant_name(&format!("cpas-{s}")))
        );
    }

    #[test]
    fn the_random_numbers_never_change() {
        // The reference values of SplitMix64 for seed 1234567.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        let mut rng = SplitMix64::new(0);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
        }
        assert_eq!(rng.pick::<u8>(&[(1, 0), (2, 0)]), None);
        assert_eq!(rng.pick(&[(1, 0), (2, 5)]), Some(2));
    }
}
