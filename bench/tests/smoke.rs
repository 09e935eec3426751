//! The benchmark runs end to end: both servers start, answer every scenario as expected, and
//! the report has every figure. Timings are not checked here (the benchmark is not a timed
//! test); this runs debug builds for a fraction of a second.

use std::process::Command;

#[test]
fn the_benchmark_runs_every_scenario_against_both_servers() {
    // The bench finds the servers next to itself; make sure the example backend is there.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let built = Command::new(&cargo)
        .args(["build", "-p", "example-backend", "-p", "backstage-bench"])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(built.success());

    let out = std::env::temp_dir().join(format!("bench-smoke-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--no-build",
            "--no-build-time",
            "--no-instructions",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
        ])
        .args(["--rounds", "2", "--concurrency", "2", "--out"])
        .arg(&out)
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("overall: "), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("report written")).unwrap();
    std::fs::remove_file(&out).ok();
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 6);
    for scenario in scenarios {
        for side in ["framework", "handwritten"] {
            assert_eq!(scenario[side]["errors"], 0, "{scenario}");
            assert!(scenario[side]["rps"].as_f64().unwrap() > 0.0, "{scenario}");
        }
        assert!(scenario["ratio"].as_f64().unwrap() > 0.0);
    }
    assert!(report["readiness_ms"]["framework"].as_f64().unwrap() > 0.0);
    assert!(report["rss_mib"]["framework"]["idle"].as_f64().unwrap() > 1.0);
    assert!(report["binary_mib"]["handwritten"].as_f64().unwrap() > 0.1);
}
