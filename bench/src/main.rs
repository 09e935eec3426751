//! The benchmark of record: `cargo run --release -p backstage-bench -- [options]`.
//!
//! Builds, in release, (a) the example backend with `carmen` and (b) `handwritten`, the same
//! routes hand-written in axum; starts both on loopback; drives each scenario against A and B in
//! alternation (A B, then B A, ...) so machine drift cancels; and reports requests/s, p50/p99
//! latency, errors and the A/B ratio per scenario, plus readiness time, RSS idle and after load,
//! release binary size and the incremental `cargo build` time after a one-line change. Prints a
//! table with PASS/FAIL against the targets and writes JSON (`--out`, default
//! `target/bench/results.json`).
//!
//! Options: `--duration <s>` (per run, default 2), `--warmup <s>` (default 0.5), `--rounds <n>`
//! (default 10), `--concurrency <n>` (default 32), `--out <file>`, `--no-build-time` (skip the
//! incremental build measurement), `--no-build` (use the binaries already built), `--pin <cpus>`
//! (the CPUs both servers run on, through `taskset`; default `0` on machines with two or more
//! cores, so the load generator does not compete with the server for the same core; `none` to
//! not pin), `--only <text>` (only the scenarios whose name contains it), `--no-instructions`
//! (skip counting the instructions each request costs under `valgrind --tool=callgrind`, done by
//! default where valgrind is installed: a deterministic comparison where requests/s are noisy;
//! it adds about a minute).
//!
//! A scenario's ratio is the median of the per-round ratios: A and B of one round run back to
//! back, so each ratio compares two measurements taken under the same machine conditions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

const STATIC_TOKEN: &str = "bench-static-token-0123456789";

