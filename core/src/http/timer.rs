//! hyper's timer for one connection, with a header-read deadline that costs no timer-wheel work
//! per request.
//!
//! hyper arms `backend.server.headersTimeout` afresh for every request it reads: a boxed tokio
//! `Sleep` registered in the runtime's timer wheel and removed again when the headers arrive,
//! two trips through the time driver's lock per request on a keep-alive connection. Here each
//! connection keeps one tokio `Sleep`; a new deadline only moves a number, and the `Sleep` is
//! re-armed when it fires early (about once per timeout per connection) or when a deadline
//! moves earlier. The semantics are hyper's: a connection whose headers do not arrive within the
//! timeout is closed at that deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// One connection's timer. Make one per connection.
#[derive(Clone, Default)]
pub(crate) struct ConnectionTimer {
    armed: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl ConnectionTimer {
    fn sleep_at(&self, deadline: Instant) -> ConnectionSleep {
        ConnectionSleep {
            armed: self.armed.clone(),
            deadline,
        }
    }
}

impl Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.sleep_at(self.now() + duration))
    }

    /// Tokio's clock, so that deadlines and the `Sleep` agree (also under paused test time).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.sleep_at(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<ConnectionSleep>() {
            Some(mut ours) => ours.deadline = new_deadline,
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A deadline on the connection's shared `Sleep`.
pub(crate) struct ConnectionSleep {
    armed: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
    deadline: Instant,
}

impl Future for ConnectionSleep {
    type Output = ();

    /// Reads no clock: the shared `Sleep` says when a deadline has passed. One that fires at
    /// or after this deadline means this one is due; one armed for an earlier deadline of the
    /// connection is moved to this one and waited on.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let sleep = armed.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        while sleep.as_mut().poll(cx).is_ready() {
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            // Fired for an earlier deadline of this connection: wait on for this one.
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl Sleep for ConnectionSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, with margins wide enough for a loaded machine: paused time would need tokio's
    // `test-util`, a feature that would make every user's build of the stack differ from this
    // workspace's test build (and cargo build it twice).

    #[tokio::test]
    async fn a_later_deadline_waits_past_the_armed_one() {
        let timer = ConnectionTimer::default();
        let start = std::time::Instant::now();
        // The first deadline arms the shared sleep at +100 ms; it is dropped (headers arrived).
        let first = timer.sleep(Duration::from_millis(100));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut first = first;
        assert!(first.as_mut().poll(&mut cx).is_pending());
        drop(first);
        // The next request's deadline is +2 s: it must not fire when the armed +100 ms passes.
        let mut second = timer.sleep(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(second.as_mut().poll(&mut cx).is_pending());
        second.await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test]
    async fn reset_moves_the_deadline_both_ways() {
        let timer = ConnectionTimer::default();
        let start = std::time::Instant::now();
        let mut sleep = timer.sleep(Duration::from_secs(30));
        let waker = std::task::Waker::noop();
        assert!(
            sleep
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        timer.reset(&mut sleep, timer.now() + Duration::from_millis(200));
        sleep.await;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(30),
            "{elapsed:?}"
        );
    }
}
