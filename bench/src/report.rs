//! What the benchmark concludes: the targets with PASS/FAIL, the cost per feature, the parts
//! that are missing, and the printed table.

use serde_json::{Value, json};

/// A load generator busier than this share of its CPU may be what limits a rate.
const SATURATED: f64 = 0.9;

pub(crate) const HEALTH: &str = "GET /health (unauthenticated)";

/// The parts that could not be measured, with the reason.
#[derive(Default)]
pub(crate) struct Missing(Vec<(String, String)>);

impl Missing {
    pub(crate) fn add(&mut self, part: &str, reason: String) {
        eprintln!("bench: missing {part}: {reason}");
        self.0.push((part.to_owned(), reason));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn to_json(&self) -> Value {
        self.0
            .iter()
            .map(|(part, reason)| json!({"part": part, "reason": reason}))
            .collect()
    }
}

/// One target: what is measured, its value (`None` when missing) and the bound.
struct Target {
    what: String,
    value: Option<f64>,
    bound: Bound,
    /// For a ratio: the lowest and highest of the runs whose median `value` is.
    runs: Option<(f64, f64)>,
}

#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
}

impl Target {
    fn pass(&self) -> Option<bool> {
        let value = self.value?;
        Some(match self.bound {
            Bound::AtLeast(b) => value >= b,
            Bound::AtMost(b) => value <= b,
            Bound::Below(b) => value < b,
        })
    }
}

pub(crate) struct Targets(Vec<Target>);

impl Targets {
    /// The targets, judged on `report`. Those of a full run (every scenario) are judged only
    /// when `full`.
    pub(crate) fn judge(report: &Value, full: bool) -> Targets {
        let mut targets = Vec::new();
        for scenario in report["scenarios"].as_array().into_iter().flatten() {
            let name = scenario["scenario"].as_str().unwrap_or_default();
            let headline = scenario["headline"] == true;
            let mut ratio = |key: &str, base: &str, field: &str, bound| {
                let result = &scenario["results"][key];
                let runs: Vec<f64> = result[format!("{field}_runs")]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect();
                let low = runs.iter().copied().reduce(f64::min);
                let high = runs.iter().copied().reduce(f64::max);
                targets.push(Target {
                    what: format!("{name}: {key} / {base}"),
                    value: result[field].as_f64(),
                    bound,
                    runs: low.zip(high),
                });
            };
            if headline {
                let shipped = if name == HEALTH { 0.85 } else { 0.9 };
                ratio("shipped", "limit", "vs_limit", Bound::AtLeast(shipped));
                ratio("warn", "limit", "vs_limit", Bound::AtLeast(0.95));
                let node = if name == HEALTH { 20.0 } else { 10.0 };
                ratio("shipped-json", "node", "vs_node", Bound::AtLeast(node));
            }
            ratio("warn", "equal-work", "vs_equal_work", Bound::AtLeast(0.95));
        }
        let mut add = |what: String, value: Option<f64>, bound| {
            targets.push(Target {
                what,
                value,
                bound,
                runs: None,
            });
        };
        let server = |key: &str, field: &str| report["servers"][key][field].as_f64();
        if full {
            add(
                "readiness of shipped, ms".into(),
                server("shipped", "ready_ms"),
                Bound::Below(100.0),
            );
            add(
                "idle RSS of shipped, MiB".into(),
                server("shipped", "rss_idle_mib"),
                Bound::Below(20.0),
            );
        }
        for key in ["shipped", "shipped-json"] {
            let lines = &report["log_lines"][key];
            let lost = lines["answered"]
                .as_u64()
                .zip(lines["logged"].as_u64())
                .map(|(answered, logged)| answered.abs_diff(logged) as f64);
            add(
                format!("{key}: requests without their log line"),
                lost,
                Bound::Below(1.0),
            );
        }
        let scale = report["scale"].as_array().cloned().unwrap_or_default();
        let row = |n: u64| scale.iter().find(|r| r["plugins"] == n);
        if let Some(hundred) = row(100) {
            add(
                "100 plugins: readiness, ms".into(),
                hundred["ready_ms"].as_f64(),
                Bound::Below(100.0),
            );
            add(
                "100 plugins: RSS, MiB".into(),
                hundred["rss_mib"].as_f64(),
                Bound::Below(40.0),
            );
            if let (Some(one), Some(counts)) =
                (row(1), hundred["instructions_per_request"].as_object())
            {
                for (scenario, count) in counts {
                    let ratio = count
                        .as_f64()
                        .zip(one["instructions_per_request"][scenario].as_f64())
                        .map(|(hundred, one)| hundred / one.max(1.0));
                    add(
                        format!("{scenario}: instructions with 100 plugins / with 1"),
                        ratio,
                        Bound::AtMost(1.05),
                    );
                }
            }
        }
        Targets(targets)
    }

