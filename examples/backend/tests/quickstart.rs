//! The README's quickstart, as a user runs it: `cargo run -p example-backend` from the
//! repository root, then the three `curl`s and the answers the README prints.
//!
//! The listening port is overridden to a free one (`APP_CONFIG_backend_listen_port=0`) and read
//! from the log; everything else comes from the repository's `app-config.yaml`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The example backend, stopped when dropped.
struct Backend {
    child: Child,
    port: u16,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Backend {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-backend"))
        .current_dir(ROOT)
        .env("APP_CONFIG_backend_listen_port", "0")
        .env("LOG_LEVEL", "info")
        .env_remove("NODE_ENV")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example backend starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut backend = Backend { child, port: 0 };
    let mut log = String::new();
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `Backend started` line; the log so far:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if let Some(at) = line.find("Listening on :") {
            let port = &line[at + "Listening on :".len()..];
            backend.port = port.trim().parse().expect("a port after `Listening on :`");
        }
        if line.contains("Backend started in") && backend.port != 0 {
            return backend;
        }
    }
}

/// One HTTP/1.1 request, as curl sends it; the status and the body.
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the backend accepts");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream
        .write_all(head.as_bytes())
        .expect("the request is sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the answer is read");
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_quickstart_answers_as_the_readme_says() {
    let backend = start();

    assert_eq!(
        request(backend.port, "GET", "/api/carmen/health", &[], ""),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    assert_eq!(
        request(backend.port, "POST", "/api/carmen/me", &[], ""),
        (
            401,
            r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"},"request":{"method":"POST","url":"/me"},"response":{"statusCode":401}}"#
                .to_owned()
        )
    );
    // The greeting shouts: the example links carmen-module-shout.
    assert_eq!(
        request(
            backend.port,
            "POST",
            "/api/carmen/greetings",
            &[
                "Authorization: Bearer example-static-token-change-me",
                "Content-Type: application/json",
            ],
            r#"{"name":"Ada"}"#,
        ),
        (200, r#"{"message":"HELLO, ADA!"}"#.to_owned())
    );
}
