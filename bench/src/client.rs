//! The load generator's side: keep-alive HTTP/1 connections, single requests, and timed load.
//!
//! Timed load goes through [`Connection`]: the request's bytes written as they are and the
//! answer read with no more parsing than its status and where its body ends, in the task that
//! sends. The load generator has one CPU, as the server has; a client that builds header maps
//! and hands every request to a connection task of its own (hyper's) spends more on an answer
//! than a fast server does, and would measure itself.

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
    /// The request as bytes on the wire.
    pub(crate) fn wire(&self) -> Vec<u8> {
        let mut text = format!(
            "{} {} HTTP/1.1\r\nhost: 127.0.0.1\r\n",
            self.method, self.path
        );
        if let Some(token) = &self.token {
            text.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = self.body {
            text.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            text.push_str("\r\n");
        }
        text.into_bytes()
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

/// A keep-alive HTTP/1.1 connection that sends requests as bytes and reads each answer to its
/// end: its status line, its headers as far as they say where the body ends, and its body.
pub(crate) struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// A connection to `addr`, with no Nagle delay.
    pub(crate) async fn open(addr: SocketAddr) -> Result<Connection, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` (a whole request, as [`Scenario::wire`] makes it) and reads the answer
    /// to its end: its status. An answer that ends the connection (`Connection: close`, or a
    /// body that runs to the end of the stream) is an error: the load is meant to keep its
    /// connections.
    pub(crate) async fn exchange(&mut self, request: &[u8], head: bool) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        self.buffer.clear();
        loop {
            if let Some(answer) = answer_end(&self.buffer, head)? {
                if answer.end != self.buffer.len() {
                    return Err("more bytes than one answer".into());
                }
                return Ok(answer.status);
            }
            if self.buffer.capacity() - self.buffer.len() < 4096 {
                self.buffer.reserve(16 * 1024);
            }
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// A whole answer at the start of a buffer: its status and where it ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AnswerEnd {
    pub(crate) status: u16,
    pub(crate) end: usize,
}

/// Where the answer at the start of `bytes` ends, once all of it is there (`None` until then);
/// `head` for the answer to a `HEAD` request, which has no body whatever its headers say.
/// Interim answers (`100 Continue`, `103 Early Hints`) before it are skipped.
pub(crate) fn answer_end(bytes: &[u8], head: bool) -> Result<Option<AnswerEnd>, String> {
    let mut start = 0;
    loop {
        let Some(head_end) = find(bytes, b"\r\n\r\n", start).map(|at| at + 4) else {
            return Ok(None);
        };
        let mut lines = bytes[start..head_end - 4].split(|&b| b == b'\n');
        let status_line = lines.next().unwrap_or_default();
        let (version, status) = status_of(status_line).ok_or_else(|| {
            format!(
                "not an HTTP/1 status line: {:?}",
                String::from_utf8_lossy(status_line)
            )
        })?;
        let mut length = None;
        let mut chunked = false;
        let mut close = version == "1.0";
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            let tokens = || {
                value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| !t.is_empty())
            };
            if name.eq_ignore_ascii_case(b"content-length") {
                length = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<usize>().ok())
                        .ok_or_else(|| {
                            format!("content-length {:?}", String::from_utf8_lossy(value))
                        })?,
                );
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // Chunked when it is the last coding.
                chunked = tokens()
                    .next_back()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                if tokens().any(|t| t.eq_ignore_ascii_case(b"close")) {
                    close = true;
                } else if tokens().any(|t| t.eq_ignore_ascii_case(b"keep-alive")) {
                    close = false;
                }
            }
        }
        if (100..200).contains(&status) && status != 101 {
            start = head_end;
            continue;
        }
        if close || status == 101 {
            return Err(format!(
                "answered {status} and ends the connection (HTTP/{version})"
            ));
        }
        if head || status == 204 || status == 304 {
            return Ok(Some(AnswerEnd {
                status,
                end: head_end,
            }));
        }
        let end = match (chunked, length) {
            (true, _) => chunked_end(bytes, head_end)?,
            (false, Some(length)) => head_end
                .checked_add(length)
                .filter(|&end| end <= bytes.len()),
            (false, None) => {
                return Err(format!(
                    "answered {status} with a body that runs to the end of the connection"
                ));
            }
        };
        return Ok(end.map(|end| AnswerEnd { status, end }));
    }
}

/// The version (`1.1` or `1.0`) and status of an HTTP/1 status line: three digits after it.
fn status_of(line: &[u8]) -> Option<(&'static str, u16)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (version, rest) = if let Some(rest) = line.strip_prefix(b"HTTP/1.1 ") {
        ("1.1", rest)
    } else {
        ("1.0", line.strip_prefix(b"HTTP/1.0 ")?)
    };
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |status, &d| status * 10 + u16::from(d - b'0'));
    Some((version, status))
}

/// Where a chunked body starting at `at` ends (after its last chunk and trailers).
fn chunked_end(bytes: &[u8], mut at: usize) -> Result<Option<usize>, String> {
    loop {
        let Some(line_end) = find(bytes, b"\r\n", at) else {
            return Ok(None);
        };
        let size_line = &bytes[at..line_end];
        let size_text = size_line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|t| usize::from_str_radix(t, 16).ok())
            .ok_or_else(|| format!("chunk size {:?}", String::from_utf8_lossy(size_line)))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let mut line = line_end + 2;
            loop {
                let Some(next) = find(bytes, b"\r\n", line) else {
                    return Ok(None);
                };
                if next == line {
                    return Ok(Some(next + 2));
                }
                line = next + 2;
            }
        }
        let data_end = (line_end + 2)
            .checked_add(size)
            .ok_or_else(|| format!("chunk size {size} is too large"))?;
        let Some(after) = bytes.get(data_end..).and_then(|rest| rest.get(..2)) else {
            return Ok(None);
        };
        if after != b"\r\n" {
            return Err("a chunk's data does not end with CRLF".into());
        }
        at = data_end + 2;
    }
}

/// The first `needle` in `bytes` from `from` on.
fn find(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|at| at + from)
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

/// The header lines of the answer to `GET path`, in the order they came, without `Date`
/// (which changes every second).
pub(crate) async fn header_lines(addr: SocketAddr, path: &str) -> Result<Vec<String>, String> {
    let mut sender = connect(addr).await?;
    let response = sender
        .send_request(build("GET", path, None, None)?)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response
        .headers()
        .iter()
        .filter(|(name, _)| *name != hyper::header::DATE)
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect())
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
    /// The share of its CPUs the load generator used while it measured (`None` unknown).
    pub(crate) load_cpu: Option<f64>,
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
    let wire: Arc<[u8]> = scenario.wire().into();
    let head = scenario.method == "HEAD";
    let expect = scenario.expect;
    let warm_until = Instant::now() + load.warmup;
    let until = warm_until + load.duration;
    let mut tasks = Vec::new();
    for _ in 0..load.concurrency {
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let Ok(mut connection) = Connection::open(addr).await else {
                run.errors += 1;
                return run;
            };
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let outcome = connection.exchange(&wire, head).await;
                if outcome.is_ok() {
                    run.sent += 1;
                }
                if now >= warm_until {
                    run.requests += 1;
                    run.latencies_us
                        .push(now.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if outcome != Ok(expect) {
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
    // The load generator's own CPU time over the measured part: near one whole CPU, the
    // client rather than the server may be what limits the rate.
    tokio::time::sleep_until(warm_until.into()).await;
    let cpu_before = process_cpu_seconds();
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
    if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds()) {
        // Of the CPUs it may run on (those the benchmark pinned it to).
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let wall = warm_until.elapsed().as_secs_f64().max(1e-9);
        total.load_cpu = Some((after - before) / wall / cpus);
    }
    total
}

/// The CPU time (user and system) this process has used, in seconds; `None` where `/proc`
/// does not say.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold spaces): state is the first
    // field, user and system time (in clock ticks) the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / clock_ticks())
}

/// Clock ticks per second, as `getconf CLK_TCK` says (100 on Linux wherever it does not).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
            .filter(|&ticks: &f64| ticks > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(bytes: &str) -> Result<Option<AnswerEnd>, String> {
        answer_end(bytes.as_bytes(), false)
    }

    #[test]
    fn an_answer_ends_where_its_length_says() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(
            end(answer),
            Ok(Some(AnswerEnd {
                status: 200,
                end: answer.len()
            }))
        );
        // Not all there yet: the head alone, half the head, half the body.
        assert_eq!(end(&answer[..answer.len() - 1]), Ok(None));
        assert_eq!(end(&answer[..20]), Ok(None));
        assert_eq!(
            end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"),
            Ok(None)
        );
    }

    #[test]
    fn a_chunked_answer_ends_after_its_last_chunk_and_trailers() {
        let answer = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na;x=y\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(
            end(answer),
            Ok(Some(AnswerEnd {
                status: 201,
                end: answer.len()
            }))
        );
        for cut in [answer.len() - 1, answer.len() - 5, answer.len() - 20, 60] {
            assert_eq!(end(&answer[..cut]), Ok(None), "cut at {cut}");
        }
        let trailers = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-a: b\r\n\r\n";
        assert_eq!(
            end(trailers).map(|e| e.map(|e| e.end)),
            Ok(Some(trailers.len()))
        );
        assert!(end("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_err());
    }

    #[test]
    fn answers_without_a_body_end_with_their_head() {
        let head = "HTTP/1.1 304 Not Modified\r\nETag: W/\"1\"\r\n\r\n";
        assert_eq!(end(head).unwrap().unwrap().end, head.len());
        let to_head = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n";
        assert_eq!(
            answer_end(to_head.as_bytes(), true).unwrap().unwrap().end,
            to_head.len()
        );
        assert_eq!(end(to_head), Ok(None));
    }

    #[test]
    fn answers_that_would_end_the_connection_or_make_no_sense_are_errors() {
        for answer in [
            "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\nbody to the end",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 +12 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
            // A size that would wrap around, and data longer than its size.
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffec\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(end(answer).is_err(), "{answer:?}");
        }
        let kept = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(end(kept).unwrap().unwrap().end, kept.len());
    }

    #[test]
    fn interim_answers_are_skipped_and_other_codings_before_chunked_are_allowed() {
        let answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(
            end(answer),
            Ok(Some(AnswerEnd {
                status: 201,
                end: answer.len()
            }))
        );
        assert_eq!(end(&answer[..30]), Ok(None));
        // Header values need not be UTF-8.
        let mut latin =
            b"HTTP/1.1 200 OK\r\nx-name: caf\xe9\r\ncontent-length: 1\r\n\r\n!".to_vec();
        assert_eq!(answer_end(&latin, false).unwrap().unwrap().end, latin.len());
        latin.pop();
        assert_eq!(answer_end(&latin, false), Ok(None));
    }

    #[test]
    fn a_request_on_the_wire_has_its_headers_and_body() {
        let scenario = Scenario {
            name: "post",
            method: "POST",
            path: "/api/carmen/items",
            token: Some("t0k".into()),
            body: Some("{\"a\":1}"),
            expect: 201,
            headline: false,
        };
        assert_eq!(
            String::from_utf8(scenario.wire()).unwrap(),
            "POST /api/carmen/items HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer t0k\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[tokio::test]
    async fn a_connection_carries_answers_one_after_another() {
        // A server whose answers arrive in pieces: the head, then the body a moment later.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            for status in [200, 404] {
                let _ = socket.read(&mut buffer).await.unwrap();
                let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\n\r\n");
                socket.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                socket.write_all(b"body").await.unwrap();
            }
        });
        let mut connection = Connection::open(addr).await.unwrap();
        let wire = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(connection.exchange(wire, false).await, Ok(200));
        assert_eq!(connection.exchange(wire, false).await, Ok(404));
        server.await.unwrap();
        assert!(connection.exchange(wire, false).await.is_err());
    }
}
