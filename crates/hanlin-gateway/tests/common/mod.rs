//! Shared set-up: the real server router over the fake backend, with a gateway on a fresh
//! store (SQLite in a temp dir, or a fresh PostgreSQL schema).
#![allow(clippy::unwrap_used, dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use hanlin_gateway::ops::{self, NewKey, NewTenant, PriceReq};
use hanlin_gateway::{Cipher, Gateway, GatewayConfig};
use hanlin_server::{router, AppState, ServerConfig};
use hanlin_store::SqlStore;
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

pub struct Env {
    pub app: Router,
    pub gw: Gateway,
    pub fake: FakeBackend,
    pub admin_key: String,
    _dir: Option<tempfile::TempDir>,
}

pub enum Db {
    Sqlite,
    Postgres,
}

pub async fn store(db: Db, name: &str) -> Option<(SqlStore, Option<tempfile::TempDir>)> {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s = hanlin_store::testing::sqlite(dir.path()).await;
            Some((s, Some(dir)))
        }
        Db::Postgres => hanlin_store::testing::postgres(name)
            .await
            .map(|s| (s, None)),
    }
}

pub async fn env_with(db: Db, name: &str, fake: FakeConfig) -> Option<Env> {
    let (store, dir) = store(db, name).await?;
    let cipher = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
    let gw = Gateway::new(Arc::new(store), cipher, GatewayConfig::default());
    gw.start_housekeeping(false).await.unwrap();
    let fake = FakeBackend::new(fake);
    let state =
        AppState::new(Arc::new(fake.clone()), ServerConfig::default()).with_gateway(gw.clone());
    let (_, admin) = ops::create_admin(&gw, "ops").await.unwrap();
    Some(Env {
        app: router(state),
        gw,
        fake,
        admin_key: admin.expose().to_string(),
        _dir: dir,
    })
}

pub async fn env(db: Db, name: &str) -> Option<Env> {
    env_with(db, name, FakeConfig::default()).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn request_id(&self) -> String {
        self.headers["x-request-id"].to_str().unwrap().to_string()
    }
}

impl Env {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Resp {
        let body = if body.is_null() {
            None
        } else {
            Some(body.to_string())
        };
        self.call(method, path, Some(&self.admin_key.clone()), body)
            .await
    }

    pub async fn chat(&self, key: &str, model: &str, extra: Value) -> Resp {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "one two three four"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(key),
            Some(body.to_string()),
        )
        .await
    }

    /// A tenant with `balance` (decimal) and a key with `key` settings; returns (tenant id, key).
    pub async fn tenant(
        &self,
        name: &str,
        billing: &str,
        balance: &str,
        key: NewKey,
    ) -> (String, String) {
        let t = ops::create_tenant(
            &self.gw,
            NewTenant {
                name: name.into(),
                kind: Some("business".into()),
                billing: Some(billing.into()),
                currency: None,
                group: None,
                credit_limit: None,
                included_tokens: None,
                rpm: None,
                tpm: None,
            },
        )
        .await
        .unwrap();
        if balance != "0" {
            ops::topup(&self.gw, &t.id, balance, "test").await.unwrap();
        }
        let (_, secret) = ops::create_key(
            &self.gw,
            NewKey {
                tenant: t.id.clone(),
                ..key
            },
        )
        .await
        .unwrap();
        (t.id, secret.expose().to_string())
    }

    pub async fn price(&self, model: &str, prompt: &str, completion: &str) {
        ops::set_price(
            &self.gw,
            PriceReq {
                model: model.into(),
                prompt: Some(prompt.into()),
                completion: Some(completion.into()),
                ..PriceReq::default()
            },
        )
        .await
        .unwrap();
    }

    /// Waits for a background settlement (a dropped stream) to land.
    pub async fn wait_row(&self, request_id: &str) -> hanlin_store::UsageRecord {
        for _ in 0..200 {
            if let Some(r) = self.gw.store().ledger_row(request_id).await.unwrap() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no ledger row for {request_id}");
    }
}