struct Options {
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    concurrency: usize,
    out: PathBuf,
    build_time: bool,
    build: bool,
    pin: Option<String>,
    only: Option<String>,
    instructions: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        rounds: 10,
        concurrency: 32,
        out: PathBuf::from("target/bench/results.json"),
        build_time: true,
        build: true,
        pin: (std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
            && Command::new("taskset").arg("-V").output().is_ok())
        .then(|| "0".to_owned()),
        only: None,
        instructions: Command::new("valgrind").arg("--version").output().is_ok(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|_| format!("{v} is not a number"));
        match arg.as_str() {
            "--duration" => o.duration = Duration::from_secs_f64(number(value()?)?),
            "--warmup" => o.warmup = Duration::from_secs_f64(number(value()?)?),
            "--rounds" => o.rounds = number(value()?)?.max(1.0) as usize,
            "--concurrency" => o.concurrency = number(value()?)?.max(1.0) as usize,
            "--out" => o.out = PathBuf::from(value()?),
            "--no-build-time" => o.build_time = false,
            "--no-build" => o.build = false,
            "--only" => o.only = Some(value()?),
            "--instructions" => o.instructions = true,
            "--no-instructions" => o.instructions = false,
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

/// A server under test; killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    ready_after: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Spawns `command` and measures the time until readiness answers 200.
async fn start(name: &'static str, mut command: Command, port: u16) -> Result<Server, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name} did not start: {e}"))?;
    let mut server = Server {
        name,
        child,
        addr,
        ready_after: Duration::ZERO,
    };
    loop {
        if let Ok((200, _)) =
            request(addr, "GET", "/.backstage/health/v1/readiness", None, None).await
        {
            server.ready_after = started.elapsed();
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(90) {
            return Err(format!("{name} was not ready after 90 s"));
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{name} exited: {status}"));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1 connection to `addr` (no Nagle delay), its driver spawned.
async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on a fresh connection (set-up and checks only).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, Bytes), String> {
    let mut sender = connect(addr).await?;
    let req = build(method, path, token, body.map(|b| Bytes::from(b.to_owned())))?;
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn build(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Bytes>,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| e.to_string())
}

/// Twenty items, so `GET /items` has rows to send.
async fn seed(server: &Server) -> Result<(), String> {
    for i in 0..20 {
        let body = format!(r#"{{"name":"item {i}"}}"#);
        let (status, _) = request(
            server.addr,
            "POST",
            "/api/carmen/items",
            Some(STATIC_TOKEN),
            Some(&body),
        )
        .await?;
        if status != 201 {
            return Err(format!("{}: seeding answered {status}", server.name));
        }
    }
    Ok(())
}

/// The instructions a process executed, as callgrind counted them: `n` requests of `scenario`
/// on one keep-alive connection, after start-up and seeding.
async fn callgrind_total(
    mut command: Command,
    port: u16,
    scenario: &Scenario,
    n: usize,
    out: &Path,
) -> Result<u64, String> {
    let _ = std::fs::remove_file(out);
    command.env("BACKSTAGE_BENCH_CALLGRIND", "1");
    let mut server = start("callgrind", command, port).await?;
    seed(&server)
        .await
        .map_err(|e| format!("seeding under callgrind: {e}"))?;
    let mut sender = connect(server.addr).await?;
    let body = scenario.body.map(|b| Bytes::from_static(b.as_bytes()));
    for i in 0..n {
        let req = build(
            scenario.method,
            scenario.path,
            scenario.token.as_deref(),
            body.clone(),
        )?;
        sender
            .ready()
            .await
            .map_err(|e| format!("{} under callgrind: {e}", scenario.name))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{} under callgrind, request {i}: {e:?}", scenario.name))?;
        if response.status().as_u16() != scenario.expect {
            return Err(format!("{} answered {}", scenario.name, response.status()));
        }
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
    }
    drop(sender);
    // SIGINT: the program (and callgrind with it) ends normally and writes its counts.
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(server.child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(120);
    while server
        .child
        .try_wait()
        .map_err(|e| e.to_string())?
        .is_none()
    {
        if Instant::now() > deadline {
            return Err("callgrind did not finish".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{}: no totals", out.display()))
}

/// What one scenario sends and expects.
#[derive(Clone)]
struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    token: Option<String>,
    body: Option<&'static str>,
    expect: u16,
}

#[derive(Clone, Default)]
struct Run {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        f64::from(sorted[i]) / 1000.0
    }
}

/// Drives `scenario` against `addr` with `concurrency` keep-alive connections: a warm-up, then
/// `duration` of measured requests. Bounded: every connection stops at the deadline.
async fn load(addr: SocketAddr, scenario: &Scenario, o: &Options) -> Run {
    let scenario = Arc::new(scenario.clone());
    let warm_until = Instant::now() + o.warmup;
    let until = warm_until + o.duration;
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let scenario = scenario.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let Ok(mut sender) = connect(addr).await else {
                run.errors += 1;
                return run;
            };
            let body = scenario.body.map(|b| Bytes::from_static(b.as_bytes()));
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let Ok(req) = build(
                    scenario.method,
                    scenario.path,
                    scenario.token.as_deref(),
                    body.clone(),
                ) else {
                    run.errors += 1;
                    break;
                };
                if sender.ready().await.is_err() {
                    run.errors += 1;
                    break;
                }
                let outcome = match sender.send_request(req).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let read = response.into_body().collect().await.is_ok();
                        read && status == scenario.expect
                    }
                    Err(_) => false,
                };
                if now >= warm_until {
                    run.requests += 1;
                    run.latencies_us
                        .push(now.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if !outcome {
                        run.errors += 1;
                    }
                }
            }
            run
        }));
    }
    let mut total = Run {
        seconds: o.duration.as_secs_f64(),
        ..Run::default()
    };
    for task in tasks {
        if let Ok(run) = task.await {
            total.requests += run.requests;
            total.errors += run.errors;
            total.latencies_us.extend(run.latencies_us);
        }
    }
    total
}

/// A JWKS endpoint for the plugin `bench`, whose key signs the plugin tokens of the ES256
/// scenario (both servers fetch it once and cache it).
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(2);
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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

async fn run() -> Result<(), String> {
    let o = options()?;
    let (root, bin_dir) = paths();
    if o.build && std::env::var_os("BACKSTAGE_BENCH_PINNED").is_none() {
        eprintln!("building the example backend and the hand-written server in release...");
        cargo(
            &root,
            &[
                "build",
                "--release",
                "-p",
                "example-backend",
                "-p",
                "backstage-bench",
            ],
        )?;
    }
    if let Some(code) = pin_self(&o)? {
        std::process::exit(code);
    }
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "no key")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "no key")?;
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "bench-key",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    let jwks = jwks_server(jwk).await?;
    let token = plugin_token(&pair)?;

