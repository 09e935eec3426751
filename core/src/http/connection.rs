//! One connection, from accept to close: what it is doing, when it has been idle too long, and
//! how it ends when the server stops.
//!
//! hyper bounds a request's headers once they start arriving (`headersTimeout`), but not the
//! time before the first byte, the HTTP/2 preface and settings exchange, an HTTP/2 header block
//! that never ends, or a keep-alive connection that waits for its next request. Each connection
//! is therefore driven here next to a watchdog with two deadlines:
//!
//! - until its first request reaches the backend: `headersTimeout` from accept (protocol
//!   detection included, for HTTP/1 and HTTP/2 alike);
//! - then, whenever no request is in flight: `keepAliveTimeout` after the last response.
//!
//! A deadline passed means a graceful close (HTTP/1: closed when idle; HTTP/2: GOAWAY), and a
//! connection that still holds no request a second later is dropped. Checking costs one timer
//! per connection, re-armed once per timeout, and two atomic counters per request.
//!
//! The server's stop is staged with [`Phase`]: while the shutdown delay runs (`Draining`),
//! HTTP/1 responses carry `Connection: close` and HTTP/2 connections get GOAWAY, so clients move
//! off the connections before they close and no request is cut; `Closing` closes the listener
//! (connections accepted last get a moment to send their request); `Stopping` closes every
//! connection gracefully; `Aborting` (the grace period is over) drops what is left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::{Notify, watch};

/// How long a connection told to close may take, with no request in flight, before it is
/// dropped (an HTTP/2 peer ignoring GOAWAY, a header block that never ends).
const LINGER: Duration = Duration::from_secs(1);

/// Where the server is in its life; connections read it on every response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Normal service.
    Serving = 0,
    /// The shutdown delay: still serving, moving clients off their connections.
    Draining = 1,
    /// The listener closes; connections just accepted still get to send their request.
    Closing = 2,
    /// Every connection closes once its requests are answered.
    Stopping = 3,
    /// The grace period is over: connections are dropped.
    Aborting = 4,
}

/// The server's phase and its live connections, shared by the accept loop, every connection
/// and the backend that stops it.
pub(crate) struct Control {
    phase: AtomicU8,
    changed: watch::Sender<Phase>,
    live: AtomicUsize,
    all_closed: Notify,
    /// The clock connections measure idleness against.
    epoch: Instant,
    /// What an answer on a connection that stays open says of it (`Connection: keep-alive`,
    /// `Keep-Alive: timeout=5`); empty when connections are not reused.
    kept_open: Vec<(HeaderName, HeaderValue)>,
}

/// The `Keep-Alive` response header (not among `http`'s constants).
pub(crate) static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