    pub(crate) fn all_pass(&self) -> bool {
        self.0.iter().all(|t| t.pass() == Some(true))
    }

    pub(crate) fn to_json(&self) -> Value {
        self.0
            .iter()
            .map(|t| {
                let (kind, bound) = match t.bound {
                    Bound::AtLeast(b) => ("at_least", b),
                    Bound::AtMost(b) => ("at_most", b),
                    Bound::Below(b) => ("below", b),
                };
                json!({"what": t.what, "value": t.value, kind: bound, "pass": t.pass(),
                    "runs": t.runs.map(|(low, high)| [low, high])})
            })
            .collect()
    }
}

/// The cost of each feature in instructions per request: the difference of two variants that
/// differ by that feature alone.
pub(crate) fn features(instructions: &Value) -> Value {
    const ROWS: [(&str, &str, &str); 11] = [
        (
            "Backstage's header lines alone, prebuilt",
            "hw+wire",
            "limit",
        ),
        ("security headers, by hand", "hw+headers", "limit"),
        (
            "Express JSON (charset, ETag), by hand",
            "hw+express-json",
            "limit",
        ),
        (
            "Vary and the compression layer, by hand",
            "hw+compression",
            "limit",
        ),
        ("the framework at warn over the limit", "warn", "limit"),
        (
            "the framework at warn over those header lines",
            "warn",
            "hw+wire",
        ),
        (
            "the framework at warn over equal work",
            "warn",
            "equal-work",
        ),
        ("CORS, when configured", "warn+cors", "warn"),
        (
            "rate limit, when on (memory store)",
            "warn+rate-limit",
            "warn",
        ),
        (
            "log lines at info (request log, PONG), plain",
            "shipped",
            "warn",
        ),
        ("JSON lines instead of plain", "shipped-json", "shipped"),
    ];
    let Some(table) = instructions.as_object() else {
        return Value::Null;
    };
    table
        .iter()
        .map(|(scenario, counts)| {
            let rows: Vec<Value> = ROWS
                .iter()
                .filter_map(|(feature, with, without)| {
                    let cost = counts[*with].as_f64()? - counts[*without].as_f64()?;
                    Some(json!({"feature": feature, "instructions": cost}))
                })
                .collect();
            json!({"scenario": scenario, "totals": counts, "costs": rows})
        })
        .collect()
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "MISSING",
    }
}

/// One size of the scale test: its start-up and RSS, and what one request costs, or `not
/// measured` for what is missing (the reason is in the report's list of missing parts).
fn scale_line(row: &Value) -> String {
    let measured = |v: &Value, unit: &str| match v.as_f64() {
        Some(v) => format!("{v:.1} {unit}"),
        None => "not measured".to_owned(),
    };
    let counts: Vec<String> = row["instructions_per_request"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v.as_f64() {
            Some(v) => format!("{k}: {v:.0} instructions"),
            None => format!("{k}: not measured"),
        })
        .collect();
    let mut line = format!(
        "{:>3} plugins: ready {}, RSS {}",
        row["plugins"].to_string(),
        measured(&row["ready_ms"], "ms"),
        measured(&row["rss_mib"], "MiB"),
    );
    if !counts.is_empty() {
        line.push_str(", ");
        line.push_str(&counts.join(", "));
    }
    line
}

/// Where `limit+wire` took part: the framework's ratios to it, the limit that sends the header
/// lines Backstage's answers carry (so what is left is the framework's own cost).
fn wire_line(scenario: &Value) -> Option<String> {
    let results = &scenario["results"];
    let wire = results["limit+wire"]["vs_limit"].as_f64()?;
    let to_wire: Vec<String> = ["shipped", "shipped-json", "warn"]
        .iter()
        .filter_map(|key| Some(format!("{key} {:.3}", results[*key]["vs_wire"].as_f64()?)))
        .collect();
    Some(format!(
        "{}: limit+wire / limit {wire:.3} (Backstage's header lines alone); against limit+wire: {}",
        scenario["scenario"].as_str().unwrap_or_default(),
        to_wire.join(", ")
    ))
}

