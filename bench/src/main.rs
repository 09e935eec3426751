//! The benchmark of record: `cargo run --release -p backstage-bench -- [options]`.
//!
//! Builds, in release, the example backend (`carmen` and its module), `handwritten` (carmen's
//! benchmarked routes by hand in axum) and the scale backends; starts on loopback, side by side,
//! the contestants of [`contestants`]:
//!
//! - `limit`: minimal axum, the same routes, token checks and SQL and nothing else;
//! - `limit+wire` (on `/health` only): the limit whose answer carries every header line
//!   Backstage's does, copied from a map made at start-up: what the wire contract costs alone;
//! - `equal-work`: hand-written axum doing the framework's per-request work, without logs;
//! - `shipped`: the example backend as a user runs it (info: the request log and carmen's
//!   "PONG!"; plain lines), `shipped-json` (`NODE_ENV=production`: JSON lines) and `warn`
//!   (`LOG_LEVEL=warn`);
//! - `node`: Backstage's backend from npm with carmen as a TypeScript plugin (`bench/node/`,
//!   installed with npm when missing).
//!
//! Each scenario drives every contestant once per round, in an order that rotates from round
//! to round, and reports requests/s, p50/p99 latency, errors, and the ratio to `limit` and to
//! `equal-work`: the median of each run's ratio to the base's rate at its time, interpolated
//! between the base's runs before and after it, so that machine drift cancels. Then: the request log lines of the
//! contestants logging at info, counted against the requests they answered (nothing lost);
//! instructions per request under callgrind of each feature variant, itemized into a cost per
//! feature; start-up time, RSS and per-request instructions of backends of 1, 10 and 100
//! plugins; readiness, RSS, binary size and the incremental build time after a one-line change.
//! Prints a table with PASS/FAIL against the targets (each ratio with the lowest and highest of
//! the per-run ratios behind its median) and writes JSON (`--out`, default
//! `target/bench/results.json`). A part that fails is reported as missing, with the reason, and
//! the rest is still printed and written; the exit status is then 3.
//!
//! Options: `--duration <s>` (per run, default 2), `--warmup <s>` (default 0.5), `--rounds <n>`
//! (default 6), `--concurrency <n>` (default 32), `--out <file>`, `--only <text>` (only the
//! scenarios whose name contains it), `--pin <cpus>` (the CPUs the servers run on, through
//! `taskset`; default `0` on machines with two or more cores, so the load generator does not
//! compete with the server; `none` to not pin), `--no-build` (use the binaries already built),
//! `--no-build-time`, `--no-instructions` (skip callgrind; without valgrind installed the
//! counts are reported missing), `--no-scale`, `--no-node`, `--node <program>` (default `node`), `--node-dir
//! <dir>` (where Backstage's npm packages are installed; default
//! `~/.cache/backstage-rs/bench-node`).

mod client;
mod contestants;
mod instructions;
mod report;
mod scale;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::Full;
use hyper::body::Bytes;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use client::{Load, Run, Scenario};
use contestants::{Contestant, STATIC_TOKEN, Server, Setup};
use report::{Missing, Targets};

struct Options {
    load: Load,
    rounds: usize,
    out: PathBuf,
    build_time: bool,
    build: bool,
    pin: Option<String>,
    only: Option<String>,
    instructions: bool,
    scale: bool,
    node: Option<String>,
    node_dir: PathBuf,
}

fn options() -> Result<Options, String> {
    let home = std::env::var("HOME").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let mut o = Options {
        load: Load {
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            concurrency: 32,
        },
        rounds: 6,
        out: PathBuf::from("target/bench/results.json"),
        build_time: true,
        build: true,
        pin: (machine_cores() >= 2 && Command::new("taskset").arg("-V").output().is_ok())
            .then(|| "0".to_owned()),
        only: None,
        instructions: true,
        scale: true,
        node: Some("node".to_owned()),
        node_dir: PathBuf::from(home).join(".cache/backstage-rs/bench-node"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|_| format!("{v} is not a number"));
        match arg.as_str() {
            "--duration" => o.load.duration = Duration::from_secs_f64(number(value()?)?),
            "--warmup" => o.load.warmup = Duration::from_secs_f64(number(value()?)?),
            "--rounds" => o.rounds = number(value()?)?.max(1.0) as usize,
            "--concurrency" => o.load.concurrency = number(value()?)?.max(1.0) as usize,
            "--out" => o.out = PathBuf::from(value()?),
            "--no-build-time" => o.build_time = false,
            "--no-build" => o.build = false,
            "--only" => o.only = Some(value()?),
            "--no-instructions" => o.instructions = false,
            "--no-scale" => o.scale = false,
            "--no-node" => o.node = None,
            "--node" => o.node = Some(value()?),
            "--node-dir" => o.node_dir = PathBuf::from(value()?),
            "--pin" => {
                let cpus = value()?;
                o.pin = (cpus != "none").then_some(cpus);
            }
            other => return Err(format!("unknown option {other}; see the crate docs")),
        }
    }
    Ok(o)
}

