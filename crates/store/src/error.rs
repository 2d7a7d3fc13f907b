//! [`StoreError`]: every failure of the store, with its [`ErrorKind`].
//!
//! Invariant: input problems are reported before any SQL runs, naming the field (and the
//! index of the record in a batch), so callers can drop exactly the bad record; database
//! failures keep their `sqlx::Error` as the source and are classified by
//! [`StoreError::kind`] (connection trouble -> `Unavailable`, constraint violations ->
//! `AlreadyExists`/`NotFound`/`InvalidArgument`, everything else -> `Internal`).

use liftguard_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `postgres://`/`postgresql://` nor `sqlite:`, or it does not parse.
    #[error("bad database url: {0}")]
    BadUrl(String),
    /// A field of the input is malformed or out of range. `index` is the position of the
    /// offending record in a batch, when the call took a batch.
    #[error("invalid {field}{}: {reason}", index.map(|i| format!(" (record {i})")).unwrap_or_default())]
    InvalidArgument {
        field: String,
        reason: String,
        index: Option<usize>,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A query would return more rows than the store hands out at once.
    #[error("{what}: more than {limit} rows in the requested range; request a shorter range")]
    ResultTooLarge { what: &'static str, limit: usize },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The schema in the database is newer than this build or was made for another backend.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// A stored row could not be turned back into its wire type.
    #[error("corrupt row in {table}: {reason}")]
    CorruptRow { table: &'static str, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
            index: None,
        }
    }

    pub(crate) fn at_index(self, i: usize) -> Self {
        match self {
            StoreError::InvalidArgument { field, reason, .. } => StoreError::InvalidArgument {
                field,
                reason,
                index: Some(i),
            },
            other => other,
        }
    }

    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        StoreError::CorruptRow {
            table,
            reason: reason.into(),
        }
    }

    /// The error vocabulary shared by every liftguard crate.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::BadUrl(_) | StoreError::InvalidArgument { .. } => {
                ErrorKind::InvalidArgument
            }
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            StoreError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            StoreError::ResultTooLarge { .. } => ErrorKind::OutOfRange,
            StoreError::Schema(_) | StoreError::CorruptRow { .. } => ErrorKind::Internal,
            StoreError::Migration { source, .. } | StoreError::Database(source) => classify(source),
        }
    }

    /// True when retrying later may succeed (the database is unreachable or busy).
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// Maps a sqlx error onto the shared vocabulary.
fn classify(e: &sqlx::Error) -> ErrorKind {
    use sqlx::error::ErrorKind as Db;
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        sqlx::Error::Configuration(_) => ErrorKind::InvalidArgument,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match db.kind() {
                Db::UniqueViolation => ErrorKind::AlreadyExists,
                Db::ForeignKeyViolation => ErrorKind::NotFound,
                Db::NotNullViolation | Db::CheckViolation => ErrorKind::InvalidArgument,
                _ => classify_code(&code),
            }
        }
        _ => ErrorKind::Internal,
    }
}

/// SQLSTATE classes (PostgreSQL) and primary result codes (SQLite).
fn classify_code(code: &str) -> ErrorKind {
    match code {
        // PostgreSQL: connection exceptions, insufficient resources, operator intervention,
        // serialization failure / deadlock (retry), lock not available.
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
            ErrorKind::Unavailable
        }
        "40001" | "40P01" | "55P03" => ErrorKind::Unavailable,
        // PostgreSQL data exceptions (bad value, out of range, invalid encoding).
        c if c.starts_with("22") => ErrorKind::InvalidArgument,
        // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes.
        c if c.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            StoreError::invalid("limit", "0").kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            StoreError::Database(sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            StoreError::Database(sqlx::Error::RowNotFound).kind(),
            ErrorKind::Internal
        );
        assert_eq!(classify_code("08006"), ErrorKind::Unavailable);
        assert_eq!(classify_code("22003"), ErrorKind::InvalidArgument);
        assert_eq!(classify_code("517"), ErrorKind::Unavailable); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(classify_code("1"), ErrorKind::Internal);
        let e = StoreError::invalid("start_us", "negative").at_index(3);
        assert_eq!(e.to_string(), "invalid start_us (record 3): negative");
    }
}
