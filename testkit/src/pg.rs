//! Throw-away PostgreSQL databases on the machine's server (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use anyhow::Context;
use sqlx::{Connection, PgConnection};

/// The server's administrative URL: `DATABASE_URL`, or the local server with trust auth.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name` (the query string kept).
pub fn sibling_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// Runs one statement on the server's administrative database.
pub async fn admin(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {admin_url}"))?;
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .with_context(|| format!("`{sql}` failed"))?;
    let _ = conn.close().await;
    Ok(())
}

/// A fresh database, dropped (with its connections) when this goes out of scope.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// Creates `<prefix>_<unique>` on the server of [`admin_url`].
    pub async fn create(prefix: &str) -> anyhow::Result<TestDb> {
        Self::create_on(&admin_url(), prefix).await
    }

    /// Creates `<prefix>_<unique>` on the server of `admin_url`.
    pub async fn create_on(admin_url: &str, prefix: &str) -> anyhow::Result<TestDb> {
        let name = crate::unique(prefix);
        admin(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(TestDb {
            admin_url: admin_url.to_owned(),
            url: sibling_url(admin_url, &name),
            name,
        })
    }

    /// [`TestDb::create`] for a caller outside any runtime.
    pub fn create_blocking(prefix: &str) -> anyhow::Result<TestDb> {
        crate::rt()?.block_on(Self::create(prefix))
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL that connects to this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The administrative URL of its server.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Runs one statement on the server's administrative database (for instance to
    /// terminate this database's connections), from outside any runtime.
    pub fn admin_blocking(&self, sql: &str) -> anyhow::Result<()> {
        crate::rt()?.block_on(admin(&self.admin_url, sql))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A thread of its own: this may run inside a runtime, or while unwinding.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = crate::rt() {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = rt.block_on(admin(&admin_url, &sql));
            }
        })
        .join();
    }
}
