//! The HTTP server: accepting connections (plain or TLS), timeouts, connection limits and a
//! graceful stop.
//!
//! Written on hyper-util rather than `axum::serve` because `axum::serve` exposes neither the
//! header read timeout, nor TLS, nor a limit on connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::connection::{self, Activity, Control, Exchange, IdleLimits, Phase, Tracked};
use super::dispatch::{Dispatcher, Shared};
use super::policies::HttpPolicies;
use super::sections::{LifecycleSection, ServerSection};
use crate::discovery::Listen;
use crate::lifecycle::RootHealth;

use crate::config::{HumanDuration, RootConfig};
use crate::error::{Error, Result};
use std::convert::Infallible;

/// The backend's HTTP server as the config describes it, read once: how connections are served
/// (`backend.server`, `backend.https`) and what every request passes (security headers, CORS,
/// limits, rate limits, compression).
pub(crate) struct Server {
    settings: ServerSettings,
    policies: HttpPolicies,
    /// `backend.lifecycle.serverShutdownDelay`: how long the server keeps serving, with
    /// readiness at 503, once asked to stop.
    pub(crate) shutdown_delay: Duration,
}

/// A server that serves: what the backend routes requests through, and how it stops it.
pub(crate) struct Running {
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: Arc<Control>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) fn from_config(config: &RootConfig) -> Result<Self> {
        let server: ServerSection = config.get_optional("backend.server")?.unwrap_or_default();
        let lifecycle: LifecycleSection = config
            .get_optional("backend.lifecycle")?
            .unwrap_or_default();
        Ok(Server {
            settings: ServerSettings::new(&server, &lifecycle, config)?,
            policies: HttpPolicies::new(&server, &lifecycle, config)?,
            shutdown_delay: lifecycle
                .server_shutdown_delay
                .map_or(Duration::ZERO, Duration::from),
        })
    }

    /// Serves on `listener`: health answers at once, plugin routes once the backend hands them
    /// over (`Shared::routes`) and `started` turns true.
    pub(crate) fn start(
        self,
        listener: TcpListener,
        health: RootHealth,
        started: watch::Receiver<bool>,
    ) -> Running {
        let shared = Arc::new(Shared {
            health,
            routes: std::sync::OnceLock::new(),
            policies: self.policies,
            started,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        let control = Control::new(self.settings.kept_open.clone());
        let dispatcher = Dispatcher {
            shared: shared.clone(),
        };
        let task = tokio::spawn(serve(listener, dispatcher, self.settings, control.clone()));
        Running {
            shared,
            control,
            task,
        }
    }
}

/// A listener at `backend.listen`; with no host, every interface (IPv6 and IPv4, else IPv4).
pub(crate) async fn bind(listen: &Listen) -> Result<TcpListener> {
    let candidates: Vec<String> = if listen.host.is_empty() {
        vec![
            format!("[::]:{}", listen.port),
            format!("0.0.0.0:{}", listen.port),
        ]
    } else if listen.host.contains(':') {
        vec![format!("[{}]:{}", listen.host, listen.port)]
    } else {
        vec![format!("{}:{}", listen.host, listen.port)]
    };
    let mut last_error = None;
    for candidate in &candidates {
        match TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                last_error = Some(format!(
                    "cannot listen on {candidate} (backend.listen): {e}"
                ))
            }
        }
    }
    Err(Error::internal(
        last_error.unwrap_or_else(|| "no address to listen on".to_owned()),
    ))
}

/// Node's default `maxHeaderSize`.
const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// The smallest header limit hyper can work with.
const MIN_MAX_HEADER_SIZE: usize = 8 * 1024;

