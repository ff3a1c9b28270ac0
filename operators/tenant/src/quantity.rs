//! Just enough resource-quantity arithmetic to add up a tenant's quota:
//! parse `500m`, `2`, `1.5`, `512Mi`, `10G`, `1e3` and print the total back.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity in base units (cores, or bytes).
pub fn parse(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// CPU cores as millicores, e.g. `2500m`.
pub fn cpu(cores: f64) -> Quantity {
    // Inputs are whole millicores: round away the float error of the sums.
    Quantity(format!("{}m", (cores * 1000.0).round() as u64))
}

/// Bytes as whole mebibytes (rounded up), or gibibytes when exact, e.g. `12Gi`.
pub fn bytes(bytes: f64) -> Quantity {
    let mib = (bytes / 1024f64.powi(2) - 1e-6).ceil() as u64;
    if mib.is_multiple_of(1024) {
        Quantity(format!("{}Gi", mib / 1024))
    } else {
        Quantity(format!("{mib}Mi"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn parses_the_usual_suffixes() {
        assert_eq!(parse(&q("500m")), Some(0.5));
        assert_eq!(parse(&q("2")), Some(2.0));
        assert_eq!(parse(&q("1.5")), Some(1.5));
        assert_eq!(parse(&q("512Mi")), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse(&q("10G")), Some(1e10));
        assert_eq!(parse(&q("1e3")), Some(1000.0));
        assert_eq!(parse(&q("12 parsecs")), None);
    }

    #[test]
    fn totals_print_in_readable_units() {
        assert_eq!(cpu(2.5).0, "2500m");
        assert_eq!(bytes(3.0 * 1024f64.powi(3)).0, "3Gi");
        assert_eq!(bytes(1536.0 * 1024.0 * 1024.0).0, "1536Mi");
    }
}
