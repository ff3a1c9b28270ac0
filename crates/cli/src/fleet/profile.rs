//! The profiles `mutu fleet generate` draws a fleet from: the figures of a real
//! fleet (members by category and province, communes by population bracket,
//! instances by product, which kinds of member take which products) and the data
//! its members and products come from (Wallonia's communes, the product catalog).

use mutu_api::tenant::{Category, Province};

/// The figures of a fleet, and the data its members and products are drawn from.
pub struct Profile {
    /// Name given to `--profile`.
    pub name: &'static str,
    /// One line saying where the figures come from.
    pub source: &'static str,
    /// Members by category.
    pub categories: &'static [(Category, usize)],
    /// Member communes by province.
    pub commune_provinces: &'static [(Province, usize)],
    /// Member communes by population bracket: (lowest, highest, communes), both inclusive.
    pub brackets: &'static [(i64, i64, usize)],
    /// Hosted instances by product, in the order the products are printed.
    pub products: &'static [(&'static str, usize)],
    /// Instances of each product hosted by each category of member (sums to `products`).
    pub allocation: &'static [(Category, &'static [(&'static str, usize)])],
    /// Products each member of a category starts with (one of them, so that every member
    /// hosts at least one site); the rest is spread over the members afterwards.
    pub primary: &'static [(Category, &'static [&'static str])],
    /// Products a member never has together (e.g. two generations of the same application).
    pub exclusive: &'static [(&'static str, &'static str)],
    /// Sites of each product a member may host: (site name, hostname prefixes, "" being the
    /// member's domain itself). The first is its first site of the product, and so on.
    pub sites: &'static [(&'static str, &'static [SiteName])],
    /// Members that are not communes and are not derived from one: fixed, taken in order.
    pub bodies: &'static [Body],
    /// Members derived from a member commune: CPAS, RCA.
    pub commune_bodies: &'static [CommuneBody],
    /// Communes that are never members (e.g. they left the cooperative).
    pub departed: &'static [&'static str],
    /// Communes that are always members (besides those over `always_member_population`).
    pub required_communes: &'static [&'static str],
    /// Communes with more inhabitants than this are always members.
    pub always_member_population: i64,
    /// Members whose sites form the `pilot` rollout cohort.
    pub pilot: &'static [&'static str],
    /// The communes of the region: province, name, population, display name (TSV).
    pub communes: &'static str,
    /// The product catalog (multi-document YAML of Products).
    pub catalog: &'static str,
    /// When set, the fleet is this one member with one site of every product of the
    /// catalog (a demo that comes up in a minute or two); the figures above are not drawn.
    pub single_member: Option<Body>,
}

/// One site of a product on a member: its PloneSite name and hostname prefixes.
pub struct SiteName {
    pub name: &'static str,
    pub hosts: &'static [&'static str],
}

/// A member given by the profile as it is.
pub struct Body {
    pub category: Category,
    pub name: &'static str,
    pub display: &'static str,
    pub province: Option<Province>,
    pub domain: &'static str,
}

/// A kind of member that belongs to a commune, named after it (`CPAS de Wanze`, `cpas-wanze`,
/// `cpas-wanze.be`).
pub struct CommuneBody {
    pub category: Category,
    /// Prefix of its tenant name and domain, e.g. `cpas`.
    pub prefix: &'static str,
    /// Start of its display name, e.g. `CPAS` (then `de Wanze`, `d'Ohey`, ...).
    pub title: &'static str,
    /// Those the profile names, by commune: always members.
    pub named: &'static [&'static str],
    /// Only communes with at least this population have one.
    pub min_population: i64,
}

