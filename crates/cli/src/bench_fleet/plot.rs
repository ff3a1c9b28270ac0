//! The chart of sites Ready over time, the operators' curve beside the bulk
//! apply's, as SVG.

use super::Results;

/// The chart's width and height, and the margin around its plot area.
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const MARGIN: f64 = 60.0;

/// Sites Ready over time, for the operators and for the bulk apply.
pub(super) fn svg(r: &Results) -> String {
    let (w, h, m) = (WIDTH, HEIGHT, MARGIN);
    let frame = Frame::of(r);
    let operators = Series {
        curve: &r.operator_curve,
        colour: "#1f6feb",
        dash: "",
        legend_y: h - m - 40.0,
        legend: format!("mutu's operators ({:.0} s)", r.converge_s),
    };
    let bulk = Series {
        curve: &r.raw_curve,
        colour: "#d1242f",
        dash: r#" stroke-dasharray="6 4""#,
        legend_y: h - m - 20.0,
        legend: format!(
            "bulk server-side apply, no operator ({:.0} s)",
            r.raw_apply_s
        ),
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
        t_max = frame.t_max,
        op = frame.series(&operators),
        raw = frame.series(&bulk),
    )
}

/// One curve of the chart, and its legend.
struct Series<'a> {
    curve: &'a [(f64, u32)],
    colour: &'a str,
    /// Extra attributes of the line: its dashes, if any.
    dash: &'a str,
    legend_y: f64,
    legend: String,
}

/// The plot area's scales: time from 0 to `t_max` seconds across, sites from
/// 0 to `sites` up.
struct Frame {
    t_max: f64,
    sites: f64,
}

impl Frame {
    /// Scales that hold both curves of `r` (and at least 1 s, and 1 site).
    fn of(r: &Results) -> Self {
        let t_max = r
            .operator_curve
            .iter()
            .chain(r.raw_curve.iter())
            .map(|c| c.0)
            .fold(1.0_f64, f64::max);
        Self {
            t_max,
            sites: f64::from(r.sites.max(1)),
        }
    }

    fn x(&self, t: f64) -> f64 {
        MARGIN + (WIDTH - 2.0 * MARGIN) * t / self.t_max
    }

    fn y(&self, v: u32) -> f64 {
        HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * f64::from(v) / self.sites
    }

    /// The points of a polyline through `curve`.
    fn points(&self, curve: &[(f64, u32)]) -> String {
        curve
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", self.x(*t), self.y(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The line and the legend of `s`; nothing for a phase not measured
    /// (no curve).
    fn series(&self, s: &Series) -> String {
        if s.curve.is_empty() {
            return String::new();
        }
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{points}\"/>\n\
             <text x=\"{lx}\" y=\"{ly}\" fill=\"{colour}\">{legend}</text>\n",
            colour = s.colour,
            dash = s.dash,
            points = self.points(s.curve),
            lx = WIDTH - MARGIN - 330.0,
            ly = s.legend_y,
            legend = s.legend,
        )
    }
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

    #[test]
    fn the_frame_spans_the_longest_curve_and_the_fleet() {
        let r = Results {
            sites: 20,
            operator_curve: vec![(0.0, 0), (15.0, 20)],
            raw_curve: vec![(0.0, 0), (30.0, 20)],
            ..Default::default()
        };
        let f = Frame::of(&r);
        assert_eq!((f.t_max, f.sites), (30.0, 20.0));
        assert_eq!((f.x(0.0), f.x(30.0), f.x(15.0)), (60.0, 740.0, 400.0));
        assert_eq!((f.y(0), f.y(20), f.y(10)), (420.0, 60.0, 240.0));
        assert_eq!(f.points(&[(0.0, 0), (15.0, 10)]), "60.0,420.0 400.0,240.0");
    }

    #[test]
    fn an_empty_run_still_has_a_frame() {
        let f = Frame::of(&Results::default());
        assert_eq!((f.t_max, f.sites), (1.0, 1.0));
        let chart = svg(&Results::default());
        assert!(chart.contains(">1 s</text>"), "{chart}");
        assert_eq!(chart.matches("<polyline").count(), 0);
    }

    #[test]
    fn a_curve_is_drawn_with_its_legend() {
        let r = Results {
            sites: 10,
            raw_apply_s: 4.4,
            raw_curve: vec![(0.0, 0), (4.4, 10)],
            ..Default::default()
        };
        let chart = svg(&r);
        assert!(chart.contains(
            "<polyline fill=\"none\" stroke=\"#d1242f\" stroke-width=\"2\" stroke-dasharray=\"6 4\" points=\"60.0,420.0 740.0,60.0\"/>\n\
             <text x=\"410\" y=\"400\" fill=\"#d1242f\">bulk server-side apply, no operator (4 s)</text>\n"
        ), "{chart}");
    }
}
