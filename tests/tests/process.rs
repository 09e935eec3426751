//! Backends as real processes: start-up log, config files, signals, exit codes.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backstage-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `bin` in `dir` and collects its stderr lines until "Backend started" (or exit).
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backend");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
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

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_binary_without_plugins_says_how_to_link_one() {
    let dir = temp_dir("none");
    let output = Command::new(env!("CARGO_BIN_EXE_no-plugins"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no plugins are linked into this binary"),
        "{stderr}"
    );
    assert!(stderr.contains("use carmen_backend as _;"), "{stderr}");
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
    let listening = lines
        .iter()
        .find_map(|l| l.split("Listening on ").nth(1))
        .expect("listen line")
        .trim()
        .to_owned();
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
