//! The one surface the repositories use to run SQL, on either backend.
//!
//! Repositories write their statements once, in the SQL both SQLite and
//! PostgreSQL accept (`ON CONFLICT … DO UPDATE`, `RETURNING`, `COALESCE`,
//! `octet_length`, `CAST(… AS BIGINT)`), with SQLite's numbered
//! placeholders `?1`, `?2`. On PostgreSQL the placeholders are rewritten to
//! `$1`, `$2` once per statement text and the prepared statement is kept
//! per connection. The few statements that cannot be written once branch on
//! [`Conn::dialect`].
//!
//! Values cross the boundary as SQLite's five storage classes
//! ([`ValueRef`]): integer, real, text, blob and null. On PostgreSQL an
//! integer is bound to whatever integer, boolean or floating type the
//! server inferred for the parameter, and a column of any of those types
//! reads back as an integer or real, so the repositories keep SQLite's
//! dynamic view of their columns while the PostgreSQL schema keeps its
//! own precise types (`BIGINT`, `BOOLEAN`, `BYTEA`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use tokio_postgres::types::{IsNull, ToSql as PgToSql, Type};

/// Which SQL engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default.
    Sqlite,
    /// A PostgreSQL server (`storage.backend = "postgres"`).
    Postgres,
}

/// What can go wrong running one statement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// SQLite refused the statement or failed running it.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused the statement or the connection failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// `query_row` found no row (see [`Optional::optional`]).
    #[error("query returned no rows")]
    NoRows,
    /// A column did not hold what the repository asked for.
    #[error("column {index}: {message}")]
    Column {
        /// Zero-based column index.
        index: usize,
        /// What was found instead.
        message: String,
    },
    /// A parameter cannot be stored (e.g. an unsigned value above
    /// `i64::MAX`).
    #[error("parameter: {0}")]
    Param(String),
}

impl SqlError {
    /// Whether the statement broke a unique or primary-key constraint
    /// (another writer, on this host or another, stored the same key).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            SqlError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            SqlError::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

/// Results of this module.
pub type SqlResult<T> = std::result::Result<T, SqlError>;

/// Turns "no row" into `None`, like rusqlite's `OptionalExtension`.
pub trait Optional<T> {
    /// `Ok(None)` for [`SqlError::NoRows`], everything else unchanged.
    fn optional(self) -> SqlResult<Option<T>>;
}

impl<T> Optional<T> for SqlResult<T> {
    fn optional(self) -> SqlResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows | SqlError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Values.

/// One value, borrowed: SQLite's storage classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer (booleans are 0 and 1).
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// One value, owned: for parameter lists built at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Value {
        v.clone()
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}

/// Something that can be bound to a placeholder.
pub trait Param {
    /// The value to bind.
    fn value(&self) -> SqlResult<ValueRef<'_>>;
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        match self {
            Some(v) => v.value(),
            None => Ok(ValueRef::Null),
        }
    }
}

impl Param for Value {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        })
    }
}

impl Param for str {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Text(self))
    }
}

impl Param for String {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Text(self))
    }
}

impl Param for [u8] {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl<const N: usize> Param for [u8; N] {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl Param for bool {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Integer(i64::from(*self)))
    }
}

impl Param for f64 {
    fn value(&self) -> SqlResult<ValueRef<'_>> {
        Ok(ValueRef::Real(*self))
    }
}

macro_rules! integer_params {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> SqlResult<ValueRef<'_>> {
                i64::try_from(*self)
                    .map(ValueRef::Integer)
                    .map_err(|_| SqlError::Param(format!("{} exceeds i64::MAX", self)))
            }
        }
    )*};
}

integer_params!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

/// A statement's parameters: `params![a, b]`, an array of one type
/// (`[plugin, key]`), `()` or a run-time list ([`params_from_iter`]).
pub trait Params {
    /// The values, in placeholder order.
    fn values(&self) -> SqlResult<Vec<ValueRef<'_>>>;
}

impl Params for () {
    fn values(&self) -> SqlResult<Vec<ValueRef<'_>>> {
        Ok(Vec::new())
    }
}

impl Params for &[&dyn Param] {
    fn values(&self) -> SqlResult<Vec<ValueRef<'_>>> {
        self.iter().map(|p| p.value()).collect()
    }
}

