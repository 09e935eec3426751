//! SQLite reads on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own: a query is sent to that thread and
//! its rows are sent back, two thread switches per query, with every value copied on the way.
//! A read of a local database takes a few microseconds, less than the switches. So
//! [`Database::fetch_all`] and [`Database::fetch_optional`] first try a read here, on a
//! connection of this module, as better-sqlite3 does under Backstage. What this path does not
//! take goes to sqlx's thread as before, where it gets the answer or the error it always got:
//!
//! - what is not one `SELECT`, `WITH` or `VALUES` statement (a `PRAGMA` acts when it is
//!   prepared; a second statement after a `;` would not run here), a statement SQLite does not
//!   call read-only, or one that returns no columns;
//! - parameters other than plain `?` (`?1`, `$1`, `:name` are bound by number or refused by
//!   sqlx), or not as many parameters as there are `?`s;
//! - a locked database: the busy timeout here is zero, a read never waits for a lock;
//! - a read that runs for longer than [`BOUND`]: interrupted, then run again on the thread,
//!   and that SQL goes straight to the thread for the next [`SLOW_FOR`]. SQLite looks at the
//!   clock between its steps: one step that takes long by itself (counting a large table,
//!   making a huge blob) runs to its end first. The clock is the wall's, so a read whose thread
//!   the operating system paused for a few milliseconds counts as long too: that is why the
//!   SQL is tried here again after a while, not sent away for good;
//! - a value that its Rust type does not read natively (an `i64` from `REAL`, a `NULL` into a
//!   type that is not an `Option`, a column whose name matches only when case is ignored):
//!   sqlx reads it as it always did;
//! - any other error (syntax, a missing table).
//!
//! [`Database::fetch_all`]: super::Database::fetch_all
//! [`Database::fetch_optional`]: super::Database::fetch_optional

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;

use super::Param;

/// The longest a read runs on the calling thread before it is handed to sqlx's thread.
///
/// ```
/// assert_eq!(backstage::database::BOUND, std::time::Duration::from_millis(2));
/// ```
pub const BOUND: Duration = Duration::from_millis(2);

/// SQLite's virtual-machine steps between two looks at the clock.
const STEPS_PER_LOOK: i32 = 1000;

/// Statements each connection keeps prepared.
const PREPARED: usize = 64;

/// How many statements that ran longer than [`BOUND`] are remembered, to go straight to sqlx's
/// thread: reads of a handful of large reports, not an unbounded set of SQL texts.
const SLOW_REMEMBERED: usize = 64;

/// How long SQL that ran longer than [`BOUND`] goes straight to sqlx's thread before it is tried
/// here again. A read whose thread was paused (another thread on its CPU, a busy host) is not
/// slow and should not leave this path for long; a read that is slow costs a thread one
/// [`BOUND`] per period when it is tried again.
///
/// ```
/// use backstage::database::{BOUND, SLOW_FOR};
/// // A slow read tried again costs at most this share of a thread's time.
/// assert!(BOUND.as_secs_f64() / SLOW_FOR.as_secs_f64() <= 0.002);
/// ```
pub const SLOW_FOR: Duration = Duration::from_secs(1);

/// Read connections of one plugin's SQLite database, opened on first use and kept; as many as
/// reads ever ran at once.
pub(super) struct Inline {
    filename: PathBuf,
    flags: OpenFlags,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The backend is stopping: connections are closed, none is kept.
    closed: bool,
    idle: Vec<rusqlite::Connection>,
    /// SQL that ran longer than [`BOUND`] here, and until when it goes to sqlx's thread.
    slow: std::collections::HashMap<Box<str>, Instant>,
}