/// The workspace root (where `cargo` runs) and the release binaries' folder.
fn paths() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| root.join("target/release"));
    (root, bin_dir)
}

fn cargo(root: &Path, args: &[&str]) -> Result<Duration, String> {
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A pinned runner gives builds every core back.
    let mut command = match std::env::var("BACKSTAGE_BENCH_CORES") {
        Ok(cores) => {
            let mut c = Command::new("taskset");
            let last = cores.parse::<usize>().unwrap_or(1).saturating_sub(1);
            c.arg("-c").arg(format!("0-{last}")).arg(cargo);
            c
        }
        Err(_) => Command::new(cargo),
    };
    let status = command
        .args(args)
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cargo did not run: {e}"))?;
    if !status.success() {
        return Err(format!("cargo {} failed", args.join(" ")));
    }
    Ok(started.elapsed())
}

/// A JWKS endpoint for the plugin `bench`, whose key signs the plugin tokens of the ES256
/// scenario (servers fetch it once and cache it).
async fn jwks_server(jwk: Value) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let body = Bytes::from(json!({ "keys": [jwk] }).to_string());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap_or_default(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A plugin token of `bench` for carmen, signed with `pair`.
fn plugin_token(pair: &EcdsaKeyPair) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let header = json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "bench-key"});
    let claims = json!({"sub": "bench", "aud": "carmen", "iat": now, "exp": now + 3600});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .map_err(|_| "could not sign".to_owned())?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// A fresh key pair, its JWKS served, and a plugin token it signed.
async fn plugin_key() -> Result<(SocketAddr, String), String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "no key")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "no key")?;
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "bench-key",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    Ok((jwks_server(jwk).await?, plugin_token(&pair)?))
}

/// Appends a comment line to `file`, times `cargo build` (dev profile, incremental), and puts
/// the file back as it was.
fn incremental(root: &Path, file: &Path, args: &[&str]) -> Result<Duration, String> {
    cargo(root, args)?;
    let original = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"// one-line change made by the benchmark\n");
    std::fs::write(file, &changed).map_err(|e| e.to_string())?;
    let timed = cargo(root, args);
    std::fs::write(file, &original).map_err(|e| e.to_string())?;
    let restored = cargo(root, args);
    let timed = timed?;
    restored?;
    Ok(timed)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The median over `runs` (each a place in the sequence of runs and a rate) of each run's rate
/// over `base`'s rate at the same place, interpolated between the base's runs before and after
/// it (the nearest one at either end). A machine whose speed drifts during a round (seen here:
/// fourfold over the first minute after a build) then favours no contestant for having run
/// when it was fast; pairing each run with the base's run of the same round did.
fn drift_corrected_ratio(runs: &[(usize, f64)], base: &[(usize, f64)]) -> f64 {
    median(run_ratios(runs, base))
}

/// Each run's rate over `base`'s rate at the same place (see [`drift_corrected_ratio`]), in
/// the order of the runs.
fn run_ratios(runs: &[(usize, f64)], base: &[(usize, f64)]) -> Vec<f64> {
    let at = |place: usize| -> f64 {
        let before = base.iter().rev().find(|(p, _)| *p <= place);
        let after = base.iter().find(|(p, _)| *p >= place);
        match (before, after) {
            (Some(&(p0, r0)), Some(&(p1, r1))) if p1 > p0 => {
                r0 + (r1 - r0) * (place - p0) as f64 / (p1 - p0) as f64
            }
            (Some(&(_, r)), _) | (None, Some(&(_, r))) => r,
            (None, None) => 0.0,
        }
    };
    runs.iter()
        .map(|&(place, rps)| rps / at(place).max(1e-9))
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(3),
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    }
}