impl<T: Param, const N: usize> Params for [T; N] {
    fn values(&self) -> SqlResult<Vec<ValueRef<'_>>> {
        self.iter().map(Param::value).collect()
    }
}

/// Parameters collected at run time.
pub struct ParamsFromIter(Vec<Value>);

/// Binds a run-time list of values, in order.
pub fn params_from_iter<I>(values: I) -> ParamsFromIter
where
    I: IntoIterator,
    I::Item: Into<Value>,
{
    ParamsFromIter(values.into_iter().map(Into::into).collect())
}

impl Params for ParamsFromIter {
    fn values(&self) -> SqlResult<Vec<ValueRef<'_>>> {
        self.0.iter().map(Param::value).collect()
    }
}

/// `params![a, b, c]`: a statement's parameters of mixed types.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::sql::Param]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::sql::Param),+] as &[&dyn $crate::sql::Param]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as L};
        Ok(ToSqlOutput::Borrowed(match *self {
            ValueRef::Null => L::Null,
            ValueRef::Integer(i) => L::Integer(i),
            ValueRef::Real(f) => L::Real(f),
            ValueRef::Text(s) => L::Text(s.as_bytes()),
            ValueRef::Blob(b) => L::Blob(b),
        }))
    }
}

/// Binds a value to whatever type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct PgArg<'a>(ValueRef<'a>);

type BoxError = Box<dyn StdError + Sync + Send>;

impl PgToSql for PgArg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match (self.0, ty) {
            (ValueRef::Null, _) => Ok(IsNull::Yes),
            (ValueRef::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::INT4) => i32::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::INT2) => i16::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::BOOL) => (i != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (ValueRef::Integer(i), &Type::FLOAT8) => (i as f64).to_sql(ty, out),
            (ValueRef::Integer(i), t) if is_text(t) => i.to_string().as_str().to_sql(ty, out),
            (ValueRef::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (ValueRef::Real(f), &Type::FLOAT4) => (f as f32).to_sql(ty, out),
            (ValueRef::Text(s), t) if is_text(t) => s.to_sql(ty, out),
            (ValueRef::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            (v, t) => Err(format!("cannot bind {v:?} to a parameter of type {t}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn is_text(t: &Type) -> bool {
    matches!(
        *t,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON
    )
}

/// Reads a column as one of the five storage classes.
pub trait FromValue: Sized {
    /// Converts, or says what was found instead.
    fn from_value(v: ValueRef<'_>) -> Result<Self, String>;
}

fn wrong(v: ValueRef<'_>, want: &str) -> String {
    format!("expected {want}, found {v:?}")
}

impl FromValue for i64 {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            v => Err(wrong(v, "an integer")),
        }
    }
}

macro_rules! integer_columns {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}

integer_columns!(i32, u8, u16, u32, u64, usize);

impl FromValue for bool {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            #[allow(clippy::cast_precision_loss)]
            ValueRef::Integer(i) => Ok(i as f64),
            v => Err(wrong(v, "a number")),
        }
    }
}

impl FromValue for String {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            v => Err(wrong(v, "text")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            // SQLite keeps whatever was stored; text bound where bytes
            // were meant still reads as its bytes.
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            v => Err(wrong(v, "bytes")),
        }
    }
}

impl<const N: usize> FromValue for [u8; N] {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Blob(b) => {
                <[u8; N]>::try_from(b).map_err(|_| format!("expected {N} bytes, found {}", b.len()))
            }
            v => Err(wrong(v, "bytes")),
        }
    }
}

impl FromValue for Value {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

// ---------------------------------------------------------------------------
// Rows.

/// One result row.
pub struct Row<'a>(RowInner<'a>);

enum RowInner<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// How many columns the row has.
    pub fn column_count(&self) -> usize {
        match &self.0 {
            RowInner::Lite(row) => row.as_ref().column_count(),
            RowInner::Pg(row) => row.len(),
        }
    }

    /// Column `index` (zero-based), converted to `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> SqlResult<T> {
        let column = |message| SqlError::Column { index, message };
        match &self.0 {
            RowInner::Lite(row) => {
                let v = row.get_ref(index)?;
                let v = match v {
                    rusqlite::types::ValueRef::Null => ValueRef::Null,
                    rusqlite::types::ValueRef::Integer(i) => ValueRef::Integer(i),
                    rusqlite::types::ValueRef::Real(f) => ValueRef::Real(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        ValueRef::Text(std::str::from_utf8(t).map_err(|e| column(e.to_string()))?)
                    }
                    rusqlite::types::ValueRef::Blob(b) => ValueRef::Blob(b),
                };
                T::from_value(v).map_err(column)
            }
            RowInner::Pg(row) => {
                let v = pg_value(row, index).map_err(column)?;
                T::from_value(v).map_err(column)
            }
        }
    }
}

