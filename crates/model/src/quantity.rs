//! Just enough resource-quantity arithmetic for quotas and placement: parse
//! `500m`, `2`, `1.5`, `512Mi`, `10G`, `1e3` as the API server does, and print
//! a total back. A quantity that cannot be read is `None`, never zero.

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
    // Beyond what a float holds (`1e999`, or `0e999`, which would be NaN): not read.
    Some(number * factor).filter(|v| v.is_finite())
}

/// Millicores of a CPU quantity (`500m` is 500, `1.5` is 1500).
pub fn millicores(q: &Quantity) -> Option<i64> {
    parse(q).map(|cores| (cores * 1000.0).round() as i64)
}

/// Whole units of a quantity: bytes of a memory or storage quantity.
pub fn units(q: &Quantity) -> Option<i64> {
    parse(q).map(|v| v.round() as i64)
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
    fn whole_amounts_are_read_as_the_scheduler_does() {
        assert_eq!(millicores(&q("500m")), Some(500));
        assert_eq!(millicores(&q("2")), Some(2000));
        assert_eq!(millicores(&q("1.5")), Some(1500));
        assert_eq!(units(&q("256Mi")), Some(256 << 20));
        assert_eq!(units(&q("1G")), Some(1_000_000_000));
        assert_eq!(units(&q("1024")), Some(1024));
        assert_eq!(millicores(&q("lots")), None, "never read as zero");
        assert_eq!(units(&q("")), None);
    }

    #[test]
    fn totals_print_in_readable_units() {
        assert_eq!(cpu(2.5).0, "2500m");
        assert_eq!(bytes(3.0 * 1024f64.powi(3)).0, "3Gi");
        assert_eq!(bytes(1536.0 * 1024.0 * 1024.0).0, "1536Mi");
    }
}