impl Inline {
    /// For the database at sqlx's `url` (a file, or a named in-memory database with a shared
    /// cache, which connections of this module share with sqlx's); `None` for what it cannot
    /// open alike.
    pub(super) fn for_url(url: &str) -> Option<Inline> {
        // `:memory:` is a database per connection options: sqlx names it for its own pool only.
        if url.contains(":memory:") {
            return None;
        }
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().ok()?;
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match param("mode") {
            Some("memory") => {
                flags |= OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_MEMORY
                    | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
            }
            Some("ro") => flags |= OpenFlags::SQLITE_OPEN_READ_ONLY,
            // `rw`, `rwc`: reads only here, and a file that is not there yet is sqlx's to make.
            _ => flags |= OpenFlags::SQLITE_OPEN_READ_WRITE,
        }
        if !flags.contains(OpenFlags::SQLITE_OPEN_SHARED_CACHE) {
            if param("cache") == Some("shared") {
                flags |= OpenFlags::SQLITE_OPEN_SHARED_CACHE;
            } else {
                flags |= OpenFlags::SQLITE_OPEN_PRIVATE_CACHE;
            }
        }
        // An in-memory database without a shared cache is one per connection: nothing here
        // could see what sqlx's connections hold.
        if flags.contains(OpenFlags::SQLITE_OPEN_MEMORY)
            && !flags.contains(OpenFlags::SQLITE_OPEN_SHARED_CACHE)
        {
            return None;
        }
        Some(Inline {
            filename: options.get_filename().to_path_buf(),
            flags,
            state: Mutex::default(),
        })
    }

    /// The rows of `sql` with `params` bound, at most `limit`, read as `T`; `None` when the
    /// read belongs on sqlx's thread (see the module's documentation).
    pub(super) fn read<T: InlineRow>(
        &self,
        sql: &str,
        params: &[Param],
        limit: usize,
    ) -> Option<Vec<T>> {
        let connection = self.take(sql)?;
        let rows = match read(&connection, sql, params, limit) {
            Ok(rows) => rows,
            Err(Slow) => {
                let now = Instant::now();
                let mut state = self.lock();
                if state.slow.len() >= SLOW_REMEMBERED {
                    state.slow.retain(|_, until| *until > now);
                }
                if state.slow.len() < SLOW_REMEMBERED {
                    state.slow.insert(sql.into(), now + SLOW_FOR);
                }
                None
            }
        };
        // A statement that left a transaction open would hold it for the next read: close that
        // connection instead of keeping it.
        if connection.is_autocommit() {
            self.give_back(connection);
        }
        rows
    }

