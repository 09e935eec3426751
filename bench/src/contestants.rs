//! The servers the benchmark drives: what each one is, how it is configured and started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client;

pub(crate) const STATIC_TOKEN: &str = "bench-static-token-0123456789";

/// What runs a contestant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The example backend (carmen and its module), as a user builds it.
    Framework,
    /// `handwritten`, with the features it does by hand (`FEATURES`).
    Handwritten(&'static str),
    /// Backstage's backend from npm with carmen as a TypeScript plugin.
    Node,
    /// A backend of this many generated plugins.
    Scale(usize),
}

/// One server configuration the benchmark compares.
#[derive(Clone)]
pub(crate) struct Contestant {
    /// The short name in tables and JSON.
    pub(crate) key: &'static str,
    pub(crate) about: &'static str,
    pub(crate) kind: Kind,
    /// Environment on top of the defaults (`LOG_LEVEL`, `NODE_ENV`).
    pub(crate) env: Vec<(&'static str, &'static str)>,
    /// Configuration merged into the framework's `app-config.yaml`.
    pub(crate) config: Value,
    /// The one path it is measured on, where it differs from `limit` on that path alone.
    pub(crate) only: Option<&'static str>,
}

impl Contestant {
    fn new(key: &'static str, about: &'static str, kind: Kind) -> Self {
        Contestant {
            key,
            about,
            kind,
            env: Vec::new(),
            config: Value::Null,
            only: None,
        }
    }

    fn env(mut self, name: &'static str, value: &'static str) -> Self {
        self.env.push((name, value));
        self
    }

    fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Whether it is measured on `path`.
    pub(crate) fn takes(&self, path: &str) -> bool {
        self.only.is_none_or(|only| only == path)
    }

    /// Whether its request log lines are counted: the framework logging at info.
    pub(crate) fn logs_requests(&self) -> bool {
        self.kind == Kind::Framework && !self.env.contains(&("LOG_LEVEL", "warn"))
    }
}

/// The minimal axum server: the physical limit the framework is measured against.
pub(crate) fn limit() -> Contestant {
    Contestant::new(
        "limit",
        "minimal axum: the same routes, token checks and SQL, nothing else",
        Kind::Handwritten("none"),
    )
}

/// The limit answering `/health` with Backstage's header lines, prebuilt: what the wire
/// contract costs by itself.
pub(crate) fn limit_wire() -> Contestant {
    Contestant {
        only: Some(HEALTH_PATH),
        ..Contestant::new(
            "limit+wire",
            "the limit whose /health sends Backstage's header lines, copied from a prebuilt map",
            Kind::Handwritten("wire"),
        )
    }
}

/// The path of the `/health` scenario.
pub(crate) const HEALTH_PATH: &str = "/api/carmen/health";

/// The hand-written server doing the framework's per-request work.
pub(crate) fn equal_work() -> Contestant {
    Contestant::new(
        "equal-work",
        "hand-written axum doing the same work (security headers, Express JSON, compression), no logs",
        Kind::Handwritten("headers,express-json,compression"),
    )
}

/// The example backend as a user runs it: info, the request log on, plain lines.
pub(crate) fn shipped() -> Contestant {
    Contestant::new(
        "shipped",
        "example backend as shipped: info, request log and PONG, plain lines",
        Kind::Framework,
    )
}

/// As shipped, in production: JSON lines.
pub(crate) fn shipped_json() -> Contestant {
    Contestant::new(
        "shipped-json",
        "as shipped with NODE_ENV=production: JSON lines",
        Kind::Framework,
    )
    .env("NODE_ENV", "production")
}

/// Logs at warn: no request log, no PONG.
pub(crate) fn warn() -> Contestant {
    Contestant::new(
        "warn",
        "example backend with LOG_LEVEL=warn",
        Kind::Framework,
    )
    .env("LOG_LEVEL", "warn")
}