/// With pinned servers, the runner (the load generator) re-executes itself on the other CPUs,
/// so neither competes with the other for a core.
fn pin_self(o: &Options) -> Result<Option<i32>, String> {
    let Some(server_cpus) = &o.pin else {
        return Ok(None);
    };
    if std::env::var_os("BACKSTAGE_BENCH_PINNED").is_some() {
        return Ok(None);
    }
    let servers: Vec<usize> = server_cpus
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let cores = machine_cores();
    let others: Vec<String> = (0..cores)
        .filter(|c| !servers.contains(c))
        .map(|c| c.to_string())
        .collect();
    if others.is_empty() {
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // The release build above may have relinked this very binary (building two packages at
    // once can unify features differently from `cargo run`): run the new one at the same path.
    let exe = match exe.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(path) => std::path::PathBuf::from(path),
        None => exe,
    };
    let status = Command::new("taskset")
        .arg("-c")
        .arg(others.join(","))
        .arg(exe)
        .args(std::env::args().skip(1))
        .env("BACKSTAGE_BENCH_PINNED", "1")
        .env("BACKSTAGE_BENCH_CORES", cores.to_string())
        .status()
        .map_err(|e| format!("taskset did not run: {e}"))?;
    Ok(Some(status.code().unwrap_or(2)))
}