const fn site(name: &'static str, hosts: &'static [&'static str]) -> SiteName {
    SiteName { name, hosts }
}

/// iMio's hosting on 31/12/2019, from its activity report (../shared/data/imio-2019.md).
pub static IMIO_2019: Profile = Profile {
    name: "imio-2019",
    source: "iMio's hosting at the end of 2019 (activity report 2019)",
    categories: &[
        (Category::Commune, 224),
        (Category::Province, 3),
        (Category::Cpas, 60),
        (Category::PoliceZone, 6),
        (Category::RescueZone, 8),
        (Category::Intercommunale, 6),
        (Category::Rca, 3),
    ],
    commune_provinces: &[
        (Province::Hainaut, 60),
        (Province::Liege, 67),
        (Province::Luxembourg, 38),
        (Province::Namur, 34),
        (Province::BrabantWallon, 25),
    ],
    brackets: &[
        (0, 5_000, 52),
        (5_001, 10_000, 69),
        (10_001, 15_000, 43),
        (15_001, 20_000, 22),
        (20_001, 40_000, 29),
        (40_001, 100_000, 6),
        (100_001, 1_000_000, 3),
    ],
    products: &[
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
    ],
    allocation: &[
        (
            Category::Commune,
            &[
                ("web", 231),
                ("delib", 108),
                ("docs", 38),
                ("pst", 52),
                ("urban", 52),
                ("teleservices", 99),
                ("teleservices-v1", 12),
                ("aes", 36),
                ("atal", 48),
                ("os-skills", 5),
            ],
        ),
        (
            Category::Cpas,
            &[
                ("delib", 38),
                ("docs", 14),
                ("pst", 14),
                ("web", 6),
                ("atal", 4),
                ("os-skills", 2),
            ],
        ),
        (
            Category::PoliceZone,
            &[("web", 6), ("delib", 3), ("docs", 2)],
        ),
        (
            Category::RescueZone,
            &[("web", 8), ("delib", 5), ("docs", 6), ("intranet", 1)],
        ),
        (
            Category::Province,
            &[
                ("web", 6),
                ("delib", 3),
                ("docs", 3),
                ("intranet", 1),
                ("os-skills", 1),
            ],
        ),
        (
            Category::Intercommunale,
            &[("web", 6), ("delib", 2), ("docs", 3), ("os-skills", 1)],
        ),
        (Category::Rca, &[("web", 3)]),
    ],
    primary: &[
        (Category::Commune, &["web", "delib"]),
        (Category::Cpas, &["delib", "docs", "pst"]),
        (Category::PoliceZone, &["web"]),
        (Category::RescueZone, &["web"]),
        (Category::Province, &["web"]),
        (Category::Intercommunale, &["web"]),
        (Category::Rca, &["web"]),
    ],
    exclusive: &[("teleservices-v1", "teleservices")],
    sites: SITES,
    bodies: &[
        Body {
            category: Category::Province,
            name: "province-namur",
            display: "Province de Namur",
            province: Some(Province::Namur),
            domain: "province-namur.be",
        },
        Body {
            category: Category::Province,
            name: "province-luxembourg",
            display: "Province de Luxembourg",
            province: Some(Province::Luxembourg),
            domain: "province-luxembourg.be",
        },
        Body {
            category: Category::Province,
            name: "province-brabant-wallon",
            display: "Province du Brabant wallon",
            province: Some(Province::BrabantWallon),
            domain: "province-brabant-wallon.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-ans-saint-nicolas",
            display: "Zone de police Ans/Saint-Nicolas",
            province: Some(Province::Liege),
            domain: "zp-ans-saint-nicolas.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-mons-quevy",
            display: "Zone de police Mons-Quévy",
            province: Some(Province::Hainaut),
            domain: "zp-mons-quevy.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-namur-capitale",
            display: "Zone de police Namur Capitale",
            province: Some(Province::Namur),
            domain: "zp-namur-capitale.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-seraing-neupre",
            display: "Zone de police Seraing-Neupré",
            province: Some(Province::Liege),
            domain: "zp-seraing-neupre.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-orneau-mehaigne",
            display: "Zone de police Orneau-Mehaigne",
            province: Some(Province::Namur),
            domain: "zp-orneau-mehaigne.be",
        },
        Body {
            category: Category::PoliceZone,
            name: "zp-famenne-ardenne",
            display: "Zone de police Famenne-Ardenne",
            province: Some(Province::Luxembourg),
            domain: "zp-famenne-ardenne.be",
        },
        // The name and domain of examples/tenants.yaml.
        Body {
            category: Category::RescueZone,
            name: "zs-hainaut-centre",
            display: "Zone de Secours Hainaut-Centre",
            province: Some(Province::Hainaut),
            domain: "hainaut-centre.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-brabant-wallon",
            display: "Zone de Secours Brabant Wallon",
            province: Some(Province::BrabantWallon),
            domain: "zs-brabant-wallon.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-hainaut-est",
            display: "Zone de Secours Hainaut-Est",
            province: Some(Province::Hainaut),
            domain: "zs-hainaut-est.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-wallonie-picarde",
            display: "Zone de Secours de Wallonie picarde",
            province: Some(Province::Hainaut),
            domain: "zs-wallonie-picarde.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-nage",
            display: "Zone de Secours NAGE",
            province: Some(Province::Namur),
            domain: "zs-nage.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-dinaphi",
            display: "Zone de Secours DINAPHI",
            province: Some(Province::Namur),
            domain: "zs-dinaphi.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-luxembourg",
            display: "Zone de Secours Luxembourg",
            province: Some(Province::Luxembourg),
            domain: "zs-luxembourg.be",
        },
        Body {
            category: Category::RescueZone,
            name: "zs-hemeco",
            display: "Zone de Secours HEMECO",
            province: Some(Province::Liege),
            domain: "zs-hemeco.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "idea",
            display: "IDEA (Cœur du Hainaut)",
            province: Some(Province::Hainaut),
            domain: "idea.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "igretec",
            display: "IGRETEC",
            province: Some(Province::Hainaut),
            domain: "igretec.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "bep",
            display: "BEP (Bureau Économique de la Province de Namur)",
            province: Some(Province::Namur),
            domain: "bep.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "spi",
            display: "SPI (agence de développement de la province de Liège)",
            province: Some(Province::Liege),
            domain: "spi.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "inbw",
            display: "in BW",
            province: Some(Province::BrabantWallon),
            domain: "inbw.be",
        },
        Body {
            category: Category::Intercommunale,
            name: "intradel",
            display: "Intradel",
            province: Some(Province::Liege),
            domain: "intradel.be",
        },
    ],
    commune_bodies: &[
        CommuneBody {
            category: Category::Cpas,
            prefix: "cpas",
            title: "CPAS",
            named: &["Mouscron", "Wanze", "Ohey", "Engis"],
            min_population: 0,
        },
        CommuneBody {
            category: Category::Rca,
            prefix: "rca",
            title: "Régie communale autonome",
            named: &[],
            min_population: 10_001,
        },
    ],
    departed: &["Aubange"],
    required_communes: &[
        // Named by the report.
        "Mons",
        "Clavier",
        "Ans",
        "Arlon",
        "Awans",
        "Braine-l'Alleud",
        "Eghezée",
        "Gembloux",
        "Gerpinnes",
        "La Bruyère",
        "La Louvière",
        "Les Bons Villers",
        "Marche-en-Famenne",
        "Sombreffe",
        "Tournai",
        "Estaimpuis",
        "Houyet",
        "Florenville",
        "Stavelot",
        "Saint-Léger",
        "Virton",
        "Chaudfontaine",
        "Hélécine",
        "Ciney",
        "Herve",
        // Their CPAS and police zone are members.
        "Mouscron",
        "Wanze",
        "Ohey",
        "Engis",
        "Saint-Nicolas",
    ],
    always_member_population: 40_000,
    pilot: &["mons", "clavier", "gembloux", "la-louviere", "cpas-wanze"],
    communes: COMMUNES,
    catalog: CATALOG,
    single_member: None,
};

/// One member with one site of every product: `make demo PROFILE=small`.
pub static SMALL: Profile = Profile {
    name: "small",
    source: "one member with one site of each of iMio's 11 products",
    categories: &[(Category::Commune, 1)],
    commune_provinces: &[(Province::Namur, 1)],
    brackets: &[],
    products: &[
        ("docs", 1),
        ("intranet", 1),
        ("delib", 1),
        ("pst", 1),
        ("urban", 1),
        ("web", 1),
        ("teleservices-v1", 1),
        ("teleservices", 1),
        ("aes", 1),
        ("atal", 1),
        ("os-skills", 1),
    ],
    allocation: &[],
    primary: &[],
    exclusive: &[],
    sites: SITES,
    bodies: &[],
    commune_bodies: &[],
    departed: &[],
    required_communes: &[],
    always_member_population: 0,
    pilot: &["namur"],
    communes: COMMUNES,
    catalog: CATALOG,
    single_member: Some(Body {
        category: Category::Commune,
        name: "namur",
        display: "Ville de Namur",
        province: Some(Province::Namur),
        domain: "namur.be",
    }),
};

/// The communes of Wallonia (province, name, population, display name).
const COMMUNES: &str = include_str!("communes-wallonie.tsv");
/// iMio's product catalog.
const CATALOG: &str = include_str!("imio-2019-products.yaml");
/// The sites a member may host of each product, and their hostnames.
const SITES: &[(&str, &[SiteName])] = &[
    ("delib", &[site("delib", &["deliberations"])]),
    ("docs", &[site("docs", &["ged"])]),
    ("intranet", &[site("intranet", &["intranet"])]),
    ("pst", &[site("pst", &["pst"])]),
    ("urban", &[site("urban", &["urbanisme"])]),
    (
        "web",
        &[
            site("web", &["www", ""]),
            site("web-tourisme", &["tourisme"]),
            site("web-culture", &["culture"]),
        ],
    ),
    (
        "teleservices-v1",
        &[site("teleservices-v1", &["teleservices"])],
    ),
    ("teleservices", &[site("teleservices", &["e-guichet"])]),
    ("aes", &[site("aes", &["extrascolaire"])]),
    ("atal", &[site("atal", &["atal"])]),
    ("os-skills", &[site("os-skills", &["emploi"])]),
];

/// Every profile `--profile` knows.
pub static PROFILES: &[&Profile] = &[&IMIO_2019, &SMALL];

/// The profile named `name`, or an error listing the known ones.
pub fn profile(name: &str) -> anyhow::Result<&'static Profile> {
    PROFILES
        .iter()
        .copied()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            anyhow::anyhow!(
                "--profile: unknown profile {name:?}; known profiles: {}",
                known.join(", ")
            )
        })
}