/// Backstage on Node as deployed: production, JSON lines, request log at info.
pub(crate) fn node() -> Contestant {
    Contestant::new(
        "node",
        "Backstage's backend from npm, carmen in TypeScript, NODE_ENV=production",
        Kind::Node,
    )
    .env("NODE_ENV", "production")
}

/// The variants whose differences itemize the cost of each feature (instructions per request).
pub(crate) fn feature_variants() -> Vec<Contestant> {
    vec![
        limit(),
        Contestant {
            key: "hw+wire",
            ..limit_wire()
        },
        Contestant::new("hw+headers", "limit + security headers", Kind::Handwritten("headers")),
        Contestant::new(
            "hw+express-json",
            "limit + Express JSON (charset, ETag)",
            Kind::Handwritten("express-json"),
        ),
        Contestant::new(
            "hw+compression",
            "limit + Vary and the compression layer",
            Kind::Handwritten("compression"),
        ),
        equal_work(),
        warn(),
        Contestant::new("warn+cors", "warn + backend.cors configured", Kind::Framework)
            .env("LOG_LEVEL", "warn")
            .config(json!({"backend": {"cors": {"origin": "http://localhost:3000", "credentials": true}}})),
        Contestant::new(
            "warn+rate-limit",
            "warn + backend.rateLimit (memory store)",
            Kind::Framework,
        )
        .env("LOG_LEVEL", "warn")
        .config(json!({"backend": {"rateLimit": {"incomingRequestLimit": 1_000_000_000, "window": "1m"}}})),
        shipped(),
        shipped_json(),
    ]
}

/// Where and how servers start: binaries, folders, CPUs, the plugin key set.
pub(crate) struct Setup {
    pub(crate) bin_dir: PathBuf,
    pub(crate) work: PathBuf,
    /// `taskset -c <cpus>` for measured servers, or nothing.
    pub(crate) pin: Vec<String>,
    /// The JWKS server of the plugin `bench`.
    pub(crate) jwks: SocketAddr,
    /// The Node program and the folder with Backstage's packages installed.
    pub(crate) node: String,
    pub(crate) node_dir: PathBuf,
}

/// A server under test; killed when dropped.
pub(crate) struct Server {
    pub(crate) key: &'static str,
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) ready_after: Duration,
    /// Requests to the plugin answered so far (each one a request log line).
    pub(crate) sent: AtomicU64,
    /// Where its standard output and error go.
    pub(crate) log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// One request on a fresh connection, counted.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, hyper::body::Bytes), String> {
        let answer = client::request(self.addr, method, path, token, body).await?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// Twenty items, so `GET /items` has rows to send.
    pub(crate) async fn seed(&self) -> Result<(), String> {
        for i in 0..20 {
            let body = format!(r#"{{"name":"item {i}"}}"#);
            let (status, _) = self
                .request("POST", "/api/carmen/items", Some(STATIC_TOKEN), Some(&body))
                .await?;
            if status != 201 {
                return Err(format!("{}: seeding answered {status}", self.key));
            }
        }
        Ok(())
    }

    /// Ends the server as an operator does (SIGTERM) and waits for it, so that its log is
    /// complete; then counts the request log lines for the plugin's routes.
    pub(crate) async fn stop_and_count_request_lines(&mut self) -> Result<u64, String> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                return Err(format!("{} did not stop within 30 s of SIGTERM", self.key));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = std::fs::read_to_string(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        Ok(text.lines().filter(|l| is_request_line(l)).count() as u64)
    }
}

/// A request log line of carmen's routes, plain or JSON.
fn is_request_line(line: &str) -> bool {
    line.contains(" /api/carmen/")
        && (line.contains(" HTTP/1.1\" ") || line.contains(" HTTP/1.1\\\" "))
}

/// The resident memory of process `pid`, in KiB (0 where `/proc` does not say).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_field(&pid.to_string(), "VmRSS:")
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The CPUs process `pid` (or `self`) may run on, as Linux lists them (`0-1,3`); empty where
/// `/proc` does not say.
pub(crate) fn cpus_allowed(pid: &str) -> String {
    status_field(pid, "Cpus_allowed_list:").unwrap_or_default()
}

