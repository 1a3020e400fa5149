//! Reading a fetched row, whichever the dialect: the shared decoding (aggregates,
//! rejected events) asks a row for typed columns and never panics on what it finds.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::store::parse_amount;

/// Why a stored row could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A column is missing or of another type than the store writes.
    Database(sqlx::Error),
    /// A summed amount is not a decimal integer within i128: an operator must look.
    Corrupt(String),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        ReadError::Database(e)
    }
}

/// A fetched row's columns by position, typed as both dialects store them.
pub(crate) trait ReadRow {
    /// A text column.
    fn text(&self, ix: usize) -> Result<&str, sqlx::Error>;
    /// A text column that may be NULL.
    fn opt_text(&self, ix: usize) -> Result<Option<&str>, sqlx::Error>;
    /// A 32-bit integer column (a day, a fiscal year).
    fn int4(&self, ix: usize) -> Result<i32, sqlx::Error>;
    /// A 64-bit integer column (a count, an instant).
    fn int8(&self, ix: usize) -> Result<i64, sqlx::Error>;
    /// A 64-bit integer column that may be NULL.
    fn opt_int8(&self, ix: usize) -> Result<Option<i64>, sqlx::Error>;

    /// A summed amount, read as decimal text (`column` names it in the error).
    fn sum(&self, ix: usize, column: &str) -> Result<i128, ReadError> {
        parse_amount(column, self.text(ix)?).map_err(ReadError::Corrupt)
    }

    /// A summed amount that may be NULL.
    fn opt_sum(&self, ix: usize, column: &str) -> Result<Option<i128>, ReadError> {
        self.opt_text(ix)?
            .map(|t| parse_amount(column, t).map_err(ReadError::Corrupt))
            .transpose()
    }
}

macro_rules! read_row {
    ($row:ty) => {
        impl ReadRow for $row {
            fn text(&self, ix: usize) -> Result<&str, sqlx::Error> {
                self.try_get(ix)
            }
            fn opt_text(&self, ix: usize) -> Result<Option<&str>, sqlx::Error> {
                self.try_get(ix)
            }
            fn int4(&self, ix: usize) -> Result<i32, sqlx::Error> {
                self.try_get(ix)
            }
            fn int8(&self, ix: usize) -> Result<i64, sqlx::Error> {
                self.try_get(ix)
            }
            fn opt_int8(&self, ix: usize) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(ix)
            }
        }
    };
}

read_row!(SqliteRow);
read_row!(PgRow);