fn scenarios(token: String) -> Vec<Scenario> {
    let scenario = |name, method, path, token: Option<&str>, body, expect, headline| Scenario {
        name,
        method,
        path,
        token: token.map(str::to_owned),
        body,
        expect,
        headline,
    };
    vec![
        scenario(
            "GET /health (unauthenticated)",
            "GET",
            contestants::HEALTH_PATH,
            None,
            None,
            200,
            true,
        ),
        scenario(
            "GET /items (static token, SQLite)",
            "GET",
            "/api/carmen/items",
            Some(STATIC_TOKEN),
            None,
            200,
            true,
        ),
        scenario(
            "GET /items/1 (ES256 plugin token)",
            "GET",
            "/api/carmen/items/1",
            Some(&token),
            None,
            200,
            false,
        ),
        scenario(
            "GET /items/1 (static token, SQLite)",
            "GET",
            "/api/carmen/items/1",
            Some(STATIC_TOKEN),
            None,
            200,
            false,
        ),
        scenario(
            "404 inside the plugin",
            "GET",
            "/api/carmen/no-such-route",
            Some(STATIC_TOKEN),
            None,
            404,
            false,
        ),
        scenario(
            "POST /items (JSON body)",
            "POST",
            "/api/carmen/items",
            Some(STATIC_TOKEN),
            Some(r#"{"name":"benchmark item"}"#),
            201,
            false,
        ),
    ]
}

/// The servers measured for throughput: started, seeded, idle RSS read.
struct Started {
    servers: Vec<(Contestant, Server)>,
    idle_rss: Vec<u64>,
}

async fn start_all(setup: &Setup, list: Vec<Contestant>, missing: &mut Missing) -> Started {
    let mut servers = Vec::new();
    for contestant in list {
        let started = async {
            let server = setup.start(&contestant, &setup.pin).await?;
            server.seed().await?;
            Ok::<_, String>(server)
        }
        .await;
        match started {
            Ok(server) => servers.push((contestant, server)),
            Err(e) => missing.add(&format!("contestant {}", contestant.key), e),
        }
    }
    let idle_rss = servers.iter().map(|(_, s)| s.rss_kib()).collect();
    Started { servers, idle_rss }
}

/// Whether `limit+wire` sends on `/health` the very header lines the framework sends (the
/// claim its ratio rests on); nothing to compare when either did not start.
async fn same_wire(started: &Started) -> Result<(), String> {
    let addr = |key: &str| {
        started
            .servers
            .iter()
            .find(|(c, _)| c.key == key)
            .map(|(_, s)| s.addr)
    };
    let (Some(wire), Some(framework)) = (addr("limit+wire"), addr("warn")) else {
        return Ok(());
    };
    let wire = client::header_lines(wire, contestants::HEALTH_PATH).await?;
    let framework = client::header_lines(framework, contestants::HEALTH_PATH).await?;
    if wire != framework {
        return Err(format!(
            "its /health header lines are not the framework's: {wire:?} against {framework:?}"
        ));
    }
    Ok(())
}

/// One scenario against every contestant that takes part, in rotating order per round.
async fn throughput(
    started: &Started,
    scenario: &Scenario,
    o: &Options,
    missing: &mut Missing,
) -> Value {
    let mut taking_part = Vec::new();
    for (i, (contestant, server)) in started.servers.iter().enumerate() {
        let joins = (scenario.headline
            || matches!(contestant.key, "limit" | "equal-work" | "shipped" | "warn"))
            && contestant.takes(scenario.path);
        if !joins {
            continue;
        }
        // Every contestant answers the same thing before anything is measured.
        match server
            .request(
                scenario.method,
                scenario.path,
                scenario.token.as_deref(),
                scenario.body,
            )
            .await
        {
            Ok((status, _)) if status == scenario.expect => taking_part.push(i),
            Ok((status, body)) => missing.add(
                &format!("{} on {}", scenario.name, contestant.key),
                format!(
                    "answered {status}, expected {}: {}",
                    scenario.expect,
                    String::from_utf8_lossy(&body)
                ),
            ),
            Err(e) => missing.add(&format!("{} on {}", scenario.name, contestant.key), e),
        }
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); taking_part.len()];
    // Each run's place in the sequence of runs, for the ratios' drift correction.
    let mut places: Vec<Vec<usize>> = vec![Vec::new(); taking_part.len()];
    let mut place = 0;
    for round in 0..o.rounds {
        for k in 0..taking_part.len() {
            let slot = (k + round) % taking_part.len();
            let (contestant, server) = &started.servers[taking_part[slot]];
            eprintln!("{} round {}: {}", scenario.name, round + 1, contestant.key);
            let run = client::load(server.addr, scenario, o.load).await;
            server.sent.fetch_add(run.sent, Ordering::Relaxed);
            runs[slot].push(run);
            places[slot].push(place);
            place += 1;
        }
    }
    let key_of = |slot: usize| started.servers[taking_part[slot]].0.key;
    let slot_of = |key: &str| (0..taking_part.len()).find(|&s| key_of(s) == key);
    let timed = |slot: usize| -> Vec<(usize, f64)> {
        places[slot]
            .iter()
            .copied()
            .zip(runs[slot].iter().map(Run::rps))
            .collect()
    };
    let ratio_to = |slot: usize, base: Option<usize>| {
        base.map(|b| drift_corrected_ratio(&timed(slot), &timed(b)))
    };
    let runs_to =
        |slot: usize, base: Option<usize>| base.map(|b| run_ratios(&timed(slot), &timed(b)));
    let mut results = serde_json::Map::new();
    for (slot, runs_of) in runs.iter().enumerate() {
        let latencies = Run {
            latencies_us: runs_of
                .iter()
                .flat_map(|r| r.latencies_us.iter().copied())
                .collect(),
            ..Run::default()
        };
        results.insert(
            key_of(slot).to_owned(),
            json!({
                "rps": median(runs_of.iter().map(Run::rps).collect()),
                "rps_per_round": runs_of.iter().map(Run::rps).collect::<Vec<_>>(),
                "p50_ms": latencies.percentile(0.50),
                "p99_ms": latencies.percentile(0.99),
                "errors": runs_of.iter().map(|r| r.errors).sum::<u64>(),
                "load_generator_cpu": runs_of.iter().filter_map(|r| r.load_cpu).fold(None, |most: Option<f64>, x| Some(most.map_or(x, |m| m.max(x)))),
                "vs_limit": ratio_to(slot, slot_of("limit")),
                "vs_limit_runs": runs_to(slot, slot_of("limit")),
                "vs_equal_work": ratio_to(slot, slot_of("equal-work")),
                "vs_equal_work_runs": runs_to(slot, slot_of("equal-work")),
                "vs_node": ratio_to(slot, slot_of("node")),
                "vs_node_runs": runs_to(slot, slot_of("node")),
                "vs_wire": ratio_to(slot, slot_of("limit+wire")),
            }),
        );
    }
    json!({"scenario": scenario.name, "headline": scenario.headline, "results": results})
}

/// Instructions per request of every feature variant, per scenario.
async fn feature_instructions(
    setup: &Setup,
    scenarios: &[Scenario],
    missing: &mut Missing,
) -> Value {
    let mut table = serde_json::Map::new();
    for contestant in contestants::feature_variants() {
        eprintln!("under callgrind: {}", contestant.key);
        let taken: Vec<Scenario> = scenarios
            .iter()
            .filter(|s| contestant.takes(s.path))
            .cloned()
            .collect();
        if taken.is_empty() {
            continue;
        }
        match instructions::per_request(setup, &contestant, &taken).await {
            Ok(counts) => {
                for (scenario, count) in taken.iter().zip(counts) {
                    match count {
                        Ok(n) => {
                            let row = table
                                .entry(scenario.name.to_owned())
                                .or_insert_with(|| json!({}));
                            row[contestant.key] = json!(n);
                        }
                        Err(e) => missing.add(&format!("instructions of {}", contestant.key), e),
                    }
                }
            }
            Err(e) => missing.add(&format!("instructions of {}", contestant.key), e),
        }
    }
    Value::Object(table)
}

