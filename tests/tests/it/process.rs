//! Backends as real processes: start-up log, config files, signals, exit codes.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backstage-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `bin` in `dir` and collects its log lines (stdout) until "Backend started" (or exit).
fn spawn(bin: &str, dir: &PathBuf, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    spawn_with_env(bin, dir, args, &[])
}

/// [`spawn`] with extra environment variables.
fn spawn_with_env(
    bin: &str,
    dir: &PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn backend");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn lines_until(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let done = line.contains(needle);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => panic!("no line with {needle:?}; got:\n{}", lines.join("\n")),
        }
    }
}

/// The address of the `Listening on <host>:<port>` line.
fn listening_address(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.split("Listening on ").nth(1))
        .expect("listen line")
        .trim()
        .to_owned()
}

pub(crate) fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_backend_without_plugins_starts_and_says_how_to_add_one() {
    let dir = temp_dir("none");
    let (child, rx) = spawn_with_env(
        env!("CARGO_BIN_EXE_no-plugins"),
        &dir,
        &[],
        &[
            ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
            ("APP_CONFIG_backend_listen_port", "0"),
        ],
    );
    let lines = lines_until(&rx, "No plugins are linked into this backend yet");
    let log = lines.join("\n");
    assert!(
        log.contains("cargo backstage new backend-plugin --id <id>")
            && log.contains("use carmen_backend as _;"),
        "{log}"
    );
    let address = listening_address(&lines);
    let (status, _, body) = read(
        client()
            .get(format!("http://{address}/.backstage/health/v1/readiness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    terminate(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
}

#[test]
fn list_routes_prints_every_route_with_its_auth_policy_and_starts_nothing() {
    let dir = temp_dir("list");
    // A config that could not start: listing does not read it.
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen: not-a-port\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_carmen-backend"))
        .arg("--list-routes")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let table = String::from_utf8_lossy(&output.stdout);
    let row = |method: &str, path: &str| {
        table
            .lines()
            .find(|l| {
                let mut cells = l.split_whitespace();
                cells.next() == Some(method) && cells.next() == Some(path)
            })
            .unwrap_or_else(|| panic!("no {method} {path} in:\n{table}"))
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_owned()
    };
    assert_eq!(row("GET", "/api/carmen/health"), "unauthenticated");
    assert_eq!(row("POST", "/api/carmen/me"), "default");
    assert_eq!(
        row("GET", "/api/carmen/.backstage/auth/v1/jwks.json"),
        "unauthenticated"
    );
    assert_eq!(
        row("GET", "/api/carmen/.backstage/auth/v1/cookie"),
        "user-cookie"
    );
    assert_eq!(
        row("GET", "/.backstage/health/v1/readiness"),
        "unauthenticated"
    );
    assert!(
        table.contains("examples/carmen/src/lib.rs:"),
        "each route names its handler's place: {table}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).is_empty());
}

#[tokio::test]
async fn every_listed_route_is_served_and_logged_at_debug_level() {
    let dir = temp_dir("routes");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen: { host: 127.0.0.1, port: 0 }\n  auth:\n    externalAccess:\n      - type: static\n        options: { token: listed-routes-token, subject: curl }\n",
    )
    .unwrap();
    let listed = Command::new(env!("CARGO_BIN_EXE_carmen-backend"))
        .arg("--list-routes")
        .current_dir(&dir)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    let routes: Vec<(String, String)> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some((cells.next()?.to_owned(), cells.next()?.to_owned()))
        })
        .filter(|(_, path)| path.starts_with('/'))
        .collect();
    assert!(routes.len() > 10, "{table}");

    let (child, rx) = spawn_with_env(
        env!("CARGO_BIN_EXE_carmen-backend"),
        &dir,
        &[],
        &[("LOG_LEVEL", "debug")],
    );
    let lines = lines_until(&rx, "Route GET /.backstage/health/v1/readiness");
    let log = lines.join("\n");
    assert!(
        log.contains("Route GET /api/carmen/health (auth: unauthenticated) from health"),
        "{log}"
    );
    let address = listening_address(&lines);
    for (method, path) in &routes {
        let path = path.replace("{id}", "1");
        let request = client()
            .request(method.parse().unwrap(), format!("http://{address}{path}"))
            .bearer_auth("listed-routes-token")
            .header("content-type", "application/json")
            .body("{}");
        let (status, _, body) = read(request.send().await.unwrap()).await;
        // Served: anything but the empty 404 of a path nobody serves. A route may answer 404
        // itself (no item 1, no task 1), always with Backstage's error body.
        assert!(
            status != 404 || body.contains("NotFoundError") && !body.contains("\"Not Found\""),
            "{method} {path} is listed but not served: {status} {body}"
        );
    }
    terminate(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
}

#[tokio::test]
async fn the_example_backend_logs_its_start_serves_and_stops_on_sigterm() {
    let dir = temp_dir("carmen");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen:\n    host: 127.0.0.1\n    port: 0\n  auth:\n    externalAccess:\n      - type: static\n        options: { token: process-token-123, subject: curl }\n",
    )
    .unwrap();
    let (child, rx) = spawn(env!("CARGO_BIN_EXE_carmen-backend"), &dir, &[]);
    let lines = lines_until(&rx, "Backend started in");
    let log = lines.join("\n");
    assert!(log.contains("Plugins discovered: carmen"), "{log}");
    assert!(log.contains("Modules discovered: none"), "{log}");
    let listening = listening_address(&lines);
    assert!(listening.starts_with("127.0.0.1:"), "{listening}");
    assert!(lines.last().unwrap().contains(" ms"), "{log}");

    let base = format!("http://{listening}");
    let (status, _, body) = read(
        client()
            .get(format!("{base}/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let log = lines_until(&rx, "PONG!").join("\n");
    assert!(log.contains("plugin=carmen"), "{log}");
    let response = client()
        .post(format!("{base}/api/carmen/greetings"))
        .bearer_auth("process-token-123")
        .json(&serde_json::json!({"name": "Ada"}))
        .send();
    assert_eq!(
        read(response.await.unwrap()).await.2,
        r#"{"message":"Hello, Ada!"}"#
    );

    terminate(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "SIGTERM is a clean shutdown");
}

#[test]
fn config_arguments_replace_the_default_files() {
    let dir = temp_dir("args");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen: not-a-port\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.yaml"),
        "backend:\n  listen: { host: 127.0.0.1, port: 0 }\n",
    )
    .unwrap();
    let (child, rx) = spawn(
        env!("CARGO_BIN_EXE_carmen-backend"),
        &dir,
        &["--config", "other.yaml"],
    );
    lines_until(&rx, "Backend started in");
    terminate(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));

    // the default file is read when no --config is given, and its bad value is named
    let output = Command::new(env!("CARGO_BIN_EXE_carmen-backend"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("backend.listen"), "{stderr}");
}

#[test]
fn malformed_yaml_names_the_file() {
    let dir = temp_dir("yaml");
    std::fs::write(dir.join("app-config.yaml"), "backend: [unclosed\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_carmen-backend"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("app-config.yaml"), "{stderr}");
}

#[tokio::test]
async fn layered_config_and_environment_overrides_reach_the_plugin() {
    let dir = temp_dir("layered");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen:\n    host: 127.0.0.1\n    port: 1\n  auth:\n    externalAccess:\n      - type: static\n        options: { token: \"${CARMEN_TOKEN}\", subject: curl }\ncarmen:\n  greeting: Hello\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app-config.local.yaml"),
        "carmen:\n  greeting: Howdy\n",
    )
    .unwrap();
    // a free port, given through the environment
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_text = port.to_string();
    let (child, rx) = spawn_with_env(
        env!("CARGO_BIN_EXE_carmen-backend"),
        &dir,
        &[],
        &[
            ("APP_CONFIG_backend_listen_port", &port_text),
            ("CARMEN_TOKEN", "layered-token-123"),
        ],
    );
    let log = lines_until(&rx, "Backend started in").join("\n");
    assert!(
        log.contains(&format!("Listening on 127.0.0.1:{port}")),
        "{log}"
    );
    let response = client()
        .post(format!("http://127.0.0.1:{port}/api/carmen/greetings"))
        .bearer_auth("layered-token-123")
        .json(&serde_json::json!({"name": "Ada"}))
        .send();
    assert_eq!(
        read(response.await.unwrap()).await.2,
        r#"{"message":"Howdy, Ada!"}"#
    );
    terminate(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_write() {
    let dir = temp_dir("sigkill");
    let data = dir.join("data");
    std::fs::write(
        dir.join("app-config.yaml"),
        format!(
            "backend:\n  listen: {{ host: 127.0.0.1, port: 0 }}\n  database:\n    client: better-sqlite3\n    connection:\n      directory: {}\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: sigkill-token-123, subject: curl }}\n",
            data.display()
        ),
    )
    .unwrap();
    // The log receiver lives as long as the process: a closed stdout would fail its writes.
    let start = || {
        let (child, rx) = spawn(env!("CARGO_BIN_EXE_carmen-backend"), &dir, &[]);
        let lines = lines_until(&rx, "Backend started in");
        (child, format!("http://{}", listening_address(&lines)), rx)
    };
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let (mut child, base, _log) = start();
        for i in 0..10 {
            let response = client()
                .post(format!("{base}/api/carmen/items"))
                .bearer_auth("sigkill-token-123")
                .json(&serde_json::json!({ "name": format!("round {round} item {i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            acknowledged.push(format!("round {round} item {i}"));
        }
        // No shutdown at all: the process is gone between one instruction and the next.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let (child, base, _log) = start();
    let (status, _, body) = read(
        client()
            .get(format!("{base}/api/carmen/items"))
            .bearer_auth("sigkill-token-123")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(
        names, acknowledged,
        "every acknowledged write survives SIGKILL"
    );
    terminate(&child);
    let _ = child.wait_with_output();
}

#[tokio::test]
async fn a_closed_log_pipe_does_not_stop_the_backend() {
    let dir = temp_dir("closed-log");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen: { host: 127.0.0.1, port: 0 }\n",
    )
    .unwrap();
    let (child, rx) = spawn(env!("CARGO_BIN_EXE_carmen-backend"), &dir, &[]);
    let lines = lines_until(&rx, "Backend started in");
    let base = format!("http://{}", listening_address(&lines));
    // The log collector goes away: every later line fails to be written.
    drop(rx);
    for _ in 0..5 {
        let (status, _, body) = read(
            client()
                .get(format!("{base}/api/carmen/health"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    }
    terminate(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
}

#[tokio::test]
async fn log_lines_the_writer_cannot_keep_up_with_are_counted_and_reported() {
    let dir = temp_dir("flood");
    std::fs::write(
        dir.join("app-config.yaml"),
        "backend:\n  listen: { host: 127.0.0.1, port: 0 }\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slow-backend"))
        .current_dir(&dir)
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backend");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("Backend started in"))
    {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{lines:?}");
        lines.push(line);
    }
    let base = format!("http://{}", listening_address(&lines));
    // Nobody reads the log now: the pipe fills, then the writer's queue; the request goes on.
    const FLOOD: u64 = 200_000;
    let (status, _, body) = read(
        client()
            .get(format!("{base}/api/slow/log/{FLOOD}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, FLOOD.to_string()));
    terminate(&child);
    let written = stdout
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("flood line "))
        .count() as u64;
    // The count of dropped lines is a report on stderr, not a log line.
    let mut report = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut report);
    let dropped: u64 = report
        .lines()
        .find_map(|l| l.split_once(" log lines were dropped")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in {report:?}"));
    // Every line was either written or counted (a few others, as the request's own log line,
    // may be among the dropped).
    assert!(written < FLOOD, "{written}");
    assert!(
        (FLOOD..FLOOD + 5).contains(&(written + dropped)),
        "{written} written + {dropped} dropped"
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
