//! The seam between the shared store code and a database driver: statements
//! go in as text with `$n` placeholders and borrowed arguments, rows come
//! out as owned values read by column name. A backend implements [`Exec`]
//! (run one statement) and [`Backend`] (where reads and transactions run).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{Change, Result, StoreError};

/// One statement argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(bool),
    /// A list of strings, matched with `= ANY($n)` (`NULL` when `None`).
    List(Option<&'a [String]>),
}

/// `From` conversions into [`Arg`]: `$variant($wrap)` for each source type.
macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl<'a> From<$t> for Arg<'a> {
            fn from($v: $t) -> Self {
                $e
            }
        }
    )*};
}

arg_from! {
    &'a str => |v| Arg::Text(Some(v));
    &'a String => |v| Arg::Text(Some(v));
    Option<&'a str> => |v| Arg::Text(v);
    &'a Option<String> => |v| Arg::Text(v.as_deref());
    i64 => |v| Arg::Int(Some(v));
    u32 => |v| Arg::Int(Some(i64::from(v)));
    Option<i64> => |v| Arg::Int(v);
    Option<f64> => |v| Arg::Real(v);
    bool => |v| Arg::Bool(v);
    &'a [String] => |v| Arg::List(Some(v));
    &'a Vec<String> => |v| Arg::List(Some(v));
    &'a Option<Vec<String>> => |v| Arg::List(v.as_deref());
}

/// Statement arguments from a list of values.
#[macro_export]
#[doc(hidden)]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::sql::Arg::from($v)),*] };
}

/// A column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

/// One result row: values by column name.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    vals: Vec<Val>,
}

impl Row {
    /// A row of these columns (the names shared by every row of a result).
    pub fn new(names: Arc<[String]>, vals: Vec<Val>) -> Self {
        Self { names, vals }
    }

    fn val(&self, col: &str) -> Result<&Val> {
        self.names
            .iter()
            .position(|n| n == col)
            .and_then(|i| self.vals.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("{col}: no such column")))
    }

    /// The column's value as `T`.
    pub fn get<T: FromVal>(&self, col: &str) -> Result<T> {
        T::from_val(self.val(col)?).ok_or_else(|| StoreError::Corrupt(format!("{col}: unexpected {:?}", self.val(col))))
    }

    /// The column's JSON text, parsed.
    pub fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s: String = self.get(col)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }

    /// The column's JSON text, parsed, or `None` when it is NULL.
    pub fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        let s: Option<String> = self.get(col)?;
        s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))).transpose()
    }
}

/// A Rust value readable from a column.
pub trait FromVal: Sized {
    fn from_val(v: &Val) -> Option<Self>;
}

impl FromVal for String {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromVal for i64 {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromVal for u32 {
    fn from_val(v: &Val) -> Option<Self> {
        i64::from_val(v).and_then(|i| u32::try_from(i).ok())
    }
}
impl FromVal for f64 {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Real(f) => Some(*f),
            Val::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Null => Some(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// Runs statements on one connection or transaction of a backend.
#[async_trait::async_trait]
pub trait Exec: Send {
    /// Runs a statement and returns its rows.
    async fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>>;

    /// Runs a statement and returns how many rows it changed.
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64>;

    /// Runs several statements without arguments (migrations, transaction control).
    async fn batch(&mut self, sql: &'static str) -> Result<()>;

    /// Tells other nodes about an append, when the database can (PostgreSQL NOTIFY).
    async fn notify(&mut self, _change: &Change) -> Result<()> {
        Ok(())
    }

    /// [`Exec::notify`] for many appends at once (a tree cancelled whole).
    async fn notify_all(&mut self, changes: &[Change]) -> Result<()> {
        for c in changes {
            self.notify(c).await?;
        }
        Ok(())
    }

    /// Holds a lock named `key` until the transaction ends, so a count and
    /// the insert it allows are one step across nodes. A no-op where writes
    /// are serialised anyway (SQLite's single writer).
    async fn lock(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// The first row, if any.
    async fn query_opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, args).await?.into_iter().next())
    }
}

/// Work done with a connection: boxed so each backend can run it where it wants.
pub type Work<T> = Box<dyn for<'c> FnOnce(&'c mut dyn Exec) -> BoxFuture<'c, Result<T>> + Send>;

/// Where a backend runs reads and transactions.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs `w` outside a transaction (each statement sees committed data).
    async fn read<T: Send + 'static>(&self, w: Work<T>) -> Result<T>;

    /// Runs `w` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    async fn write<T: Send + 'static>(&self, w: Work<T>) -> Result<T>;

    /// Appends made anywhere, when the database can tell.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