/// The report as tables on standard output.
pub(crate) fn print(r: &Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut lines = vec![format!(
        "machine: {} ({} cores); servers on CPU {}, load generator on CPU {}",
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cores"],
        r["machine"]["server_cpus"].as_str().unwrap_or("?"),
        r["machine"]["load_generator_cpus"].as_str().unwrap_or("?"),
    )];
    lines.push(String::new());
    lines.push(format!(
        "{:<36} {:<13} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}",
        "scenario",
        "contestant",
        "req/s",
        "/limit",
        "/equal",
        "/node",
        "p50 ms",
        "p99 ms",
        "errors",
        "client"
    ));
    let mut saturated = Vec::new();
    for s in r["scenarios"].as_array().into_iter().flatten() {
        let name = s["scenario"].as_str().unwrap_or_default();
        for (key, v) in s["results"].as_object().into_iter().flatten() {
            let ratio = |field: &str| {
                v[field]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
            };
            let client = v["load_generator_cpu"].as_f64();
            if client.is_some_and(|busy| busy > SATURATED) {
                saturated.push(format!("{name} on {key}"));
            }
            lines.push(format!(
                "{:<36} {:<13} {:>9.0} {:>8} {:>8} {:>8} {:>8.3} {:>8.3} {:>6} {:>7}",
                name,
                key,
                f(&v["rps"]),
                ratio("vs_limit"),
                ratio("vs_equal_work"),
                ratio("vs_node"),
                f(&v["p50_ms"]),
                f(&v["p99_ms"]),
                v["errors"],
                client.map_or_else(|| "-".to_owned(), |busy| format!("{:.0}%", busy * 100.0))
            ));
        }
    }
    lines.push(
        "client: the most of its CPUs the load generator used in a round (on CPUs other than the servers')"
            .to_owned(),
    );
    lines.extend(
        r["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(wire_line),
    );
    if !saturated.is_empty() {
        lines.push(format!(
            "note: the load generator used more than {:.0}% of its CPUs ({}): there the client, not the server, may set the rate",
            SATURATED * 100.0,
            saturated.join("; ")
        ));
    }
    lines.push(String::new());
    for (key, s) in r["servers"].as_object().into_iter().flatten() {
        lines.push(format!(
            "{key:<13} ready {:>8.1} ms, RSS idle {:>6.1} MiB, after load {:>6.1} MiB",
            f(&s["ready_ms"]),
            f(&s["rss_idle_mib"]),
            f(&s["rss_after_load_mib"])
        ));
    }
    for (key, l) in r["log_lines"].as_object().into_iter().flatten() {
        lines.push(format!(
            "{key}: {} requests answered, {} request log lines",
            l["answered"], l["logged"]
        ));
    }
    for s in r["features"].as_array().into_iter().flatten() {
        lines.push(String::new());
        lines.push(format!(
            "instructions per request, {}",
            s["scenario"].as_str().unwrap_or_default()
        ));
        for (key, n) in s["totals"].as_object().into_iter().flatten() {
            lines.push(format!("  {key:<17} {:>10.0}", f(n)));
        }
        for c in s["costs"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  cost of {:<52} {:>+10.0}",
                c["feature"].as_str().unwrap_or_default(),
                f(&c["instructions"])
            ));
        }
    }
    if let Some(scale) = r["scale"].as_array().filter(|s| !s.is_empty()) {
        lines.push(String::new());
        lines.extend(scale.iter().map(scale_line));
    }
    lines.push(String::new());
    for (key, v) in r["binary_mib"].as_object().into_iter().flatten() {
        lines.push(format!("release binary {key}: {:.1} MiB", f(v)));
    }
    if let Some(b) = r["incremental_build_s"].as_object() {
        lines.push(format!(
            "incremental build after a one-line change: framework {:.1} s, hand-written {:.1} s",
            f(&b["framework"]),
            f(&b["handwritten"])
        ));
    }
    lines.push(String::new());
    for t in r["targets"].as_array().into_iter().flatten() {
        let bound = t["at_least"]
            .as_f64()
            .map(|b| format!(">= {b}"))
            .or_else(|| t["at_most"].as_f64().map(|b| format!("<= {b}")))
            .or_else(|| t["below"].as_f64().map(|b| format!("< {b}")))
            .unwrap_or_default();
        let value = t["value"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        let runs = match (t["runs"][0].as_f64(), t["runs"][1].as_f64()) {
            (Some(low), Some(high)) => format!("  (runs {low:.3} to {high:.3})"),
            _ => String::new(),
        };
        lines.push(format!(
            "{:<70} {:>10} {:>8}  {}{runs}",
            t["what"].as_str().unwrap_or_default(),
            value,
            bound,
            verdict(t["pass"].as_bool())
        ));
    }
    for m in r["missing"].as_array().into_iter().flatten() {
        lines.push(format!(
            "missing: {}: {}",
            m["part"].as_str().unwrap_or_default(),
            m["reason"].as_str().unwrap_or_default()
        ));
    }
    lines.push(String::new());
    lines.push(format!("overall: {}", verdict(r["pass"].as_bool())));
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_costs_the_difference_of_the_variants_with_and_without_it() {
        let counts = json!({"s": {"limit": 100.0, "hw+headers": 130.0, "hw+wire": 120.0, "warn": 150.0, "shipped": 190.0}});
        let costs = &features(&counts)[0]["costs"];
        let cost = |name: &str| {
            costs
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["feature"] == name)
                .map(|c| c["instructions"].as_f64().unwrap())
        };
        assert_eq!(cost("security headers, by hand"), Some(30.0));
        assert_eq!(
            cost("the framework at warn over those header lines"),
            Some(30.0)
        );
        assert_eq!(
            cost("log lines at info (request log, PONG), plain"),
            Some(40.0)
        );
        // A variant that was not measured leaves its row out rather than guessing.
        assert_eq!(cost("JSON lines instead of plain"), None);
    }

    #[test]
    fn the_framework_is_also_read_against_the_limit_sending_backstages_header_lines() {
        let scenario = json!({"scenario": HEALTH, "results": {
            "limit+wire": {"vs_limit": 0.96},
            "warn": {"vs_limit": 0.937, "vs_wire": 0.976},
            "shipped": {"vs_limit": 0.892, "vs_wire": 0.93},
        }});
        assert_eq!(
            wire_line(&scenario).as_deref(),
            Some(
                "GET /health (unauthenticated): limit+wire / limit 0.960 (Backstage's header lines alone); against limit+wire: shipped 0.930, warn 0.976"
            )
        );
        let without = json!({"scenario": "GET /items", "results": {"warn": {"vs_limit": 1.0}}});
        assert_eq!(wire_line(&without), None);
    }

    #[test]
    fn a_scale_size_that_did_not_start_reads_not_measured() {
        let started = json!({"plugins": 10, "ready_ms": 20.25, "rss_mib": 16.7,
            "instructions_per_request": {"/health": 21000.4}});
        assert_eq!(
            scale_line(&started),
            " 10 plugins: ready 20.2 ms, RSS 16.7 MiB, /health: 21000 instructions"
        );
        assert_eq!(
            scale_line(&json!({"plugins": 100})),
            "100 plugins: ready not measured, RSS not measured"
        );
    }

    #[test]
    fn a_target_without_its_measurement_is_missing_not_passed() {
        let report = json!({
            "scenarios": [{"scenario": HEALTH, "headline": true, "results": {
                "shipped": {"vs_limit": 0.9},
                "warn": {"vs_limit": 0.9, "vs_equal_work": 1.0},
            }}],
            "log_lines": {"shipped": {"answered": 10, "logged": 10}, "shipped-json": {"answered": 10, "logged": 9}},
        });
        let targets = Targets::judge(&report, false);
        let verdicts: Vec<(String, Option<bool>)> = targets
            .0
            .iter()
            .map(|t| (t.what.clone(), t.pass()))
            .collect();
        let verdict = |what: &str| {
            verdicts
                .iter()
                .find(|(w, _)| w.ends_with(what))
                .map(|v| v.1)
        };
        assert_eq!(verdict("shipped / limit"), Some(Some(true)));
        assert_eq!(verdict("warn / limit"), Some(Some(false)));
        assert_eq!(verdict("shipped-json / node"), Some(None));
        assert_eq!(
            verdict("shipped: requests without their log line"),
            Some(Some(true))
        );
        assert_eq!(
            verdict("shipped-json: requests without their log line"),
            Some(Some(false))
        );
        assert!(!targets.all_pass());
    }

    #[test]
    fn a_ratio_target_says_how_far_apart_its_runs_were() {
        let report = json!({
            "scenarios": [{"scenario": HEALTH, "headline": true, "results": {
                "shipped": {"vs_limit": 0.84, "vs_limit_runs": [0.84, 0.91, 0.79]},
                "warn": {"vs_limit": 0.9},
            }}],
        });
        let targets = Targets::judge(&report, false).to_json();
        let target = |what: &str| {
            targets
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["what"].as_str().unwrap().ends_with(what))
                .cloned()
                .unwrap()
        };
        assert_eq!(target("shipped / limit")["runs"], json!([0.79, 0.91]));
        assert_eq!(target("shipped / limit")["pass"], false);
        // Without the runs (an older report) there is no range to show.
        assert_eq!(target("warn / limit")["runs"], Value::Null);
    }
}
