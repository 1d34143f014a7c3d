//! The store over one database backend, and the unit of work each trait
//! method (in its concern's module) moves its arguments into, to run where
//! the backend runs reads or transactions.

use futures::future::BoxFuture;

use crate::Result;
use crate::sql::{Exec, Work};

/// A store over one database backend (see [`crate::SqliteStore`], [`crate::PgStore`]).
pub struct SqlStore<B> {
    pub(crate) db: B,
}

/// Boxes a closure as a unit of work (and gives the compiler its signature).
pub(crate) fn work<T, F>(f: F) -> Work<T>
where
    F: for<'c> FnOnce(&'c mut dyn Exec) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    Box::new(f)
}
