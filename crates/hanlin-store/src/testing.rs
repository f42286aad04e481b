//! Helpers for tests in this and dependent crates: a fresh store on each database.

use crate::SqlStore;

/// `HANLIN_TEST_POSTGRES_URL`, or the local server CI starts.
pub fn postgres_url() -> String {
    std::env::var("HANLIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh SQLite store in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> SqlStore {
    let url = format!("sqlite://{}", dir.join("hanlin.db").display());
    match SqlStore::open(&url).await {
        Ok(s) => s,
        Err(e) => panic!("opening {url}: {e}"),
    }
}

/// A store in a fresh PostgreSQL schema, or `None` when PostgreSQL does not answer and
/// `HANLIN_REQUIRE_POSTGRES` is not set (with it set, as in `scripts/test.sh`, that panics:
/// the PostgreSQL half of a test must never skip silently in CI).
pub async fn postgres(test: &str) -> Option<SqlStore> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let schema = format!(
        "t_{}_{}_{}_{}",
        test.to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect::<String>(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    );
    match SqlStore::open_postgres_schema(&postgres_url(), &schema).await {
        Ok(s) => Some(s),
        Err(e) => {
            if std::env::var("HANLIN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("PostgreSQL required (HANLIN_REQUIRE_POSTGRES=1) but not usable: {e}");
            }
            eprintln!(
                "SKIPPED (PostgreSQL not available: {e}); set HANLIN_REQUIRE_POSTGRES=1 to fail"
            );
            None
        }
    }
}