async fn run() -> Result<bool, String> {
    let o = options()?;
    let (root, bin_dir) = paths();
    if o.build && std::env::var_os("BACKSTAGE_BENCH_PINNED").is_none() {
        eprintln!(
            "building the example backend, the hand-written server and the scale backends in release..."
        );
        cargo(
            &root,
            &[
                "build",
                "--release",
                "-p",
                "example-backend",
                "-p",
                "backstage-bench",
                "--features",
                "backstage-bench/scale",
            ],
        )?;
    }
    if let Some(code) = pin_self(&o)? {
        std::process::exit(code);
    }
    let mut missing = Missing::default();
    let (jwks, token) = plugin_key().await?;
    let work = std::env::temp_dir().join(format!("backstage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let setup = Setup {
        bin_dir: bin_dir.clone(),
        work: work.clone(),
        pin: match &o.pin {
            Some(cpus) => vec!["taskset".into(), "-c".into(), cpus.clone()],
            None => Vec::new(),
        },
        jwks,
        node: o.node.clone().unwrap_or_default(),
        node_dir: o.node_dir.clone(),
    };

    let mut list = vec![
        contestants::limit(),
        contestants::limit_wire(),
        contestants::equal_work(),
        contestants::shipped(),
        contestants::shipped_json(),
        contestants::warn(),
    ];
    if o.node.is_some() {
        match contestants::install_node_packages(&o.node_dir) {
            Ok(()) => list.push(contestants::node()),
            Err(e) => missing.add("contestant node", e),
        }
    }
    let mut started = start_all(&setup, list, &mut missing).await;
    if let Err(e) = same_wire(&started).await {
        missing.add("limit+wire", e);
    }

    let selected: Vec<Scenario> = scenarios(token)
        .into_iter()
        .filter(|s| {
            o.only
                .as_ref()
                .is_none_or(|only| s.name.contains(only.as_str()))
        })
        .collect();
    let mut results = Vec::new();
    for scenario in &selected {
        results.push(throughput(&started, scenario, &o, &mut missing).await);
    }
    let loaded_rss: Vec<u64> = started.servers.iter().map(|(_, s)| s.rss_kib()).collect();
    let mut servers = serde_json::Map::new();
    for (((contestant, server), idle), loaded) in started
        .servers
        .iter()
        .zip(&started.idle_rss)
        .zip(&loaded_rss)
    {
        servers.insert(
            contestant.key.to_owned(),
            json!({
                "about": contestant.about,
                "ready_ms": server.ready_after.as_secs_f64() * 1000.0,
                "rss_idle_mib": *idle as f64 / 1024.0,
                "rss_after_load_mib": *loaded as f64 / 1024.0,
            }),
        );
    }
    // Nothing lost: every answered request of a server logging at info has its line.
    let mut log_lines = serde_json::Map::new();
    for (contestant, server) in &mut started.servers {
        if !contestant.logs_requests() {
            continue;
        }
        let sent = server.sent.load(Ordering::Relaxed);
        match server.stop_and_count_request_lines().await {
            Ok(logged) => {
                log_lines.insert(
                    contestant.key.to_owned(),
                    json!({"answered": sent, "logged": logged}),
                );
            }
            Err(e) => missing.add(&format!("log lines of {}", contestant.key), e),
        }
    }
    drop(started);

    // Counted unless turned off; without valgrind, reported missing rather than left out.
    let counting = o.instructions && instructions::available();
    if o.instructions && !counting {
        missing.add(
            "instructions per request",
            "valgrind and callgrind_control are not installed (or pass --no-instructions)".into(),
        );
    }
    let instructions = if counting {
        feature_instructions(&setup, &selected, &mut missing).await
    } else {
        Value::Null
    };

    let mut scale_results = Vec::new();
    if o.scale {
        for n in scale::SIZES {
            eprintln!("scale: {n} plugins");
            let mut row = match scale::startup(&setup, n).await {
                Ok(row) => row,
                Err(e) => {
                    missing.add(&format!("scale start-up with {n} plugins"), e);
                    json!({"plugins": n})
                }
            };
            if counting && n != 10 {
                match scale::per_request(&setup, n).await {
                    Ok(counted) => {
                        row["instructions_per_request"] =
                            counted["instructions_per_request"].clone()
                    }
                    Err(e) => missing.add(&format!("scale instructions with {n} plugins"), e),
                }
            }
            scale_results.push(row);
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let size = |name: &str| {
        std::fs::metadata(bin_dir.join(name))
            .map(|m| m.len() as f64 / 1_048_576.0)
            .ok()
    };
    let binary_mib =
        json!({"example-backend": size("example-backend"), "handwritten": size("handwritten")});

    let build_times = if o.build_time {
        eprintln!("timing incremental builds (dev profile)...");
        let timed = incremental(
            &root,
            &root.join("examples/carmen/src/lib.rs"),
            &["build", "-p", "example-backend"],
        )
        .and_then(|a| {
            let b = incremental(
                &root,
                &root.join("bench/src/bin/handwritten.rs"),
                &["build", "-p", "backstage-bench", "--bin", "handwritten"],
            )?;
            Ok(json!({"framework": a.as_secs_f64(), "handwritten": b.as_secs_f64(), "ratio": a.as_secs_f64() / b.as_secs_f64().max(1e-9)}))
        });
        match timed {
            Ok(v) => v,
            Err(e) => {
                missing.add("incremental build time", e);
                Value::Null
            }
        }
    } else {
        Value::Null
    };

    let mut report = json!({
        "machine": machine(&o),
        "options": {"duration_s": o.load.duration.as_secs_f64(), "warmup_s": o.load.warmup.as_secs_f64(), "rounds": o.rounds, "concurrency": o.load.concurrency, "servers_pinned_to": o.pin},
        "servers": servers,
        "scenarios": results,
        "log_lines": log_lines,
        "instructions_per_request": instructions,
        "features": report::features(&instructions),
        "scale": scale_results,
        "binary_mib": binary_mib,
        "incremental_build_s": build_times,
    });
    let targets = Targets::judge(&report, o.only.is_none());
    let complete = missing.is_empty();
    report["targets"] = targets.to_json();
    report["missing"] = missing.to_json();
    report["pass"] = json!(complete && targets.all_pass());
    report::print(&report);
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&o.out, text).map_err(|e| format!("{}: {e}", o.out.display()))?;
    eprintln!("wrote {}", o.out.display());
    Ok(complete)
}

fn machine(o: &Options) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": machine_cores(),
        "os": std::env::consts::OS,
        "server_cpus": o.pin.clone().unwrap_or_else(|| "not pinned".to_owned()),
        "load_generator_cpus": contestants::cpus_allowed("self"),
    })
}

