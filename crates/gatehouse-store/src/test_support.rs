//! Fresh databases for tests, one per test, so that tests never share state.

use std::path::Path;

use sqlx::{AnyConnection, Connection, Executor};

/// The server that [`fresh_postgres_url`] creates databases on, unless
/// `GATEHOUSE_TEST_POSTGRES_URL` names another.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A `sqlite://` URL for a new database file in `dir` (the file is created on connect).
pub fn fresh_sqlite_url(dir: &Path) -> String {
    let name = format!("gatehouse-{}.db", uuid::Uuid::new_v4().simple());
    format!("sqlite://{}", dir.join(name).display())
}

/// Creates a new, empty, uniquely named database (`gh_test_<uuid>`) on the server named by
/// `GATEHOUSE_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]) and returns its URL. Where
/// the server has ICU, the database's default collation is linguistic (`en-US`).
///
/// # Panics
/// When the server cannot be reached or refuses to create the database: a test cannot go on.
#[allow(clippy::panic)]
pub async fn fresh_postgres_url() -> String {
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = match AnyConnection::connect(&base).await {
        Ok(conn) => conn,
        Err(e) => panic!("cannot reach the test PostgreSQL server: {e}"),
    };
    // Sort text linguistically, as production databases usually do, so that tests catch
    // any ordering that silently depends on the collation. Servers without ICU get the default.
    let linguistic = format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    let created = match conn.execute(linguistic.as_str()).await {
        Ok(_) => Ok(()),
        Err(_) => conn
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map(|_| ()),
    };
    if let Err(e) = created {
        panic!("cannot create test database {name}: {e}");
    }
    let _ = conn.close().await;
    with_database(&base, &name)
}

/// Drops a database made by [`fresh_postgres_url`], closing its connections first. Databases
/// not named `gh_test_…` are left alone. Failures are ignored: this only tidies up.
pub async fn drop_postgres_database(url: &str) {
    let Some(name) = database_name(url).filter(|n| is_test_database(n)) else {
        return;
    };
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    sqlx::any::install_default_drivers();
    if let Ok(mut conn) = AnyConnection::connect(&base).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        let _ = conn.close().await;
    }
}

fn is_test_database(name: &str) -> bool {
    name.strip_prefix("gh_test_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn database_name(url: &str) -> Option<&str> {
    let without_query = url.split('?').next()?;
    let after_scheme = &without_query[without_query.find("://")? + 3..];
    let (_, name) = after_scheme.split_once('/')?;
    Some(name)
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{database_name, is_test_database, with_database};

    #[test]
    fn only_test_databases_are_dropped() {
        let url = "postgres://u@h/gh_test_0123abcd?sslmode=disable";
        assert_eq!(database_name(url), Some("gh_test_0123abcd"));
        assert!(is_test_database("gh_test_0123abcd"));
        assert!(!is_test_database("test"));
        assert!(!is_test_database("gh_test_x; DROP"));
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u@h/db?sslmode=disable", "x"),
            "postgresql://u@h/x?sslmode=disable"
        );
    }
}