/// The value of the line of `/proc/<pid>/status` that starts with `name`, trimmed.
fn status_field(pid: &str, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|value| value.trim().to_owned())
}

/// The CPUs of a list such as `0-2,5`, in order; what does not parse is left out.
pub(crate) fn cpu_set(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((first, last)) => {
                if let (Ok(first), Ok(last)) = (first.parse::<usize>(), last.parse::<usize>()) {
                    cpus.extend(first..=last);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `base` with `extra` merged in, objects member by member.
fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Value::Object(into), Value::Object(from)) = (&mut base, extra) {
        for (key, value) in from {
            let old = into.remove(key).unwrap_or(Value::Null);
            into.insert(key.clone(), merged(old, value));
        }
        return base;
    }
    if extra.is_null() { base } else { extra.clone() }
}

impl Setup {
    /// Starts `contestant` behind `wrapper` (taskset, valgrind) and waits for readiness.
    pub(crate) async fn start(
        &self,
        contestant: &Contestant,
        wrapper: &[String],
    ) -> Result<Server, String> {
        let port = free_port();
        let folder = self.work.join(format!("{}-{port}", contestant.key));
        std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
        let log = folder.join("stdout.log");
        let mut command = match contestant.kind {
            Kind::Framework | Kind::Scale(_) => {
                let binary = match contestant.kind {
                    Kind::Scale(n) => format!("scale-{n}"),
                    _ => "example-backend".to_owned(),
                };
                let config = merged(
                    json!({
                        "backend": {
                            "listen": {"host": "127.0.0.1", "port": port},
                            "auth": {"externalAccess": [{"type": "static", "options": {"token": STATIC_TOKEN, "subject": "bench"}}]},
                        },
                        "discovery": {"endpoints": [{"target": format!("http://{}/api/{{{{pluginId}}}}", self.jwks), "plugins": ["bench"]}]},
                    }),
                    &contestant.config,
                );
                std::fs::write(folder.join("app-config.yaml"), config.to_string())
                    .map_err(|e| e.to_string())?;
                let mut c = self.wrapped(wrapper, self.built(&binary)?);
                c.current_dir(&folder);
                c
            }
            Kind::Handwritten(features) => {
                let mut c = self.wrapped(wrapper, self.built("handwritten")?);
                c.env("PORT", port.to_string())
                    .env("STATIC_TOKEN", STATIC_TOKEN)
                    .env("FEATURES", features)
                    .env(
                        "JWKS_URL",
                        format!(
                            "http://{}/api/bench/.backstage/auth/v1/jwks.json",
                            self.jwks
                        ),
                    );
                c
            }
            Kind::Node => {
                let config = json!({
                    "backend": {
                        "baseUrl": format!("http://127.0.0.1:{port}"),
                        "listen": {"host": "127.0.0.1", "port": port},
                        "database": {"client": "better-sqlite3", "connection": ":memory:"},
                        "auth": {"externalAccess": [{"type": "static", "options": {"token": STATIC_TOKEN, "subject": "bench"}}]},
                    },
                });
                let file = folder.join("app-config.yaml");
                std::fs::write(&file, config.to_string()).map_err(|e| e.to_string())?;
                let script = self.node_dir.join("bench-carmen.js");
                std::fs::write(&script, include_str!("../node/carmen.js"))
                    .map_err(|e| e.to_string())?;
                let mut c = self.wrapped(wrapper, PathBuf::from(&self.node));
                c.arg(script)
                    .arg("--config")
                    .arg(file)
                    .current_dir(&self.node_dir);
                c
            }
        };
        for (name, value) in &contestant.env {
            command.env(name, value);
        }
        // Both streams to one file: log lines and whatever goes to stderr.
        let stdout = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let stderr = stdout.try_clone().map_err(|e| e.to_string())?;
        command.stdout(stdout).stderr(stderr);
        let server = start(contestant.key, command, port, log).await?;
        // A server meant to be pinned that shares the load generator's CPUs would measure the
        // load generator too: refuse to measure it.
        if let [taskset, _, wanted, ..] = wrapper
            && taskset == "taskset"
        {
            let actual = cpus_allowed(&server.child.id().to_string());
            if cpu_set(&actual) != cpu_set(wanted) {
                return Err(format!(
                    "{} runs on CPUs {actual}, not on CPU {wanted} where it was pinned",
                    contestant.key
                ));
            }
        }
        Ok(server)
    }

    /// The path of the release binary `name`, or what to run to build it (`--no-build` uses
    /// what is there; a wrapper such as `taskset` would report a missing program only as its
    /// exit status).
    fn built(&self, name: &str) -> Result<PathBuf, String> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
        Err(format!(
            "{} is not built; run the benchmark without --no-build, or build it with \
             `cargo build --release -p example-backend -p backstage-bench --features backstage-bench/scale`",
            path.display()
        ))
    }

    fn wrapped(&self, wrapper: &[String], program: PathBuf) -> Command {
        match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        }
    }
}

