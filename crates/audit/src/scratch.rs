//! A throw-away database on a PostgreSQL server, for benchmarks that must not write into an
//! operator's database: created empty under a name of its own, dropped when done.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::error::{AuditError, redact_url};

/// A database created by [`ScratchDatabase::create`]; [`ScratchDatabase::drop_now`] removes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    server: PgConnectOptions,
    shown: String,
    name: String,
    /// The URL of the new database, for [`crate::AuditStore::connect`].
    pub url: String,
}

impl ScratchDatabase {
    /// Creates database `name` (ASCII lower-case letters, digits and `_`) on the server that
    /// `server_url` (`postgres://user@host:port[/admin db][?params]`) reaches.
    pub async fn create(server_url: &str, name: &str) -> Result<Self, AuditError> {
        let shown = redact_url(server_url);
        let bad = |reason: String| AuditError::Url { url: shown.clone(), reason };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(bad(format!("scratch database name {name:?}: use a-z, 0-9 and _ only")));
        }
        if !(server_url.starts_with("postgres://") || server_url.starts_with("postgresql://")) {
            return Err(bad("expected postgres://user@host:port".into()));
        }
        let server = PgConnectOptions::from_str(server_url).map_err(|e| bad(e.to_string()))?;
        let url = with_database(server_url, name).map_err(bad)?;
        let mut conn = server.connect().await.map_err(|source| AuditError::Connect { url: shown.clone(), source })?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .map_err(|source| AuditError::Transaction { what: "create database", source: source.into() })?;
        let _ = conn.close().await;
        Ok(Self { server, shown, name: name.to_string(), url })
    }

    /// Drops the database (its connections must be closed).
    pub async fn drop_now(self) -> Result<(), AuditError> {
        let mut conn =
            self.server.connect().await.map_err(|source| AuditError::Connect { url: self.shown.clone(), source })?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .map_err(|source| AuditError::Transaction { what: "drop database", source: source.into() })?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// `url` with its database path replaced by `db`, its query kept.
fn with_database(url: &str, db: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or("expected scheme://")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split_once('/').map_or(before_query, |(a, _)| a);
    if authority.is_empty() {
        return Err("no host in the url".into());
    }
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_path_is_replaced_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u@h:5432", "x").unwrap(), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert!(with_database("postgres:///db", "x").is_err());
        assert!(with_database("nothing", "x").is_err());
    }
}
