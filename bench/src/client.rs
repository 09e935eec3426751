//! The load generator's side: keep-alive HTTP/1 connections, single requests, and timed load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// What one scenario sends and expects.
#[derive(Clone)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) token: Option<String>,
    pub(crate) body: Option<&'static str>,
    pub(crate) expect: u16,
    /// A headline scenario: every contestant runs it, the configuration axis and Node too.
    pub(crate) headline: bool,
}

impl Scenario {
    /// The request, ready to send.
    pub(crate) fn request(&self) -> Result<hyper::Request<Full<Bytes>>, String> {
        build(
            self.method,
            self.path,
            self.token.as_deref(),
            self.body.map(|b| Bytes::from_static(b.as_bytes())),
        )
    }
}

/// A keep-alive HTTP/1 connection to `addr` (no Nagle delay), its driver spawned.
pub(crate) async fn connect(addr: SocketAddr) -> Result<Sender, String> {
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

/// Sends `request` on `sender` and reads the whole answer: its status.
pub(crate) async fn send(
    sender: &mut Sender,
    request: hyper::Request<Full<Bytes>>,
) -> Result<u16, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// One request on a fresh connection (set-up and checks only).
pub(crate) async fn request(
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

pub(crate) fn build(
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

/// One timed run against one server.
#[derive(Clone, Default)]
pub(crate) struct Run {
    /// Requests answered in the measured part.
    pub(crate) requests: u64,
    /// Requests answered in all, the warm-up included (each has a log line to find).
    pub(crate) sent: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies_us: Vec<u32>,
}

impl Run {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// The `p` quantile of the latencies, in milliseconds.
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        f64::from(sorted[i]) / 1000.0
    }
}

/// How hard and how long to drive a server.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) concurrency: usize,
}

/// Drives `scenario` against `addr` with `load.concurrency` keep-alive connections: a warm-up,
/// then `load.duration` of measured requests. Bounded: every connection stops at the deadline.
pub(crate) async fn load(addr: SocketAddr, scenario: &Scenario, load: Load) -> Run {
    let scenario = Arc::new(scenario.clone());
    let warm_until = Instant::now() + load.warmup;
    let until = warm_until + load.duration;
    let mut tasks = Vec::new();
    for _ in 0..load.concurrency {
        let scenario = scenario.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let Ok(mut sender) = connect(addr).await else {
                run.errors += 1;
                return run;
            };
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let Ok(req) = scenario.request() else {
                    run.errors += 1;
                    break;
                };
                let outcome = send(&mut sender, req).await;
                if outcome.is_ok() {
                    run.sent += 1;
                }
                if now >= warm_until {
                    run.requests += 1;
                    run.latencies_us
                        .push(now.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if outcome != Ok(scenario.expect) {
                        run.errors += 1;
                    }
                }
                if outcome.is_err() {
                    break;
                }
            }
            run
        }));
    }
    let mut total = Run {
        seconds: load.duration.as_secs_f64(),
        ..Run::default()
    };
    for task in tasks {
        if let Ok(run) = task.await {
            total.requests += run.requests;
            total.sent += run.sent;
            total.errors += run.errors;
            total.latencies_us.extend(run.latencies_us);
        }
    }
    total
}
