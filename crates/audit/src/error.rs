use thiserror::Error;

/// What went wrong in the audit store. URLs in messages never carry a password.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`, or does not parse.
    #[error("audit store: bad url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("audit store: connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The SQLite file writer (a thread with its own connection) could not start.
    #[error("audit store: open the writer of {url}: {source}")]
    Writer {
        url: String,
        #[source]
        source: DbError,
    },
    #[error("audit store: migrate {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A NaN or infinite float in a NOT NULL column; nothing of the batch was written.
    #[error("audit store: {table} row {id}: column {column} is {value}, not a finite number")]
    NonFinite { table: &'static str, id: String, column: &'static str, value: f64 },
    #[error("audit store: insert into {table}: {source}")]
    Insert {
        table: &'static str,
        #[source]
        source: DbError,
    },
    /// Begin or commit of the write transaction failed; nothing of the batch was written.
    #[error("audit store: {what} transaction: {source}")]
    Transaction {
        what: &'static str,
        #[source]
        source: DbError,
    },
    #[error("audit store: read {table}: {source}")]
    Read {
        table: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored row does not have the shape of its table (the schema was changed by hand).
    #[error("audit store: read {table}: row {id} does not match the schema")]
    Shape { table: &'static str, id: String },
}

/// An error of the driver a write went through: sqlx (PostgreSQL, in-memory SQLite, and the
/// server side of scratch databases) or rusqlite (the SQLite file writer).
#[derive(Debug, Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite writer thread could not start, or is closed.
    #[error("{0}")]
    Writer(String),
}

/// `url` with any password replaced by `***`: the one in `user:password@` and a `password=`
/// query parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?', '#']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u:p@ss@h/db?sslmode=disable"), "postgres://u:***@h/db?sslmode=disable");
        assert_eq!(redact_url("postgres://u@h/db?password=secret&x=1"), "postgres://u@h/db?password=***&x=1");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite:///tmp/a.db?mode=rwc"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
