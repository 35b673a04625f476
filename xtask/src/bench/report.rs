//! The figures of a benchmark run: the table printed at the end and `target/bench/report.json`.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Which side of its limit a figure must stay on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// The value must not exceed the limit.
    AtMost,
    /// The value must reach the limit.
    AtLeast,
}

/// One measured figure against its target.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Figure {
    /// Stable name, such as `cli_render_vs_cat`.
    pub(crate) name: &'static str,
    /// The measured value.
    pub(crate) value: f64,
    /// What `value` counts: `ratio`, `ms`, `MiB`.
    pub(crate) unit: &'static str,
    /// What the value is measured against, with the raw numbers behind it.
    pub(crate) reference: String,
    /// Which side of `limit` the value must stay on.
    pub(crate) bound: Bound,
    /// The target.
    pub(crate) limit: f64,
    /// A condition besides the limit that must hold, such as "zero errors"; `None` when there is
    /// none, `Some(false)` when it failed.
    pub(crate) extra: Option<(&'static str, bool)>,
}

impl Figure {
    /// Whether the figure meets its target.
    pub(crate) fn met(&self) -> bool {
        let within = match self.bound {
            Bound::AtMost => self.value <= self.limit,
            Bound::AtLeast => self.value >= self.limit,
        };
        within && self.extra.is_none_or(|(_, held)| held)
    }

    /// The target as people read it: `<= 2.0`, `>= 0.5, zero errors`.
    pub(crate) fn target(&self) -> String {
        let sign = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        match self.extra {
            Some((condition, _)) => format!("{sign} {:?}, {condition}", self.limit),
            None => format!("{sign} {:?}", self.limit),
        }
    }
}

/// The JSON document of a run: `{"figures": [...], "machine": "...", "date": "..."}`.
pub(crate) fn to_json(figures: &[Figure], machine: &str, date: &str) -> Value {
    let figures: Vec<Value> = figures
        .iter()
        .map(|figure| {
            json!({
                "name": figure.name,
                "value": round(figure.value),
                "unit": figure.unit,
                "reference": figure.reference,
                "target": figure.target(),
                "met": figure.met(),
            })
        })
        .collect();
    json!({ "figures": figures, "machine": machine, "date": date })
}

/// A Markdown table of the figures, ready for the terminal and for BENCHMARKS.md.
pub(crate) fn table(figures: &[Figure]) -> String {
    let mut out = String::from("| figure | value | target | met | measured against |\n");
    out.push_str("|---|---|---|---|---|\n");
    for figure in figures {
        let met = if figure.met() { "yes" } else { "NO" };
        writeln!(
            out,
            "| `{}` | {} {} | {} | {met} | {} |",
            figure.name,
            round(figure.value),
            figure.unit,
            figure.target(),
            figure.reference
        )
        .unwrap();
    }
    out
}

/// The machine a run was measured on: CPU model and core count from `/proc/cpuinfo`, and the
/// kernel release.
pub(crate) fn machine(cpuinfo: &str, kernel: &str) -> String {
    let model = cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map_or("unknown CPU", |(_, value)| value.trim());
    let cores = cpuinfo
        .lines()
        .filter(|line| line.split_once(':').is_some_and(|(key, _)| key.trim() == "processor"))
        .count();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// Three decimals are as many as any figure can honestly claim.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(value: f64, bound: Bound, extra: Option<(&'static str, bool)>) -> Figure {
        Figure {
            name: "server_get_vs_nginx",
            value,
            unit: "ratio",
            reference: "nginx: 1000 req/s".to_owned(),
            bound,
            limit: 0.5,
            extra,
        }
    }

    #[test]
    fn targets_hold_on_their_side_of_the_limit() {
        assert!(figure(0.5, Bound::AtLeast, None).met());
        assert!(!figure(0.49, Bound::AtLeast, None).met());
        assert!(figure(0.5, Bound::AtMost, None).met());
        assert!(!figure(0.51, Bound::AtMost, None).met());
        assert!(!figure(0.9, Bound::AtLeast, Some(("zero errors", false))).met());
        assert_eq!(
            figure(0.9, Bound::AtLeast, Some(("zero errors", true))).target(),
            ">= 0.5, zero errors"
        );
    }

    #[test]
    fn the_report_has_the_documented_shape() {
        let figures = [
            figure(0.61234, Bound::AtLeast, Some(("zero errors", true))),
            figure(0.4, Bound::AtLeast, None),
        ];
        let report = to_json(&figures, "Some CPU, 2 cores, Linux 6.1", "2026-12-03T14:00:00Z");

        let mut keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["date", "figures", "machine"]);
        let first = &report["figures"][0];
        let mut fields: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["met", "name", "reference", "target", "unit", "value"]);
        assert_eq!(first["value"], json!(0.612));
        assert_eq!(first["met"], json!(true));
        assert_eq!(first["target"], json!(">= 0.5, zero errors"));
        assert_eq!(report["figures"][1]["met"], json!(false));
        assert_eq!(report["machine"], json!("Some CPU, 2 cores, Linux 6.1"));
    }

    #[test]
    fn the_table_flags_a_missed_target() {
        let table = table(&[figure(0.4, Bound::AtLeast, None)]);
        assert!(table.contains("| `server_get_vs_nginx` | 0.4 ratio | >= 0.5 | NO |"), "{table}");
        let at_most =
            Figure { bound: Bound::AtMost, limit: 2.0, ..figure(1.0, Bound::AtMost, None) };
        assert_eq!(at_most.target(), "<= 2.0");
    }

    #[test]
    fn machine_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\n\
                       processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            machine(cpuinfo, "6.18.44\n"),
            "Intel(R) Xeon(R) Processor, 2 cores, Linux 6.18.44"
        );
        assert_eq!(machine("", "6.1"), "unknown CPU, 0 cores, Linux 6.1");
    }
}