    // (a) the example backend, configured in a folder of its own.
    let work = std::env::temp_dir().join(format!("backstage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let port_a = free_port();
    let config = json!({
        "backend": {
            "listen": {"host": "127.0.0.1", "port": port_a},
            "auth": {"externalAccess": [{"type": "static", "options": {"token": STATIC_TOKEN, "subject": "bench"}}]},
        },
        "discovery": {"endpoints": [{"target": format!("http://{jwks}/api/{{{{pluginId}}}}"), "plugins": ["bench"]}]},
    });
    std::fs::write(work.join("app-config.yaml"), config.to_string()).map_err(|e| e.to_string())?;
    let pin: Vec<String> = match &o.pin {
        Some(cpus) => vec!["taskset".into(), "-c".into(), cpus.clone()],
        None => Vec::new(),
    };
    // A server's command, behind `wrapper` (taskset, valgrind) when there is one.
    let command = |binary: &str, wrapper: &[String]| {
        let mut c = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin_dir.join(binary));
                c
            }
            None => Command::new(bin_dir.join(binary)),
        };
        c.env("LOG_LEVEL", "warn");
        c
    };
    let framework_command = |wrapper: &[String]| {
        let mut a = command("example-backend", wrapper);
        a.current_dir(&work);
        a
    };
    let framework = start("framework", framework_command(&pin), port_a).await?;

    // (b) the same routes by hand.
    let port_b = free_port();
    let handwritten_command = |wrapper: &[String]| {
        let mut b = command("handwritten", wrapper);
        b.env("PORT", port_b.to_string())
            .env("STATIC_TOKEN", STATIC_TOKEN)
            .env(
                "JWKS_URL",
                format!("http://{jwks}/api/bench/.backstage/auth/v1/jwks.json"),
            );
        b
    };
    let handwritten = start("handwritten", handwritten_command(&pin), port_b).await?;
    let servers = [&framework, &handwritten];
    let idle_rss: Vec<u64> = servers.iter().map(|s| s.rss_kib()).collect();

    for server in servers {
        seed(server).await?;
    }

    let scenarios = [
        Scenario {
            name: "GET /health (unauthenticated)",
            method: "GET",
            path: "/api/carmen/health",
            token: None,
            body: None,
            expect: 200,
        },
        Scenario {
            name: "GET /items (static token, SQLite)",
            method: "GET",
            path: "/api/carmen/items",
            token: Some(STATIC_TOKEN.into()),
            body: None,
            expect: 200,
        },
        Scenario {
            name: "GET /items/1 (ES256 plugin token)",
            method: "GET",
            path: "/api/carmen/items/1",
            token: Some(token),
            body: None,
            expect: 200,
        },
        Scenario {
            name: "GET /items/1 (static token, SQLite)",
            method: "GET",
            path: "/api/carmen/items/1",
            token: Some(STATIC_TOKEN.into()),
            body: None,
            expect: 200,
        },
        Scenario {
            name: "404 inside the plugin",
            method: "GET",
            path: "/api/carmen/no-such-route",
            token: Some(STATIC_TOKEN.into()),
            body: None,
            expect: 404,
        },
        Scenario {
            name: "POST /items (JSON body)",
            method: "POST",
            path: "/api/carmen/items",
            token: Some(STATIC_TOKEN.into()),
            body: Some(r#"{"name":"benchmark item"}"#),
            expect: 201,
        },
    ];
    let mut results = Vec::new();
    let selected = scenarios.iter().filter(|s| {
        o.only
            .as_ref()
            .is_none_or(|only| s.name.contains(only.as_str()))
    });
    for scenario in selected {
        // Both answer the same thing before anything is measured.
        for server in servers {
            let (status, _) = request(
                server.addr,
                scenario.method,
                scenario.path,
                scenario.token.as_deref(),
                scenario.body,
            )
            .await?;
            if status != scenario.expect {
                return Err(format!(
                    "{}: {} answered {status}, expected {}",
                    server.name, scenario.name, scenario.expect
                ));
            }
        }
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                eprintln!("{} round {}: {}", scenario.name, round + 1, servers[i].name);
                runs[i].push(load(servers[i].addr, scenario, &o).await);
            }
        }
        let summary = |runs: &[Run]| {
            let all = Run {
                latencies_us: runs
                    .iter()
                    .flat_map(|r| r.latencies_us.iter().copied())
                    .collect(),
                ..Run::default()
            };
            json!({
                "rps": median(runs.iter().map(Run::rps).collect()),
                "rps_per_round": runs.iter().map(Run::rps).collect::<Vec<_>>(),
                "p50_ms": all.percentile(0.50),
                "p99_ms": all.percentile(0.99),
                "errors": runs.iter().map(|r| r.errors).sum::<u64>(),
            })
        };
        let (sa, sb) = (summary(&runs[0]), summary(&runs[1]));
        let mut ratios: Vec<f64> = runs[0]
            .iter()
            .zip(&runs[1])
            .map(|(a, b)| a.rps() / b.rps().max(1e-9))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let quartile = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        let spread = [quartile(0.25), quartile(0.75)];
        let ratio = median(ratios.clone());
        results.push(json!({"scenario": scenario.name, "framework": sa, "handwritten": sb, "ratio": ratio, "ratio_p25_p75": spread, "pass": ratio >= 0.95}));
    }
    let loaded_rss: Vec<u64> = servers.iter().map(|s| s.rss_kib()).collect();
    let ready_ms: Vec<f64> = servers
        .iter()
        .map(|s| s.ready_after.as_secs_f64() * 1000.0)
        .collect();
    let size = |name: &str| {
        std::fs::metadata(bin_dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let sizes = [size("example-backend"), size("handwritten")];
    drop(framework);
    drop(handwritten);

    // Instructions per request under callgrind: deterministic where throughput is noisy. The
    // difference of two runs (few and many requests) leaves out start-up and seeding.
    let mut instructions = Vec::new();
    if o.instructions {
        let valgrind = |out: &Path| {
            vec![
                "valgrind".to_owned(),
                "--tool=callgrind".to_owned(),
                format!("--callgrind-out-file={}", out.display()),
            ]
        };
        let (few, many) = (100, 600);
        for scenario in scenarios.iter().filter(|s| {
            o.only
                .as_ref()
                .is_none_or(|only| s.name.contains(only.as_str()))
        }) {
            let mut per_request = [0.0; 2];
            for (i, port) in [(0, port_a), (1, port_b)] {
                let mut counts = [0u64; 2];
                for (j, n) in [few, many].into_iter().enumerate() {
                    eprintln!(
                        "{} under callgrind: {} requests, {}",
                        scenario.name,
                        n,
                        servers_names()[i]
                    );
                    let out = work.join(format!("callgrind-{i}-{n}.out"));
                    let command = if i == 0 {
                        framework_command(&valgrind(&out))
                    } else {
                        handwritten_command(&valgrind(&out))
                    };
                    counts[j] = callgrind_total(command, port, scenario, n, &out).await?;
                }
                per_request[i] = counts[1].saturating_sub(counts[0]) as f64 / (many - few) as f64;
            }
            instructions.push(json!({
                "scenario": scenario.name,
                "framework": per_request[0],
                "handwritten": per_request[1],
                "ratio": per_request[0] / per_request[1].max(1.0),
            }));
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let build_times = if o.build_time {
        eprintln!("timing incremental builds (dev profile)...");
        let a = incremental(
            &root,
            &root.join("examples/carmen/src/lib.rs"),
            &["build", "-p", "example-backend"],
        )?;
        let b = incremental(
            &root,
            &root.join("bench/src/bin/handwritten.rs"),
            &["build", "-p", "backstage-bench", "--bin", "handwritten"],
        )?;
        Some([a.as_secs_f64(), b.as_secs_f64()])
    } else {
        None
    };

    let targets = json!({
        "ratio_min": 0.95, "readiness_ms_max": 100.0, "idle_rss_mib_max": 20.0,
    });
    let readiness_pass = ready_ms[0] < 100.0;
    let rss_pass = idle_rss[0] as f64 / 1024.0 < 20.0;
    let all_pass = readiness_pass && rss_pass && results.iter().all(|r| r["pass"] == true);
    let report = json!({
        "machine": machine(),
        "options": {"duration_s": o.duration.as_secs_f64(), "warmup_s": o.warmup.as_secs_f64(), "rounds": o.rounds, "concurrency": o.concurrency, "servers_pinned_to": o.pin},
        "scenarios": results,
        "readiness_ms": {"framework": ready_ms[0], "handwritten": ready_ms[1], "pass": readiness_pass},
        "rss_mib": {
            "framework": {"idle": idle_rss[0] as f64 / 1024.0, "after_load": loaded_rss[0] as f64 / 1024.0},
            "handwritten": {"idle": idle_rss[1] as f64 / 1024.0, "after_load": loaded_rss[1] as f64 / 1024.0},
            "pass": rss_pass,
        },
        "binary_mib": {"framework": sizes[0] as f64 / 1048576.0, "handwritten": sizes[1] as f64 / 1048576.0},
        "instructions_per_request": instructions,
        "incremental_build_s": build_times.map(|[a, b]| json!({"framework": a, "handwritten": b, "ratio": a / b.max(1e-9)})),
        "targets": targets,
        "pass": all_pass,
    });
    print_table(&report);
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&o.out, text).map_err(|e| format!("{}: {e}", o.out.display()))?;
    eprintln!("wrote {}", o.out.display());
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    // A pinned runner sees only its own CPUs; the parent passed the machine's count.
    let cores = std::env::var("BACKSTAGE_BENCH_CORES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get()));
    json!({"cpu": cpu, "cores": cores, "os": std::env::consts::OS})
}

fn servers_names() -> [&'static str; 2] {
    ["framework", "handwritten"]
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

#[allow(clippy::print_stdout)]
fn print_table(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "machine: {} ({} cores)",
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cores"]
    );
    println!();
    println!(
        "{:<36} {:>10} {:>10} {:>7} {:>13} {:>9} {:>9} {:>9} {:>9} {:>6}  ",
        "scenario",
        "A req/s",
        "B req/s",
        "A/B",
        "A/B p25-p75",
        "A p50ms",
        "B p50ms",
        "A p99ms",
        "B p99ms",
        "errors"
    );
    for s in r["scenarios"].as_array().into_iter().flatten() {
        let (a, b) = (&s["framework"], &s["handwritten"]);
        println!(
            "{:<36} {:>10.0} {:>10.0} {:>7.3} {:>13} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>6}  {}",
            s["scenario"].as_str().unwrap_or(""),
            f(&a["rps"]),
            f(&b["rps"]),
            f(&s["ratio"]),
            format!(
                "{:.2}-{:.2}",
                f(&s["ratio_p25_p75"][0]),
                f(&s["ratio_p25_p75"][1])
            ),
            f(&a["p50_ms"]),
            f(&b["p50_ms"]),
            f(&a["p99_ms"]),
            f(&b["p99_ms"]),
            a["errors"].as_u64().unwrap_or(0) + b["errors"].as_u64().unwrap_or(0),
            verdict(s["pass"] == true),
        );
    }
    println!();
    println!(
        "readiness: A {:.1} ms, B {:.1} ms (target < 100 ms) {}",
        f(&r["readiness_ms"]["framework"]),
        f(&r["readiness_ms"]["handwritten"]),
        verdict(r["readiness_ms"]["pass"] == true)
    );
    let rss = &r["rss_mib"];
    println!(
        "RSS idle: A {:.1} MiB, B {:.1} MiB (target < 20 MiB) {}",
        f(&rss["framework"]["idle"]),
        f(&rss["handwritten"]["idle"]),
        verdict(rss["pass"] == true)
    );
    println!(
        "RSS after load: A {:.1} MiB, B {:.1} MiB",
        f(&rss["framework"]["after_load"]),
        f(&rss["handwritten"]["after_load"])
    );
    println!(
        "release binary: A {:.1} MiB, B {:.1} MiB",
        f(&r["binary_mib"]["framework"]),
        f(&r["binary_mib"]["handwritten"])
    );
    for i in r["instructions_per_request"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "instructions per request, {}: A {:.0}, B {:.0} (A/B {:.3})",
            i["scenario"].as_str().unwrap_or(""),
            f(&i["framework"]),
            f(&i["handwritten"]),
            f(&i["ratio"]),
        );
    }
    if let Some(b) = r["incremental_build_s"].as_object() {
        println!(
            "incremental build after a one-line change: A {:.1} s, B {:.1} s (A/B {:.2})",
            f(&b["framework"]),
            f(&b["handwritten"]),
            f(&b["ratio"])
        );
    }
    println!();
    println!("overall: {}", verdict(r["pass"] == true));
}
