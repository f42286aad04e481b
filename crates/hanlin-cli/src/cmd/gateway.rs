//! Opening the gateway for `hanlin serve` and the admin commands: which database, which
//! master key, and whether auth is on.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hanlin_gateway::{Cipher, Gateway, GatewayConfig};
use hanlin_store::SqlStore;

/// The `--db` flag shared by every gateway command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// Gateway database: sqlite://PATH or postgres://USER@HOST/DB (default: $HANLIN_DB, else
    /// sqlite://$HANLIN_HOME/gateway.db).
    #[arg(long, global = true)]
    pub db: Option<String>,
}

fn home() -> anyhow::Result<PathBuf> {
    hanlin_modelstore::default_home().context("locating the data directory")
}

/// The default SQLite file.
pub fn default_db_path() -> anyhow::Result<PathBuf> {
    Ok(home()?.join("gateway.db"))
}

/// The URL given, else `$HANLIN_DB`, else the default SQLite file.
pub fn db_url(db: Option<&str>) -> anyhow::Result<String> {
    if let Some(d) = db
        .map(str::to_string)
        .or_else(|| std::env::var("HANLIN_DB").ok())
    {
        if !d.is_empty() {
            return Ok(d);
        }
    }
    Ok(format!("sqlite://{}", default_db_path()?.display()))
}

/// A URL fit for a log line: no password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The master key that encrypts upstream keys: `$HANLIN_SECRET_KEY` (64 hex), else
/// `$HANLIN_HOME/gateway.key`, created (mode 0600) on first use. Replicas must share it.
pub fn cipher() -> anyhow::Result<Cipher> {
    if let Ok(hex) = std::env::var("HANLIN_SECRET_KEY") {
        return Cipher::from_hex(&hex).context("HANLIN_SECRET_KEY must be 64 hex characters");
    }
    let path = home()?.join("gateway.key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Cipher::from_hex(&s)
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    std::fs::create_dir_all(home()?)?;
    let hex = Cipher::generate_hex();
    write_private(&path, &hex).with_context(|| format!("writing {}", path.display()))?;
    Cipher::from_hex(&hex).context("generated key")
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(s.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, s: &str) -> std::io::Result<()> {
    std::fs::write(path, s)
}

/// Opens (creating and migrating) the gateway database.
pub async fn open(db: Option<&str>, config: GatewayConfig) -> anyhow::Result<Gateway> {
    let url = db_url(db)?;
    let store = SqlStore::open(&url)
        .await
        .with_context(|| format!("opening the gateway database {}", redact_url(&url)))?;
    Ok(Gateway::new(Arc::new(store), cipher()?, config))
}

/// For `hanlin serve`: the gateway when one is configured (`--db`, `$HANLIN_DB`, or an existing
/// default database) and has keys, else `None` (open on loopback, like Ollama). Says which at
/// start-up.
pub async fn for_serve(
    db: Option<&str>,
    loopback: bool,
    api_key_set: bool,
    max_body_bytes: usize,
) -> anyhow::Result<Option<Gateway>> {
    let explicit = db.is_some() || std::env::var("HANLIN_DB").is_ok_and(|v| !v.is_empty());
    if !explicit && !default_db_path()?.exists() {
        match (api_key_set, loopback) {
            (true, _) => eprintln!("hanlin: API key required on /v1 and /api"),
            (false, true) => eprintln!(
                "hanlin: auth is off (loopback only, no keys configured); `hanlin keys create` turns on the gateway"
            ),
            (false, false) => eprintln!(
                "hanlin: WARNING: auth is off on a non-loopback address: anyone who can reach it can use it"
            ),
        }
        return Ok(None);
    }
    let config = GatewayConfig {
        max_body_bytes,
        ..GatewayConfig::default()
    };
    let gw = open(db, config).await?;
    let url = redact_url(&db_url(db)?);
    let keys = gw
        .store()
        .active_key_count(hanlin_gateway::gateway::now_ms())
        .await
        .context("counting keys")?;
    if keys == 0 && loopback {
        eprintln!("hanlin: gateway database {url} has no keys: auth is off (loopback only)");
        return Ok(None);
    }
    if api_key_set {
        eprintln!("hanlin: --api-key is ignored: the gateway's keys are used instead");
    }
    // A single SQLite file has one server: every hold in it is from a previous run.
    let sqlite = gw.store().backend_name() == "sqlite";
    gw.start_housekeeping(sqlite)
        .await
        .context("gateway start-up")?;
    if keys == 0 {
        eprintln!(
            "hanlin: WARNING: gateway database {url} has no keys: every request will get 401"
        );
    }
    eprintln!(
        "hanlin: gateway on ({url}, {keys} active keys): keys required on /v1 and /api; admin API at /admin/v1"
    );
    Ok(Some(gw))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