    /// Closes the kept connections and keeps none from now on.
    pub(super) fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    /// A connection for `sql`; `None` when the set is closed or `sql` ran long not long ago.
    fn take(&self, sql: &str) -> Option<rusqlite::Connection> {
        let kept = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            if !state.slow.is_empty()
                && let Some(until) = state.slow.get(sql)
            {
                if Instant::now() < *until {
                    return None;
                }
                state.slow.remove(sql);
            }
            state.idle.pop()
        };
        kept.or_else(|| self.open())
    }

    fn give_back(&self, connection: rusqlite::Connection) {
        let mut state = self.lock();
        if !state.closed {
            state.idle.push(connection);
        }
    }

    fn open(&self) -> Option<rusqlite::Connection> {
        let connection = rusqlite::Connection::open_with_flags(&self.filename, self.flags).ok()?;
        connection.busy_timeout(Duration::ZERO).ok()?;
        connection.set_prepared_statement_cache_capacity(PREPARED);
        Some(connection)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A read that ran longer than [`BOUND`] and was interrupted.
struct Slow;

/// The rows, or `Ok(None)` for a read that belongs on sqlx's thread.
fn read<T: InlineRow>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param],
    limit: usize,
) -> Result<Option<Vec<T>>, Slow> {
    if !one_query(sql) {
        return Ok(None);
    }
    let Ok(mut statement) = connection.prepare_cached(sql) else {
        return Ok(None);
    };
    if !statement.readonly()
        || statement.column_count() == 0
        || statement.parameter_count() != params.len()
        || (1..=params.len()).any(|i| statement.parameter_name(i).is_some())
    {
        return Ok(None);
    }
    for (i, param) in params.iter().enumerate() {
        let index = i + 1;
        let bound = match param {
            Param::Int(v) => statement.raw_bind_parameter(index, v),
            Param::Float(v) => statement.raw_bind_parameter(index, v),
            Param::Bool(v) => statement.raw_bind_parameter(index, v),
            Param::Text(v) => statement.raw_bind_parameter(index, v.as_deref()),
            Param::Bytes(v) => statement.raw_bind_parameter(index, v.as_deref()),
        };
        if bound.is_err() {
            return Ok(None);
        }
    }
    let started = Instant::now();
    connection.progress_handler(STEPS_PER_LOOK, Some(move || started.elapsed() > BOUND));
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while out.len() < limit {
        match rows.next() {
            Ok(Some(row)) => match T::read(&InlineColumns { row }) {
                Some(value) => out.push(value),
                None => return Ok(None),
            },
            Ok(None) => break,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                return Err(Slow);
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Whether `sql` is one statement that starts with `SELECT`, `WITH` or `VALUES` (no comment before
/// it; a `;` only at its end). Anything else is left to sqlx without being prepared here: a
/// `PRAGMA` takes effect when it is prepared, and only the first of several statements would
/// run. A `;` inside quoted text also sends the query to sqlx, which reads it right.
fn one_query(sql: &str) -> bool {
    let sql = sql.trim_start();
    let body = sql.trim_end().trim_end_matches(';');
    let word_end = sql
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(sql.len());
    let word = &sql[..word_end];
    ["select", "with", "values"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
        && !body.contains(';')
}

/// A row type that [`Database::fetch_all`] and its siblings can read on SQLite without a trip to
/// sqlx's connection thread: tuples of [`InlineValue`] types, and structs with
/// `#[derive(PortableRow)]` (which also implements sqlx's `FromRow` for the other engines).
/// Implement it by hand beside a hand-written `sqlx::FromRow`.
///
/// ```
/// use backstage::database::{InlineColumns, InlineRow, PortableRow};
///
/// #[derive(Debug, PortableRow)]
/// struct Item {
///     id: i64,
///     #[sqlx(rename = "title")]
///     name: String,
///     note: Option<String>,
/// }
///
/// /// By hand: what the derive writes for `Item`'s SQLite side.
/// struct Pair(i64, String);
/// impl InlineRow for Pair {
///     fn read(row: &InlineColumns<'_>) -> Option<Self> {
///         Some(Pair(row.get(0)?, row.get(1)?))
///     }
/// }
///
/// fn readable<T: PortableRow>() {}
/// readable::<Item>();
/// readable::<(i64, String, Option<f64>)>();
/// ```
///
/// [`Database::fetch_all`]: super::Database::fetch_all
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read by `Database::fetch_all` and its siblings",
    note = "rows are tuples of i64, String, f64, bool, Vec<u8> (and their Options), or structs with `#[derive(backstage::database::PortableRow)]`"
)]
pub trait InlineRow: Sized {
    /// The row as `Self`, or `None` to leave it to sqlx (which then reads it, or says why not).
    fn read(row: &InlineColumns<'_>) -> Option<Self>;
}

/// The columns of a row that SQLite produced on the calling thread.
pub struct InlineColumns<'a> {
    row: &'a rusqlite::Row<'a>,
}

impl InlineColumns<'_> {
    /// Column `index` (from 0) as `T`; `None` where there is no such column or `T` does not
    /// read its value.
    pub fn get<T: InlineValue>(&self, index: usize) -> Option<T> {
        T::from_value(self.row.get_ref(index).ok()?.into())
    }

    /// The column named `name` (exactly; the last of that name, as sqlx finds columns) as `T`;
    /// `None` where there is no such column or `T` does not read its value.
    pub fn get_named<T: InlineValue>(&self, name: &str) -> Option<T> {
        let statement: &rusqlite::Statement<'_> = self.row.as_ref();
        let index = (0..statement.column_count())
            .rev()
            .find(|&i| statement.column_name(i).is_ok_and(|n| n == name))?;
        self.get(index)
    }
}

/// A value as SQLite stores it: its storage class and its content.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InlineValueRef<'a> {
    /// `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text, as SQLite holds it (UTF-8 unless something stored otherwise).
    Text(&'a [u8]),
    /// A blob.
    Blob(&'a [u8]),
}

impl<'a> From<ValueRef<'a>> for InlineValueRef<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Null => InlineValueRef::Null,
            ValueRef::Integer(v) => InlineValueRef::Integer(v),
            ValueRef::Real(v) => InlineValueRef::Real(v),
            ValueRef::Text(v) => InlineValueRef::Text(v),
            ValueRef::Blob(v) => InlineValueRef::Blob(v),
        }
    }
}

