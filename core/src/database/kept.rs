//! SQLite connections kept between the queries of [`Database::fetch_all`] and its siblings.
//! sqlx tests every connection that goes back to its pool (a `ping`). On SQLite that is a round
//! trip to the connection's own thread which can find nothing wrong (a local database does not
//! drop its connections), and it doubles the thread switches of a short read: on one CPU, four
//! per query instead of two. So a query that finishes hands its connection back here instead;
//! one that fails or is cut short lets it go back to the pool, through sqlx's test. At most
//! all but one of the pool's connections are kept, so that whoever uses the pool itself
//! (`Database::sqlite`) always finds one to wait for; and a connection kept unused for longer
//! than the pool's idle timeout goes back to the pool at the next query, to be closed there.
//!
//! [`Database::fetch_all`]: super::Database::fetch_all

use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};

/// The connections kept for the next queries: as many as were ever in use at once, fewer than
/// the pool's maximum.
#[derive(Default)]
pub(super) struct Kept {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The pool is closing: nothing is kept any more.
    closed: bool,
    /// Oldest first, each with when it was kept.
    idle: Vec<(PoolConnection<Sqlite>, Instant)>,
}

impl Kept {
    /// A connection for one query: the last one kept, else one from `pool`. Kept connections
    /// idle for longer than the pool's idle timeout are handed back to the pool first.
    pub(super) async fn take(self: &Arc<Self>, pool: &SqlitePool) -> sqlx::Result<KeptConnection> {
        let (kept, stale) = {
            let mut state = self.lock();
            let stale = match pool.options().get_idle_timeout() {
                Some(timeout) if !state.idle.is_empty() => {
                    let now = Instant::now();
                    let fresh = state
                        .idle
                        .iter()
                        .position(|(_, since)| now.duration_since(*since) <= timeout)
                        .unwrap_or(state.idle.len());
                    state.idle.drain(..fresh).collect()
                }
                _ => Vec::new(),
            };
            (state.idle.pop(), stale)
        };
        drop(stale);
        let connection = match kept {
            Some((connection, _)) => connection,
            None => pool.acquire().await?,
        };
        Ok(KeptConnection {
            connection: Some(connection),
            home: self.clone(),
            most: pool.options().get_max_connections().saturating_sub(1) as usize,
            finished: false,
        })
    }

    /// Lets every kept connection go back to its pool and keeps none from now on: before the
    /// pool closes, which waits for all of its connections.
    pub(super) fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.lock().idle.len()
    }
}

/// A connection out for one query.
pub(super) struct KeptConnection {
    /// `Some` until dropped.
    connection: Option<PoolConnection<Sqlite>>,
    home: Arc<Kept>,
    /// How many connections may be kept: one fewer than the pool's maximum.
    most: usize,
    finished: bool,
}

impl KeptConnection {
    pub(super) fn connection(&mut self) -> &mut SqliteConnection {
        self.connection
            .as_deref_mut()
            .expect("a kept connection is there until it is dropped")
    }

    /// The query finished: the connection is kept for the next one.
    pub(super) fn finished(&mut self) {
        self.finished = true;
    }
}

impl Drop for KeptConnection {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if !self.finished {
            // Back to the pool, which tests it.
            return;
        }
        let mut state = self.home.lock();
        let returned = if state.closed || state.idle.len() >= self.most {
            Some(connection)
        } else {
            state.idle.push((connection, Instant::now()));
            None
        };
        drop(state);
        drop(returned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    async fn pool() -> SqlitePool {
        pool_of(3).await
    }

    async fn pool_of(max: u32) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(max)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_finished_query_keeps_its_connection_and_a_failed_one_gives_it_back() {
        let pool = pool().await;
        let kept = Arc::new(Kept::default());
        let mut first = kept.take(&pool).await.unwrap();
        let one: (i64,) = sqlx::query_as("SELECT 1")
            .fetch_one(first.connection())
            .await
            .unwrap();
        assert_eq!(one.0, 1);
        first.finished();
        drop(first);
        assert_eq!(kept.idle(), 1);
        assert_eq!(pool.size(), 1);
        // The same connection again, not a second one.
        let mut again = kept.take(&pool).await.unwrap();
        assert_eq!(kept.idle(), 0);
        assert!(
            sqlx::query("SELECT nonsense FROM nowhere")
                .execute(again.connection())
                .await
                .is_err()
        );
        drop(again);
        assert_eq!(kept.idle(), 0, "a query that did not finish keeps nothing");
        // Returned to the pool (tested there first, on a task of its own), which keeps it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pool.num_idle() != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "never back in the pool"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(pool.size(), 1);
    }

    #[tokio::test]
    async fn queries_at_once_each_have_a_connection_and_all_are_kept() {
        let pool = pool().await;
        let kept = Arc::new(Kept::default());
        let mut a = kept.take(&pool).await.unwrap();
        let mut b = kept.take(&pool).await.unwrap();
        assert_eq!(pool.size(), 2);
        a.finished();
        b.finished();
        drop((a, b));
        assert_eq!(kept.idle(), 2);
    }

    #[tokio::test]
    async fn the_pools_last_connection_is_never_kept() {
        let pool = pool().await;
        let kept = Arc::new(Kept::default());
        let mut taken = Vec::new();
        for _ in 0..3 {
            let mut connection = kept.take(&pool).await.unwrap();
            connection.finished();
            taken.push(connection);
        }
        drop(taken);
        assert_eq!(kept.idle(), 2, "two of three kept");
        let pool = pool_of(1).await;
        let mut only = kept_of(&pool).await;
        only.finished();
        drop(only);
        // Back in the pool, for whoever uses the pool itself.
        tokio::time::timeout(std::time::Duration::from_secs(5), pool.acquire())
            .await
            .expect("the pool's only connection is back")
            .unwrap();
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_pools_idle_timeout_goes_back_to_the_pool() {
        let pool = SqlitePoolOptions::new()
            .max_connections(3)
            .idle_timeout(std::time::Duration::from_millis(50))
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let kept = Arc::new(Kept::default());
        let mut first = kept.take(&pool).await.unwrap();
        first.finished();
        drop(first);
        assert_eq!(kept.idle(), 1);
        // Within the timeout it is taken again.
        let mut again = kept.take(&pool).await.unwrap();
        assert_eq!(kept.idle(), 0);
        again.finished();
        drop(again);
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        let mut late = kept.take(&pool).await.unwrap();
        // Handed back rather than taken: `late` is a new connection of the pool's, beside it.
        assert_eq!(kept.idle(), 0);
        assert_eq!(pool.size(), 2);
        late.finished();
        drop(late);
        assert_eq!(kept.idle(), 1);
    }

    async fn kept_of(pool: &SqlitePool) -> KeptConnection {
        Arc::new(Kept::default()).take(pool).await.unwrap()
    }

    #[tokio::test]
    async fn closing_lets_every_connection_go_and_the_pool_closes() {
        let pool = pool().await;
        let kept = Arc::new(Kept::default());
        let mut idle = kept.take(&pool).await.unwrap();
        idle.finished();
        drop(idle);
        let mut busy = kept.take(&pool).await.unwrap();
        kept.close();
        // A query that finishes after the close is not kept either.
        busy.finished();
        drop(busy);
        assert_eq!(kept.idle(), 0);
        tokio::time::timeout(std::time::Duration::from_secs(5), pool.close())
            .await
            .expect("the pool closes: no connection is held back");
    }
}