fn pg_value(row: &tokio_postgres::Row, index: usize) -> Result<ValueRef<'_>, String> {
    let Some(col) = row.columns().get(index) else {
        return Err(format!("no such column ({} in the row)", row.len()));
    };
    let ty = col.type_().clone();
    let e = |e: tokio_postgres::Error| e.to_string();
    let v = match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(e)?
            .map(ValueRef::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(e)?
            .map(|i| ValueRef::Integer(i.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(e)?
            .map(|i| ValueRef::Integer(i.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(e)?
            .map(|b| ValueRef::Integer(b.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map_err(e)?
            .map(ValueRef::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map_err(e)?
            .map(|f| ValueRef::Real(f.into())),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(index)
            .map_err(e)?
            .map(ValueRef::Blob),
        ref t if is_text(t) => row
            .try_get::<_, Option<&str>>(index)
            .map_err(e)?
            .map(ValueRef::Text),
        t => {
            return Err(format!(
                "column {:?} has type {t}, which the repositories do not read \
                 (cast it in the statement)",
                col.name()
            ))
        }
    };
    Ok(v.unwrap_or(ValueRef::Null))
}

/// Rows of a query, read one at a time.
pub struct Rows<'s>(RowsInner<'s>);

enum RowsInner<'s> {
    Lite(rusqlite::Rows<'s>),
    Pg {
        rows: std::vec::IntoIter<tokio_postgres::Row>,
        current: Option<tokio_postgres::Row>,
    },
}

impl Rows<'_> {
    /// The next row, or `None` after the last.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> SqlResult<Option<Row<'_>>> {
        match &mut self.0 {
            RowsInner::Lite(rows) => Ok(rows.next()?.map(|r| Row(RowInner::Lite(r)))),
            RowsInner::Pg { rows, current } => {
                *current = rows.next();
                Ok(current.as_ref().map(|r| Row(RowInner::Pg(r))))
            }
        }
    }
}

/// Rows of a query, each mapped by a closure.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    map: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> SqlResult<T>,
{
    type Item = SqlResult<T>;

    fn next(&mut self) -> Option<SqlResult<T>> {
        match self.rows.next() {
            Ok(Some(row)) => Some((self.map)(&row)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

// ---------------------------------------------------------------------------
// Connections and statements.

/// A PostgreSQL connection as the storage layer holds it: used from one
/// thread at a time, its prepared statements kept by statement text.
pub struct PgConn {
    client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
}

impl PgConn {
    pub(crate) fn new(client: tokio_postgres::Client) -> PgConn {
        PgConn {
            client,
            statements: RefCell::new(HashMap::new()),
        }
    }

    /// Whether the server closed the connection (it is then replaced).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn prepare(&self, sql: &str) -> SqlResult<tokio_postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = block_on(self.client.prepare(&postgres_placeholders(sql)))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub(crate) fn batch(&self, sql: &str) -> SqlResult<()> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }

    fn query(
        &self,
        stmt: &tokio_postgres::Statement,
        values: &[ValueRef<'_>],
    ) -> SqlResult<Vec<tokio_postgres::Row>> {
        let args: Vec<PgArg<'_>> = values.iter().map(|v| PgArg(*v)).collect();
        let refs: Vec<&(dyn PgToSql + Sync)> =
            args.iter().map(|a| a as &(dyn PgToSql + Sync)).collect();
        Ok(block_on(self.client.query(stmt, &refs))?)
    }

    fn execute(
        &self,
        stmt: &tokio_postgres::Statement,
        values: &[ValueRef<'_>],
    ) -> SqlResult<usize> {
        let args: Vec<PgArg<'_>> = values.iter().map(|v| PgArg(*v)).collect();
        let refs: Vec<&(dyn PgToSql + Sync)> =
            args.iter().map(|a| a as &(dyn PgToSql + Sync)).collect();
        let n = block_on(self.client.execute(stmt, &refs))?;
        usize::try_from(n).map_err(|_| SqlError::Param(format!("{n} rows")))
    }
}

/// Parameters of the statements that only PostgreSQL runs, bound as
/// PostgreSQL types (arrays included) rather than SQLite's five classes.
pub(crate) type PgParams<'a> = [&'a (dyn PgToSql + Sync)];

impl PgConn {
    /// Runs a PostgreSQL-only statement (e.g. a multi-row `INSERT … SELECT
    /// FROM unnest($1::text[], …)`: a batch's rows of one table in one
    /// round trip, one statement text whatever the batch's size); returns
    /// the rows it changed.
    pub(crate) fn execute_pg(&self, sql: &str, params: &PgParams<'_>) -> SqlResult<u64> {
        let stmt = self.prepare(sql)?;
        Ok(block_on(self.client.execute(&stmt, params))?)
    }

    /// [`execute_pg`](Self::execute_pg) for a statement that returns rows.
    pub(crate) fn query_pg(
        &self,
        sql: &str,
        params: &PgParams<'_>,
    ) -> SqlResult<Vec<tokio_postgres::Row>> {
        let stmt = self.prepare(sql)?;
        Ok(block_on(self.client.query(&stmt, params))?)
    }
}

/// Waits for a PostgreSQL future on the calling thread. The connections'
/// sockets are driven by the storage layer's own I/O runtime
/// ([`crate::pg`]), so the client futures only wait on channels and can be
/// waited for from any thread, a Tokio worker included, exactly as an
/// SQLite call blocks it.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// Rewrites SQLite's placeholders (`?1`, or `?` numbered in order) as
/// PostgreSQL's (`$1`), leaving string literals and quoted names alone.
pub(crate) fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    highest + 1
                } else {
                    digits.parse().unwrap_or(highest + 1)
                };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A connection, on either backend, as the repositories see it.
#[derive(Clone, Copy)]
pub enum Conn<'c> {
    /// SQLite.
    Lite(&'c rusqlite::Connection),
    /// PostgreSQL.
    Pg(&'c PgConn),
}

impl<'c> Conn<'c> {
    /// Which SQL this connection speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Lite(_) => Dialect::Sqlite,
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    /// The PostgreSQL connection underneath, for the statements only it
    /// runs.
    pub(crate) fn pg(&self) -> Option<&'c PgConn> {
        match self {
            Conn::Lite(_) => None,
            Conn::Pg(c) => Some(c),
        }
    }

    /// The SQLite connection underneath, for tests that check SQLite's
    /// own settings.
    #[cfg(test)]
    pub(crate) fn lite(&self) -> &'c rusqlite::Connection {
        match self {
            Conn::Lite(c) => c,
            Conn::Pg(_) => panic!("not an SQLite connection"),
        }
    }

    /// Prepares `sql` (kept by the connection for its next use).
    pub fn prepare_cached(&self, sql: &str) -> SqlResult<Stmt<'c>> {
        Ok(Stmt(match *self {
            Conn::Lite(c) => StmtInner::Lite(c.prepare_cached(sql)?),
            Conn::Pg(c) => StmtInner::Pg(c, c.prepare(sql)?),
        }))
    }

    /// Same as [`prepare_cached`](Self::prepare_cached).
    pub fn prepare(&self, sql: &str) -> SqlResult<Stmt<'c>> {
        self.prepare_cached(sql)
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> SqlResult<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs one statement and maps its first row; [`SqlError::NoRows`]
    /// when there is none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> SqlResult<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> SqlResult<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs an `INSERT` and returns the id the database gave the row in
    /// column `id` (`None` when `ON CONFLICT … DO NOTHING` inserted
    /// nothing). SQLite reads the connection's last row id: `RETURNING`
    /// makes it open a statement journal for the insert, a tenth of an
    /// upload's writer time; PostgreSQL appends `RETURNING id`.
    pub fn insert_id<P: Params>(&self, sql: &str, id: &str, params: P) -> SqlResult<Option<i64>> {
        match self {
            Conn::Lite(c) => {
                let n = self.execute(sql, params)?;
                Ok((n > 0).then(|| c.last_insert_rowid()))
            }
            Conn::Pg(_) => self
                .query_row(&format!("{sql} RETURNING {id}"), params, |r| r.get(0))
                .optional(),
        }
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => c.batch(sql),
        }
    }
}

/// A prepared statement.
pub struct Stmt<'c>(StmtInner<'c>);

enum StmtInner<'c> {
    Lite(rusqlite::CachedStatement<'c>),
    Pg(&'c PgConn, tokio_postgres::Statement),
}

impl Stmt<'_> {
    /// Runs it; returns the rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> SqlResult<usize> {
        let values = params.values()?;
        match &mut self.0 {
            StmtInner::Lite(s) => Ok(s.execute(rusqlite::params_from_iter(values.iter()))?),
            StmtInner::Pg(c, s) => c.execute(s, &values),
        }
    }

    /// Runs it and reads the rows.
    pub fn query<P: Params>(&mut self, params: P) -> SqlResult<Rows<'_>> {
        let values = params.values()?;
        Ok(Rows(match &mut self.0 {
            StmtInner::Lite(s) => {
                RowsInner::Lite(s.query(rusqlite::params_from_iter(values.iter()))?)
            }
            StmtInner::Pg(c, s) => RowsInner::Pg {
                rows: c.query(s, &values)?.into_iter(),
                current: None,
            },
        }))
    }

    /// Runs it and maps each row.
    pub fn query_map<T, P, F>(&mut self, params: P, f: F) -> SqlResult<MappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> SqlResult<T>,
    {
        Ok(MappedRows {
            rows: self.query(params)?,
            map: f,
        })
    }

    /// Runs it and maps the first row; [`SqlError::NoRows`] when there is
    /// none.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> SqlResult<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> SqlResult<T>,
    {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(row) => f(&row),
            None => Err(SqlError::NoRows),
        }
    }

    /// Whether it returns at least one row.
    pub fn exists<P: Params>(&mut self, params: P) -> SqlResult<bool> {
        Ok(self.query(params)?.next()?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_like_sqlite_numbers_them() {
        assert_eq!(
            postgres_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        assert_eq!(
            postgres_placeholders("INSERT INTO t VALUES (?, ?, ?)"),
            "INSERT INTO t VALUES ($1, $2, $3)"
        );
        // After ?3 a bare ? is the fourth, as in SQLite.
        assert_eq!(postgres_placeholders("?3, ?"), "$3, $4");
    }

    #[test]
    fn placeholders_inside_literals_are_left_alone() {
        assert_eq!(
            postgres_placeholders("SELECT '?1', \"a?\" FROM t WHERE x = ?1"),
            "SELECT '?1', \"a?\" FROM t WHERE x = $1"
        );
        assert_eq!(
            postgres_placeholders("SELECT 'it''s ?' WHERE y = ?"),
            "SELECT 'it''s ?' WHERE y = $1"
        );
    }

    #[test]
    fn sqlite_values_round_trip_through_the_neutral_types() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let c = Conn::Lite(&conn);
        c.execute_batch("CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
            .unwrap();
        let bytes = [1u8, 2, 3];
        c.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
            params![42u32, 1.5f64, "text", bytes, None::<String>],
        )
        .unwrap();
        let row = c
            .query_row("SELECT i, r, s, b, n FROM t", (), |r| {
                Ok((
                    r.get::<u32>(0)?,
                    r.get::<f64>(1)?,
                    r.get::<String>(2)?,
                    r.get::<[u8; 3]>(3)?,
                    r.get::<Option<String>>(4)?,
                ))
            })
            .unwrap();
        assert_eq!(row, (42, 1.5, "text".to_string(), bytes, None));
        let missing = c
            .query_row("SELECT i FROM t WHERE i = 7", (), |r| r.get::<i64>(0))
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        let err = c
            .query_row("SELECT s FROM t", (), |r| r.get::<i64>(0))
            .unwrap_err();
        assert!(err.to_string().contains("column 0"), "{err}");
        assert!(u64::MAX.value().is_err());
    }

    #[test]
    fn a_unique_violation_is_recognised() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let c = Conn::Lite(&conn);
        c.execute_batch("CREATE TABLE u(k TEXT PRIMARY KEY)")
            .unwrap();
        c.execute("INSERT INTO u VALUES (?1)", ["a"]).unwrap();
        let err = c.execute("INSERT INTO u VALUES (?1)", ["a"]).unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
    }
}