/// A column type read on SQLite's calling thread. It reads only the storage class that is its
/// own (an integer type from `INTEGER`, `f64` from `REAL`, `String` from UTF-8 `TEXT`,
/// `Vec<u8>` from `BLOB`, an `Option` also from `NULL`); any other value leaves the row to
/// sqlx, whose conversions and errors then apply.
///
/// ```
/// use backstage::database::{InlineValue, InlineValueRef};
/// assert_eq!(i64::from_value(InlineValueRef::Integer(7)), Some(7));
/// assert_eq!(i64::from_value(InlineValueRef::Real(7.0)), None);
/// assert_eq!(Option::<String>::from_value(InlineValueRef::Null), Some(None));
/// assert_eq!(bool::from_value(InlineValueRef::Integer(1)), Some(true));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a column type `Database::fetch_all` reads",
    note = "columns are i64, i32, i16, i8, u32, u16, u8, f64, f32, bool, String, Vec<u8> or an Option of one; implement `InlineValue` for a type of your own"
)]
pub trait InlineValue: Sized {
    /// `value` as `Self`, or `None` where this type does not read it natively.
    fn from_value(value: InlineValueRef<'_>) -> Option<Self>;
}

macro_rules! integer_value {
    ($($ty:ty),*) => {$(
        impl InlineValue for $ty {
            fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
                match value {
                    InlineValueRef::Integer(v) => <$ty>::try_from(v).ok(),
                    _ => None,
                }
            }
        }
    )*};
}

integer_value!(i64, i32, i16, i8, u32, u16, u8);

impl InlineValue for bool {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Integer(v) => Some(v != 0),
            _ => None,
        }
    }
}

impl InlineValue for f64 {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Real(v) => Some(v),
            _ => None,
        }
    }
}

impl InlineValue for f32 {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Real(v) => Some(v as f32),
            _ => None,
        }
    }
}

impl InlineValue for String {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Text(v) => std::str::from_utf8(v).ok().map(str::to_owned),
            _ => None,
        }
    }
}

impl InlineValue for Vec<u8> {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Blob(v) => Some(v.to_vec()),
            _ => None,
        }
    }
}