/// Spawns `command` and measures the time until readiness answers 200.
async fn start(
    key: &'static str,
    mut command: Command,
    port: u16,
    log: PathBuf,
) -> Result<Server, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("{key} did not start: {e}"))?;
    let mut server = Server {
        key,
        child,
        addr,
        ready_after: Duration::ZERO,
        sent: AtomicU64::new(0),
        log,
    };
    loop {
        if let Ok((200, _)) =
            client::request(addr, "GET", "/.backstage/health/v1/readiness", None, None).await
        {
            server.ready_after = started.elapsed();
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(90) {
            return Err(format!("{key} was not ready after 90 s"));
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{key} exited: {status}"));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Installs Backstage's packages from npm into `dir` (`bench/node/package.json`: the backend,
/// and better-sqlite3 for carmen's database), unless they are there already. better-sqlite3 is
/// built from source where its prebuilt binary cannot be fetched: with the headers of the
/// machine's Node where they are installed (`/usr/include/node`).
pub(crate) fn install_node_packages(dir: &Path) -> Result<(), String> {
    let package = include_str!("../node/package.json");
    let marker = dir.join("node_modules/.backstage-rs-package.json");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(package) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("package.json"), package).map_err(|e| e.to_string())?;
    eprintln!(
        "installing Backstage's backend from npm into {}...",
        dir.display()
    );
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir);
    if std::env::var_os("npm_config_nodedir").is_none()
        && Path::new("/usr/include/node/node.h").exists()
    {
        npm.env("npm_config_nodedir", "/usr");
    }
    let status = npm
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("npm did not run: {e}"))?;
    if !status.success() {
        return Err(format!("npm install failed in {}", dir.display()));
    }
    std::fs::write(&marker, package).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_as_linux_writes_them() {
        assert_eq!(cpu_set("0"), [0]);
        assert_eq!(cpu_set("0-2,5"), [0, 1, 2, 5]);
        assert_eq!(cpu_set("3,1-2"), [1, 2, 3]);
        assert_eq!(cpu_set(""), Vec::<usize>::new());
    }

    #[test]
    fn a_binary_not_built_is_named_with_the_command_that_builds_it() {
        let dir = std::env::temp_dir().join(format!("bench-built-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("handwritten"), b"").unwrap();
        let setup = Setup {
            bin_dir: dir.clone(),
            work: dir.clone(),
            pin: Vec::new(),
            jwks: ([127, 0, 0, 1], 9).into(),
            node: String::new(),
            node_dir: dir.clone(),
        };
        assert_eq!(setup.built("handwritten"), Ok(dir.join("handwritten")));
        let missing = setup.built("scale-100").unwrap_err();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            missing.contains(&*dir.join("scale-100").to_string_lossy()),
            "{missing}"
        );
        assert!(
            missing.contains("--features backstage-bench/scale"),
            "{missing}"
        );
    }

    #[test]
    fn this_process_has_cpus_listed() {
        assert!(!cpu_set(&cpus_allowed("self")).is_empty());
    }
}
