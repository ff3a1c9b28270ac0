//! The chart of sites Ready over time, the operators' curve beside the bulk
//! apply's, as SVG.

use super::Results;

/// Sites Ready over time, for the operators and for the bulk apply.
pub(super) fn svg(r: &Results) -> String {
    let (w, h, m) = (800.0, 480.0, 60.0);
    let t_max = r
        .operator_curve
        .iter()
        .chain(r.raw_curve.iter())
        .map(|c| c.0)
        .fold(1.0_f64, f64::max);
    let n = f64::from(r.sites.max(1));
    let x = |t: f64| m + (w - 2.0 * m) * t / t_max;
    let y = |v: u32| h - m - (h - 2.0 * m) * f64::from(v) / n;
    // A phase not measured has no curve, and no legend.
    let series = |curve: &[(f64, u32)], colour: &str, dash: &str, ly: f64, legend: &str| {
        if curve.is_empty() {
            return String::new();
        }
        let points = curve
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{points}\"/>\n\
             <text x=\"{lx}\" y=\"{ly}\" fill=\"{colour}\">{legend}</text>\n",
            lx = w - m - 330.0
        )
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
<text x="{m}" y="30" font-size="16">{sites} sites: Ready over time</text>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/>
<line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="#333"/>
<text x="{r}" y="{bl}" text-anchor="end">{t_max:.0} s</text>
<text x="{m}" y="{bl}">0</text>
<text x="{ml}" y="{m}" text-anchor="end">{sites}</text>
{op}{raw}</svg>
"##,
        sites = r.sites,
        b = h - m,
        r = w - m,
        bl = h - m + 20.0,
        ml = m - 6.0,
        op = series(
            &r.operator_curve,
            "#1f6feb",
            "",
            h - m - 40.0,
            &format!("mutu's operators ({:.0} s)", r.converge_s)
        ),
        raw = series(
            &r.raw_curve,
            "#d1242f",
            r#" stroke-dasharray="6 4""#,
            h - m - 20.0,
            &format!(
                "bulk server-side apply, no operator ({:.0} s)",
                r.raw_apply_s
            )
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_of_one_phase_has_one_curve() {
        let r = Results {
            sites: 20,
            converge_s: 15.0,
            operator_curve: vec![(1.0, 3), (15.0, 20)],
            ..Default::default()
        };
        let chart = svg(&r);
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert!(!chart.contains("no operator"));
    }
}
