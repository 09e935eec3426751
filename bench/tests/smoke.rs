//! The benchmark runs end to end: every contestant starts and answers every scenario as
//! expected, the request log lines are counted, a part that cannot run is reported as missing
//! while everything else is still printed and written. Timings are not checked here (the
//! benchmark is not a timed test); this runs debug builds for a fraction of a second.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_benchmark_runs_every_scenario_and_reports_what_is_missing() {
    // The bench finds the servers next to itself. `cargo test --workspace` builds the example
    // backend there (for its quickstart test) with the features of this very build; building it
    // here would resolve other features and compile a second copy of the whole stack. Only a run
    // of this package alone has to build it.
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_bench"));
    let backend = bench.with_file_name(format!("example-backend{}", std::env::consts::EXE_SUFFIX));
    if !backend.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(&cargo)
            .args(["build", "-p", "example-backend"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(built.success(), "cargo build -p example-backend failed");
    }

    let tmp = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    // Backstage's npm packages count as installed here, but the Node program does not exist:
    // the Node contestant fails to start, and is the one part reported missing.
    let node_dir = tmp.join("node");
    std::fs::create_dir_all(node_dir.join("node_modules")).unwrap();
    std::fs::write(
        node_dir.join("node_modules/.backstage-rs-package.json"),
        include_str!("../node/package.json"),
    )
    .unwrap();
    let out = tmp.join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--no-build",
            "--no-build-time",
            "--no-instructions",
            "--no-scale",
        ])
        .args(["--duration", "0.15", "--warmup", "0.05", "--rounds", "2"])
        .args([
            "--concurrency",
            "2",
            "--node",
            "/nonexistent/node",
            "--node-dir",
        ])
        .arg(&node_dir)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("missing: contestant node: "), "{stdout}");
    assert!(stdout.contains("overall: FAIL"), "{stdout}");
    assert!(
        stdout.contains("GET /health (unauthenticated): limit+wire / limit "),
        "{stdout}"
    );
    // Each ratio target shows the spread of the runs behind its median.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(": shipped / limit") && l.contains("(runs ")),
        "{stdout}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&tmp).ok();
    assert_eq!(
        report["missing"].as_array().unwrap().len(),
        1,
        "{}",
        report["missing"]
    );
    // On a machine of two CPUs or more the servers run on CPU 0 and the load generator on the
    // others (the runner re-executes itself there and must still pin the servers). Each
    // server's CPUs are checked as it starts.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok() {
        let machine = &report["machine"];
        assert_eq!(machine["server_cpus"], "0", "{machine}");
        let load = machine["load_generator_cpus"].as_str().unwrap();
        assert!(
            !load.is_empty() && load != "0" && !load.starts_with("0-"),
            "{machine}"
        );
    }
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 6);
    for scenario in scenarios {
        let mut contestants = vec!["limit", "equal-work", "shipped", "warn"];
        if scenario["headline"] == true {
            contestants.push("shipped-json");
        }
        // The limit sending Backstage's header lines takes part on `/health` alone (and the one
        // missing part above says it sends the framework's very lines there).
        let health = scenario["scenario"] == "GET /health (unauthenticated)";
        if health {
            contestants.push("limit+wire");
        }
        let results = scenario["results"].as_object().unwrap();
        assert_eq!(results.len(), contestants.len(), "{scenario}");
        for key in contestants {
            let result = &results[key];
            assert_eq!(result["errors"], 0, "{key}: {scenario}");
            assert!(result["rps"].as_f64().unwrap() > 0.0, "{key}: {scenario}");
            assert!(
                result["vs_limit"].as_f64().unwrap() > 0.0,
                "{key}: {scenario}"
            );
            assert!(result["vs_node"].is_null(), "{key}: {scenario}");
            assert_eq!(result["vs_wire"].is_f64(), health, "{key}: {scenario}");
        }
    }
    // Every request the servers logging at info answered has its line.
    for key in ["shipped", "shipped-json"] {
        let lines = &report["log_lines"][key];
        assert!(lines["answered"].as_u64().unwrap() > 20, "{key}: {lines}");
        assert_eq!(lines["answered"], lines["logged"], "{key}");
    }
    assert!(report["servers"]["shipped"]["ready_ms"].as_f64().unwrap() > 0.0);
    assert!(
        report["servers"]["shipped"]["rss_idle_mib"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    assert!(report["binary_mib"]["handwritten"].as_f64().unwrap() > 0.1);
    let node_targets: Vec<&Value> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["what"].as_str().unwrap().ends_with("/ node"))
        .collect();
    assert_eq!(node_targets.len(), 2);
    assert!(node_targets.iter().all(|t| t["pass"].is_null()));
}