impl<T: InlineValue> InlineValue for Option<T> {
    fn from_value(value: InlineValueRef<'_>) -> Option<Self> {
        match value {
            InlineValueRef::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

macro_rules! tuple_row {
    ($($name:ident $index:tt),+) => {
        impl<$($name: InlineValue),+> InlineRow for ($($name,)+) {
            fn read(row: &InlineColumns<'_>) -> Option<Self> {
                Some(($(row.get::<$name>($index)?,)+))
            }
        }
    };
}

tuple_row!(A 0);
tuple_row!(A 0, B 1);
tuple_row!(A 0, B 1, C 2);
tuple_row!(A 0, B 1, C 2, D 3);
tuple_row!(A 0, B 1, C 2, D 3, E 4);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);

#[cfg(test)]
mod tests {
    use super::*;

    /// A named shared-cache in-memory database, as the backend makes one per plugin, with a
    /// table of `n` rows; the returned connection keeps it alive.
    fn database(name: &str, n: i64) -> (rusqlite::Connection, Inline) {
        let url = format!("sqlite:file:inline-test-{name}?mode=memory&cache=shared");
        let inline = Inline::for_url(&url).expect("a shared in-memory database is readable here");
        let keeper = rusqlite::Connection::open_with_flags(&inline.filename, inline.flags).unwrap();
        keeper
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
            .unwrap();
        for i in 1..=n {
            keeper
                .execute(
                    "INSERT INTO t (id, name, score) VALUES (?1, ?2, ?3)",
                    rusqlite::params![i, format!("n{i}"), i as f64 / 2.0],
                )
                .unwrap();
        }
        (keeper, inline)
    }

    #[test]
    fn a_read_binds_its_parameters_and_reads_its_rows() {
        let (_keeper, inline) = database("read", 5);
        let rows: Vec<(i64, String, Option<f64>)> = inline
            .read(
                "SELECT id, name, score FROM t WHERE id >= ? AND name <> ? ORDER BY id",
                &[2.into(), "n4".into()],
                usize::MAX,
            )
            .unwrap();
        assert_eq!(
            rows,
            [
                (2, "n2".to_owned(), Some(1.0)),
                (3, "n3".to_owned(), Some(1.5)),
                (5, "n5".to_owned(), Some(2.5))
            ]
        );
        let first: Vec<(i64,)> = inline.read("SELECT id FROM t ORDER BY id", &[], 1).unwrap();
        assert_eq!(first, [(1,)]);
        // The connection was kept for the next read.
        assert_eq!(inline.lock().idle.len(), 1);
    }

    /// Reads column `id` by name.
    #[derive(Debug, PartialEq)]
    struct ById(i64);

    impl InlineRow for ById {
        fn read(row: &InlineColumns<'_>) -> Option<Self> {
            Some(ById(row.get_named("id")?))
        }
    }

    #[test]
    fn columns_are_found_by_name_as_sqlx_finds_them() {
        let (_keeper, inline) = database("named", 0);
        // The last of two columns of one name.
        assert_eq!(
            inline.read::<ById>("SELECT 1 AS id, 2 AS id", &[], usize::MAX),
            Some(vec![ById(2)])
        );
        // A name that matches only when case is ignored is sqlx's to judge.
        assert_eq!(inline.read::<ById>("SELECT 1 AS ID", &[], usize::MAX), None);
    }

    #[test]
    fn what_is_not_a_plain_read_is_left_to_sqlx() {
        let (keeper, inline) = database("left", 2);
        let left = |sql: &str, params: &[Param]| inline.read::<(i64,)>(sql, params, usize::MAX);
        // Writes, statements without columns, parameter counts that do not match, errors.
        assert_eq!(
            left("INSERT INTO t (name) VALUES ('x') RETURNING id", &[]),
            None
        );
        assert_eq!(left("BEGIN", &[]), None);
        assert_eq!(left("SELECT id FROM t WHERE id = ?", &[]), None);
        assert_eq!(left("SELECT id FROM nowhere", &[]), None);
        // Values that are not the type's own storage class.
        assert_eq!(left("SELECT score FROM t", &[]), None);
        assert_eq!(left("SELECT NULL", &[]), None);
        assert_eq!(left("SELECT 'text'", &[]), None);
        // More than one statement, pragmas (which act when prepared), numbered or named
        // parameters, a comment first.
        assert_eq!(left("SELECT 1; DELETE FROM t", &[]), None);
        assert_eq!(left("PRAGMA busy_timeout = 3000", &[]), None);
        assert_eq!(left("PRAGMA case_sensitive_like = 1", &[]), None);
        assert_eq!(left("SELECT id FROM t WHERE id = ?1", &[1.into()]), None);
        assert_eq!(left("SELECT id FROM t WHERE id = :id", &[1.into()]), None);
        assert_eq!(left("-- one\nSELECT 1", &[]), None);
        // The PRAGMA was not prepared here: LIKE still ignores case on this connection.
        assert_eq!(
            left("SELECT COUNT(*) FROM t WHERE 'A' LIKE 'a'", &[]),
            Some(vec![(2,)])
        );
        // A trailing `;` and lower case are one query.
        assert_eq!(left("select 1;", &[]), Some(vec![(1,)]));
        // Nothing was written, and reads still work.
        let count: i64 = keeper
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
        assert_eq!(left("SELECT COUNT(*) FROM t", &[]), Some(vec![(2,)]));
    }

    #[test]
    fn a_locked_table_is_left_to_sqlx_without_waiting() {
        let (keeper, inline) = database("locked", 1);
        keeper
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (name) VALUES ('uncommitted')")
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            inline.read::<(i64,)>("SELECT id FROM t", &[], usize::MAX),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        keeper.execute_batch("COMMIT").unwrap();
        assert_eq!(
            inline
                .read::<(i64,)>("SELECT COUNT(*) FROM t", &[], usize::MAX)
                .unwrap(),
            [(2,)]
        );
    }

    #[test]
    fn a_long_read_is_interrupted_and_left_to_sqlx() {
        let (_keeper, inline) = database("long", 1);
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT COUNT(*) FROM c";
        let started = Instant::now();
        assert_eq!(inline.read::<(i64,)>(sql, &[], usize::MAX), None);
        // Interrupted near the bound, not run to its end (seconds), and remembered: the same
        // SQL goes straight to sqlx's thread for a while.
        assert!(started.elapsed() < BOUND * 50, "{:?}", started.elapsed());
        let until = inline.lock().slow[sql];
        assert!(until > Instant::now() && until <= Instant::now() + SLOW_FOR);
        assert_eq!(inline.read::<(i64,)>(sql, &[], usize::MAX), None);
        // Not run here again: run and interrupted, it would be remembered anew, until later.
        assert_eq!(inline.lock().slow[sql], until);
        // The connection is still good.
        assert_eq!(
            inline.read::<(i64,)>("SELECT 1", &[], usize::MAX),
            Some(vec![(1,)])
        );
    }

    #[test]
    fn sql_remembered_as_slow_is_read_here_again_once_its_time_is_up() {
        // A read interrupted because its thread was paused is not slow: it must not leave this
        // path for good.
        let (_keeper, inline) = database("slow-expires", 1);
        let sql = "SELECT 1";
        let later = Instant::now() + SLOW_FOR;
        inline.lock().slow.insert(sql.into(), later);
        assert_eq!(inline.read::<(i64,)>(sql, &[], 1), None);
        inline.lock().slow.insert(sql.into(), Instant::now());
        assert_eq!(inline.read::<(i64,)>(sql, &[], 1), Some(vec![(1,)]));
        assert!(inline.lock().slow.is_empty());
    }

    #[test]
    fn a_full_list_of_slow_sql_makes_room_by_dropping_what_expired() {
        let (_keeper, inline) = database("slow-full", 1);
        {
            let mut state = inline.lock();
            for i in 0..SLOW_REMEMBERED {
                state
                    .slow
                    .insert(format!("SELECT {i}").into(), Instant::now());
            }
        }
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT COUNT(*) FROM c";
        assert_eq!(inline.read::<(i64,)>(sql, &[], usize::MAX), None);
        let state = inline.lock();
        assert_eq!(state.slow.len(), 1);
        assert!(state.slow.contains_key(sql));
    }

    #[test]
    fn a_closed_set_reads_nothing_and_keeps_nothing() {
        let (_keeper, inline) = database("closed", 1);
        assert!(inline.read::<(i64,)>("SELECT 1", &[], 1).is_some());
        inline.close();
        assert!(inline.lock().idle.is_empty());
        assert_eq!(inline.read::<(i64,)>("SELECT 1", &[], 1), None);
    }

    #[test]
    fn a_file_database_is_read_where_sqlx_keeps_it() {
        let dir = std::env::temp_dir().join(format!("inline-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plugin.sqlite");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (7)")
            .unwrap();
        let inline = Inline::for_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
        assert_eq!(
            inline.read::<(i64,)>("SELECT id FROM t", &[], usize::MAX),
            Some(vec![(7,)])
        );
        // The journal sqlx leaves a plugin's file with is a rollback journal: a write that has
        // not begun to commit leaves the last commit readable.
        writer
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (8)")
            .unwrap();
        assert_eq!(
            inline.read::<(i64,)>("SELECT COUNT(*) FROM t", &[], usize::MAX),
            Some(vec![(1,)])
        );
        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(
            inline.read::<(i64,)>("SELECT COUNT(*) FROM t", &[], usize::MAX),
            Some(vec![(2,)])
        );
        // A database locked for writing is left to sqlx, at once.
        writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = Instant::now();
        assert_eq!(
            inline.read::<(i64,)>("SELECT COUNT(*) FROM t", &[], usize::MAX),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        writer.execute_batch("COMMIT").unwrap();
        inline.close();
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_private_in_memory_database_is_not_read_here() {
        assert!(Inline::for_url("sqlite::memory:").is_none());
        assert!(Inline::for_url("sqlite://some/file.sqlite?mode=rwc").is_some());
    }
}