/// The machine's CPU count. A runner re-executed on the CPUs left over by the servers sees only
/// those; its parent passes the machine's count (without it the runner would take itself for a
/// one-CPU machine and leave the servers unpinned, on its own CPU).
fn machine_cores() -> usize {
    std::env::var("BACKSTAGE_BENCH_CORES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::drift_corrected_ratio;

    #[test]
    fn ratios_follow_a_machine_whose_speed_drifts_during_a_round() {
        // Three contestants in rotating order; the machine twice as fast at the end as at the
        // start. The base runs at its full speed, the other at 0.8 of it, always.
        let speed = |place: usize| 1000.0 * (1.0 + place as f64 / 17.0);
        let (mut base, mut other) = (Vec::new(), Vec::new());
        let mut place = 0;
        for round in 0..6 {
            for k in 0..3 {
                match (k + round) % 3 {
                    0 => base.push((place, speed(place))),
                    1 => other.push((place, 0.8 * speed(place))),
                    _ => {}
                }
                place += 1;
            }
        }
        let ratio = drift_corrected_ratio(&other, &base);
        assert!((ratio - 0.8).abs() < 0.02, "{ratio}");
        // Pairing each run with the base's run of the same round reads the drift as speed.
        let paired: Vec<f64> = other.iter().zip(&base).map(|(o, b)| o.1 / b.1).collect();
        assert!(paired.iter().any(|r| (r - 0.8).abs() > 0.04), "{paired:?}");
        assert_eq!(drift_corrected_ratio(&base, &base), 1.0);
        // Before the base's first run and after its last: the nearest one.
        assert_eq!(
            drift_corrected_ratio(&[(0, 50.0)], &[(3, 100.0), (9, 300.0)]),
            0.5
        );
        assert_eq!(
            drift_corrected_ratio(&[(12, 150.0)], &[(3, 100.0), (9, 300.0)]),
            0.5
        );
        assert_eq!(
            drift_corrected_ratio(&[(6, 100.0)], &[(3, 100.0), (9, 300.0)]),
            0.5
        );
    }
}