impl Control {
    /// `kept_open`: the headers of answers on connections that stay open (see
    /// `ServerSection::kept_open_headers`).
    pub(crate) fn new(kept_open: Vec<(HeaderName, HeaderValue)>) -> Arc<Control> {
        Arc::new(Control {
            phase: AtomicU8::new(Phase::Serving as u8),
            changed: watch::Sender::new(Phase::Serving),
            live: AtomicUsize::new(0),
            all_closed: Notify::new(),
            epoch: Instant::now(),
            kept_open,
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Draining,
            2 => Phase::Closing,
            3 => Phase::Stopping,
            _ => Phase::Aborting,
        }
    }

    /// Moves to `phase` (never back).
    pub(crate) fn enter(&self, phase: Phase) {
        let previous = self.phase.fetch_max(phase as u8, Ordering::AcqRel);
        if previous < phase as u8 {
            self.changed.send_replace(phase);
        }
    }

    pub(crate) fn watch(&self) -> watch::Receiver<Phase> {
        self.changed.subscribe()
    }

    /// Waits until every connection has ended.
    pub(crate) async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The idle limits of connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleLimits {
    /// Until the first request: `backend.server.headersTimeout`.
    pub(crate) first_request: Duration,
    /// Between requests: `backend.server.keepAliveTimeout`.
    pub(crate) between_requests: Duration,
}

/// What one connection is doing, as its service and its watchdog see it.
pub(crate) struct Activity {
    control: Arc<Control>,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// `Control::millis` when the last response was done.
    last_done: AtomicU64,
    http2: AtomicBool,
}

impl Activity {
    /// A newly accepted connection: counted live until this is dropped.
    pub(crate) fn new(control: &Arc<Control>) -> Arc<Activity> {
        control.live.fetch_add(1, Ordering::AcqRel);
        Arc::new(Activity {
            control: control.clone(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        })
    }

    /// A request arrived; `Tracked` ends it.
    pub(crate) fn begin(self: &Arc<Self>, http2: bool) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::AcqRel);
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
    }

    fn end(&self) {
        self.last_done
            .store(self.control.millis(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection will have been idle too long, given what it is doing now; `None`
    /// while a request is in flight.
    fn idle_deadline(&self, accepted: Instant, limits: IdleLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.requests.load(Ordering::Acquire) == 0 {
            return Some(accepted + limits.first_request);
        }
        let done = Duration::from_millis(self.last_done.load(Ordering::Acquire));
        Some(self.control.epoch + done + limits.between_requests)
    }

    /// The future of a request's response, which marks the request done when it completes or
    /// is dropped, closes HTTP/1 connections after their response once the server drains, and
    /// otherwise says in the answer that the connection stays open where the request asked for
    /// that (`Connection: keep-alive`, `Keep-Alive: timeout=5`, as Node's server answers).
    pub(crate) fn track<F>(self: &Arc<Self>, future: F, exchange: Exchange) -> Tracked<F> {
        self.begin(exchange == Exchange::Http2);
        Tracked {
            future,
            activity: self.clone(),
            exchange,
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if self.control.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.control.all_closed.notify_waiters();
        }
    }
}

/// What kind of exchange a request is, for what its answer says of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// HTTP/2: the connection is not the answer's business.
    Http2,
    /// HTTP/1 whose request asked for the connection to close (`Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive`): hyper says so in the answer.
    Closing,
    /// HTTP/1 whose connection may stay open after the answer.
    Reusable,
}

impl Exchange {
    /// The exchange of a request of `version` with `headers`, as hyper decides whether its
    /// connection stays open: HTTP/1.1 unless the request says `Connection: close`, HTTP/1.0
    /// only where it says `Connection: keep-alive`.
    pub(crate) fn of(version: http::Version, headers: &HeaderMap) -> Exchange {
        let says = |token: &str| {
            headers.get_all(CONNECTION).iter().any(|value| {
                value.to_str().is_ok_and(|value| {
                    value
                        .split(',')
                        .any(|part| part.trim().eq_ignore_ascii_case(token))
                })
            })
        };
        match version {
            http::Version::HTTP_2 => Exchange::Http2,
            // Most requests say nothing of the connection: one lookup.
            http::Version::HTTP_11 if !headers.contains_key(CONNECTION) => Exchange::Reusable,
            http::Version::HTTP_11 if !says("close") => Exchange::Reusable,
            http::Version::HTTP_10 if says("keep-alive") && !says("close") => Exchange::Reusable,
            _ => Exchange::Closing,
        }
    }
}

/// A response future whose request counts as in flight until it is done.
pub(crate) struct Tracked<F> {
    future: F,
    activity: Arc<Activity>,
    exchange: Exchange,
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<axum::response::Response, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(Pin::new(&mut self.future).poll(cx));
        let Ok(answer) = &mut response else {
            return Poll::Ready(response);
        };
        let control = &self.activity.control;
        let draining = control.phase() >= Phase::Draining;
        let headers = answer.headers_mut();
        if self.exchange == Exchange::Reusable && !draining {
            match headers.get(CONNECTION) {
                // Most answers carry them already, from the headers they started from.
                Some(value) if value == "keep-alive" => {}
                // The answer's own say (a handler's `Connection: close`): no promise.
                Some(_) => {
                    headers.remove(&KEEP_ALIVE);
                }
                None => {
                    for (name, value) in &control.kept_open {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        } else {
            // A template's headers do not belong on this answer.
            if headers.get(CONNECTION).is_some_and(|v| v == "keep-alive") {
                headers.remove(CONNECTION);
            }
            headers.remove(&KEEP_ALIVE);
            if draining && self.exchange != Exchange::Http2 {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        Poll::Ready(response)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.activity.end();
    }
}

/// Serves `connection` until it ends, closing it when it idles past `limits` or when the
/// server's phase says so.
pub(crate) async fn drive<C>(connection: C, activity: Arc<Activity>, limits: IdleLimits)
where
    C: GracefulConnection,
{
    let accepted = Instant::now();
    let mut phase = activity.control.watch();
    tokio::pin!(connection);
    let mut closing_since: Option<Instant> = None;
    let far = Duration::from_secs(3600);
    loop {
        // A deadline only moves later while nothing happens; a request that ends makes a new
        // one at least `between_requests` away, so looking again that often is enough.
        let now = Instant::now();
        let recheck = now + limits.between_requests.clamp(LINGER, far);
        let wake = match closing_since {
            Some(_) => now + LINGER,
            None => activity
                .idle_deadline(accepted, limits)
                .map_or(recheck, |deadline| deadline.min(recheck)),
        };
        // The watchdog's sleep and phase are looked at only when they wake the task, not on
        // each of the connection's own wake-ups (one or more per request).
        let watchdog = Woken::new(async {
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => None,
                changed = phase.changed() => Some(changed),
            }
        });
        // The watchdog first: it is a flag test until it wakes, and a connection that spends
        // the task's budget on every poll cannot keep it from being seen.
        let event = tokio::select! {
            biased;
            event = watchdog => event,
            _ = connection.as_mut() => return,
        };
        match event {
            // The sleep: an idle deadline, or the end of a close's linger.
            None => {
                let idle = activity.in_flight.load(Ordering::Acquire) == 0;
                match closing_since {
                    Some(since) if idle && since.elapsed() >= LINGER => return,
                    Some(_) => {}
                    None => {
                        if activity
                            .idle_deadline(accepted, limits)
                            .is_some_and(|deadline| deadline <= Instant::now())
                        {
                            connection.as_mut().graceful_shutdown();
                            closing_since = Some(Instant::now());
                        }
                    }
                }
            }
            Some(changed) => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Aborting,
                };
                match now {
                    Phase::Serving | Phase::Closing => {}
                    Phase::Draining => {
                        // HTTP/2 clients move on at GOAWAY; HTTP/1 ones at `Connection: close`.
                        if activity.http2.load(Ordering::Relaxed) && closing_since.is_none() {
                            connection.as_mut().graceful_shutdown();
                            closing_since = Some(Instant::now());
                        }
                    }
                    Phase::Stopping => {
                        if closing_since.is_none() {
                            connection.as_mut().graceful_shutdown();
                            closing_since = Some(Instant::now());
                        }
                    }
                    Phase::Aborting => return,
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A future polled only when it has woken its task (and at its first poll): put next to a
    /// future that wakes the task often, it costs a flag test on each of those wake-ups instead
    /// of a poll. (`tokio::select!` polls every branch on every wake-up.)
    struct Woken<F> {
        #[pin]
        future: F,
        signal: Arc<Signal>,
        waker: std::task::Waker,
    }
}

/// Whether a [`Woken`] future woke, and the task to wake for it.
struct Signal {
    woken: AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> Woken<F> {
    fn new(future: F) -> Self {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true),
            task: futures_util::task::AtomicWaker::new(),
        });
        Woken {
            future,
            waker: std::task::Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for Woken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.signal.task.register(cx.waker());
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.future.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; pending until its waker is used, then ready.
    struct Counted {
        polls: Arc<AtomicUsize>,
        waker: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
        done: Arc<AtomicBool>,
    }

    impl Future for Counted {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.done.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_woken_future_is_polled_only_when_it_woke_the_task() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker = Arc::new(std::sync::Mutex::new(None::<std::task::Waker>));
        let done = Arc::new(AtomicBool::new(false));
        let mut woken = std::pin::pin!(Woken::new(Counted {
            polls: polls.clone(),
            waker: inner_waker.clone(),
            done: done.clone(),
        }));
        let task_wakes = Arc::new(AtomicUsize::new(0));
        struct Task(Arc<AtomicUsize>);
        impl std::task::Wake for Task {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let task = std::task::Waker::from(Arc::new(Task(task_wakes.clone())));
        let mut cx = Context::from_waker(&task);

        // The first poll reaches the future; the task's other wake-ups do not.
        assert!(woken.as_mut().poll(&mut cx).is_pending());
        for _ in 0..5 {
            assert!(woken.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);

        // Its own wake-up wakes the task and gets it polled again.
        done.store(true, Ordering::SeqCst);
        let waker = inner_waker.lock().unwrap().take().unwrap();
        waker.wake();
        assert_eq!(task_wakes.load(Ordering::SeqCst), 1);
        assert!(woken.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