/// `backend.server`, `backend.https` and the shutdown grace period.
#[derive(Clone)]
pub(crate) struct ServerSettings {
    /// `backend.server.headersTimeout`: a client must send a request's headers within this
    /// (slow-loris protection; it also closes idle keep-alive connections). Default 60 s.
    pub(crate) headers_timeout: Duration,
    /// `backend.server.maxConnections`: connections served at once; more wait to be accepted.
    pub(crate) max_connections: Option<usize>,
    /// `backend.server.keepAlive` (default true): whether HTTP/1.1 connections are reused.
    pub(crate) keep_alive: bool,
    /// `backend.server.keepAliveTimeout`: a connection with no request in flight is closed
    /// after this long (Node's default: 5 s).
    pub(crate) keep_alive_timeout: Duration,
    /// The headers of answers on connections that stay open (`Connection: keep-alive`,
    /// `Keep-Alive: timeout=5`); none when connections are not reused.
    pub(crate) kept_open: Vec<(HeaderName, HeaderValue)>,
    /// `backend.server.maxHeaderSize`: the request line and headers of a request, at most
    /// (Node's default: 16 KiB); more is answered 431.
    pub(crate) max_header_size: usize,
    /// `backend.lifecycle.shutdownGracePeriod`: how long in-flight requests may take to finish
    /// once the server stops accepting. Default 30 s.
    pub(crate) grace_period: Duration,
    /// `backend.https.certificate`: serve TLS.
    pub(crate) tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl ServerSettings {
    fn new(
        server: &ServerSection,
        lifecycle: &LifecycleSection,
        config: &RootConfig,
    ) -> Result<Self> {
        let max_connections = server.max_connections;
        if max_connections == Some(0) {
            return Err(Error::input(
                "backend.server.maxConnections must be at least 1",
            ));
        }
        let max_header_size = server.max_header_size.unwrap_or(DEFAULT_MAX_HEADER_SIZE);
        if max_header_size < MIN_MAX_HEADER_SIZE {
            return Err(Error::input(format!(
                "backend.server.maxHeaderSize must be at least {MIN_MAX_HEADER_SIZE} bytes"
            )));
        }
        let or = |value: Option<HumanDuration>, default: u64| {
            value.map_or(Duration::from_secs(default), Duration::from)
        };
        Ok(ServerSettings {
            headers_timeout: or(server.headers_timeout, 60),
            max_connections,
            keep_alive: server.keep_alive(),
            keep_alive_timeout: server.keep_alive_timeout(),
            kept_open: server.kept_open_headers(),
            max_header_size,
            grace_period: or(lifecycle.shutdown_grace_period, 30),
            tls: tls_config(config)?,
        })
    }
}

fn tls_config(config: &RootConfig) -> Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
    if !config.has("backend.https")
        || config.get_optional::<bool>("backend.https").ok().flatten() == Some(false)
    {
        return Ok(None);
    }
    if config.get_optional::<bool>("backend.https").ok().flatten() == Some(true) {
        return Err(Error::input(
            "backend.https: true asks for a generated certificate, which this backend does not make; give backend.https.certificate.cert and .key (PEM)",
        ));
    }
    let cert: String = config.get("backend.https.certificate.cert")?;
    let key: String = config.get("backend.https.certificate.key")?;
    let certs = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::input(format!(
                "backend.https.certificate.cert is not a PEM certificate: {e}"
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::input(
            "backend.https.certificate.cert holds no PEM certificate",
        ));
    }
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .map_err(|e| {
            Error::input(format!(
                "backend.https.certificate.key is not a PEM private key: {e}"
            ))
        })?
        .ok_or_else(|| Error::input("backend.https.certificate.key holds no PEM private key"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::input(format!(
                "backend.https.certificate does not hold a usable key pair: {e}"
            ))
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

/// How long accepted connections get to deliver their first request once the server stops.
const SETTLE: Duration = Duration::from_millis(150);

/// HTTP/2 keep-alive pings: one after this much silence, and the connection closes when the
/// answer does not come within it (a peer that vanished without a FIN).
const HTTP2_PING: Duration = Duration::from_secs(20);

/// Serves `service` on `listener` until `control` enters [`Phase::Closing`]; then stops
/// accepting, lets in-flight requests finish for at most the grace period, and returns.
async fn serve<S>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    control: Arc<Control>,
) where
    S: tower::Service<Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(settings.headers_timeout)
        .keep_alive(settings.keep_alive)
        .max_buf_size(settings.max_header_size);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_PING)
        .keep_alive_timeout(HTTP2_PING)
        .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX));
    // Each connection gets a timer of its own (see `timer`): the header deadline then costs no
    // timer-wheel work per request.
    let for_connection = move || {
        let mut builder = builder.clone();
        builder
            .http1()
            .timer(super::timer::ConnectionTimer::default());
        builder
    };
    let limits = IdleLimits {
        first_request: settings.headers_timeout,
        between_requests: settings.keep_alive_timeout,
    };
    let limit = settings
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    let acceptor = settings.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut phase = control.watch();
    let stopping = |phase: &watch::Receiver<Phase>| *phase.borrow() >= Phase::Closing;
    // Once the server stops, connections already waiting in the listen queue are still accepted
    // (their clients have connected; closing the listener would reset them), then the listener
    // closes and new connections are refused.
    let mut draining = false;
    loop {
        if !draining && stopping(&phase) {
            draining = true;
        }
        let permit = match &limit {
            Some(limit) if draining => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => break,
            },
            Some(limit) => tokio::select! {
                permit = limit.clone().acquire_owned() => match permit {
                    Ok(permit) => Some(permit),
                    Err(_) => break,
                },
                _ = phase.changed() => continue,
            },
            None => None,
        };
        let accepted = if draining {
            match tokio::time::timeout(Duration::from_millis(5), listener.accept()).await {
                Ok(accepted) => accepted,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                accepted = listener.accept() => accepted,
                _ = phase.changed() => continue,
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new(&control);
        let service = service_for(service.clone(), peer, activity.clone());
        let builder = for_connection();
        match &acceptor {
            None => {
                tokio::spawn(async move {
                    let connection = builder
                        .serve_connection_with_upgrades(
                            TokioIo::new(super::joined_writes::JoinedWrites::new(stream)),
                            service,
                        )
                        .into_owned();
                    connection::drive(connection, activity, limits).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = settings.headers_timeout;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        _ => return,
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .into_owned();
                    connection::drive(connection, activity, limits).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    // Requests already on the wire of freshly accepted connections are read before the
    // connections are told to close, so no client that connected goes unanswered.
    let settle = SETTLE.min(settings.grace_period);
    tokio::time::sleep(settle).await;
    control.enter(Phase::Stopping);
    if tokio::time::timeout(settings.grace_period - settle, control.all_closed())
        .await
        .is_err()
    {
        control.enter(Phase::Aborting);
        tracing::warn!(
            "requests still in flight after the shutdown grace period of {} ms were cut off",
            settings.grace_period.as_millis()
        );
    }
}

/// The service of one connection: the backend's service, told the peer's address, with each
/// request counted in the connection's activity.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl<S> tower::Service<hyper::Request<hyper::body::Incoming>> for WithPeer<S>
where
    S: tower::Service<Request, Response = axum::response::Response>,
    S::Future: Unpin,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let exchange = Exchange::of(request.version(), request.headers());
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.activity.track(self.inner.call(request), exchange)
    }
}

fn service_for<S>(
    service: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> TowerToHyperService<WithPeer<S>>
where
    S: tower::Service<Request>,
{
    TowerToHyperService::new(WithPeer {
        inner: service,
        peer,
        activity,
    })
}
