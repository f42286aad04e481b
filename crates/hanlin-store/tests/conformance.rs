//! The conformance story: one scenario, run unchanged on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use hanlin_store::*;

fn tenant(id: &str, name: &str, billing: Billing, credit_limit: i64) -> Tenant {
    Tenant {
        id: id.into(),
        name: name.into(),
        kind: TenantKind::Business,
        billing,
        currency: Currency::Cny,
        group: String::new(),
        balance: 0,
        reserved: 0,
        credit_limit,
        included_tokens: 0,
        period: String::new(),
        period_tokens: 0,
        rpm: 0,
        tpm: 0,
        disabled: false,
        created_ms: 1_000,
    }
}

fn key(id: &str, tenant_id: &str, spend_cap: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        name: "k".into(),
        hash: format!("hash-of-{id}"),
        is_admin: false,
        models: vec!["m1".into(), "m2".into()],
        expires_ms: 0,
        spend_cap,
        spent: 0,
        reserved: 0,
        rpm: 0,
        tpm: 0,
        revoked_ms: 0,
        created_ms: 1_000,
    }
}

fn usage(req: &str, tenant_id: &str, key_id: &str, model: &str, cost: i64, at: i64) -> UsageRecord {
    UsageRecord {
        request_id: req.into(),
        tenant_id: tenant_id.into(),
        key_id: key_id.into(),
        model: model.into(),
        channel: String::new(),
        prompt_tokens: 10,
        cached_tokens: 2,
        completion_tokens: 5,
        cost,
        currency: Currency::Cny,
        latency_ms: 3,
        status: 200,
        created_ms: at,
    }
}

fn hold(req: &str, tenant_id: &str, key_id: &str, amount: i64) -> Reservation {
    Reservation {
        request_id: req.into(),
        tenant_id: tenant_id.into(),
        key_id: key_id.into(),
        amount,
        created_ms: 5_000,
    }
}

async fn story(s: Arc<SqlStore>) {
    // Tenants: unique names, lookups, updates.
    s.create_tenant(&tenant("t1", "acme", Billing::Prepaid, 0))
        .await
        .unwrap();
    let dup = s
        .create_tenant(&tenant("t9", "acme", Billing::Prepaid, 0))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.tenant_by_name("acme").await.unwrap().id, "t1");
    assert!(matches!(
        s.tenant("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let mut t = s.tenant("t1").await.unwrap();
    t.rpm = 60;
    t.group = "vip".into();
    s.update_tenant(&t).await.unwrap();
    assert_eq!(s.tenant("t1").await.unwrap().rpm, 60);
    s.upsert_group("vip", 8_000).await.unwrap();
    s.upsert_group("vip", 7_500).await.unwrap();
    assert_eq!(s.group_ratio("vip").await.unwrap(), Some(7_500));
    assert_eq!(s.group_ratio("none").await.unwrap(), None);
    // A value the schema refuses is Invalid, not a crash.
    assert!(matches!(
        s.upsert_group("bad", -1).await,
        Err(StoreError::Invalid(_))
    ));

    // Keys: stored, listed, revoked once.
    s.create_key(&key("k1", "t1", 0)).await.unwrap();
    s.create_key(&key("k2", "t1", 300)).await.unwrap();
    assert!(s.create_key(&key("k3", "no-such-tenant", 0)).await.is_err());
    let k = s.key("k1").await.unwrap();
    assert_eq!(k.models, vec!["m1".to_string(), "m2".to_string()]);
    assert_eq!(s.keys(Some("t1")).await.unwrap().len(), 2);
    assert_eq!(s.active_key_count(2_000).await.unwrap(), 2);
    assert!(s.revoke_key("k2", 2_000).await.unwrap());
    assert!(!s.revoke_key("k2", 3_000).await.unwrap());
    assert_eq!(s.key("k2").await.unwrap().revoked_ms, 2_000);
    assert!(matches!(
        s.revoke_key("zz", 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.active_key_count(2_000).await.unwrap(), 1);

    // Prices.
    let mut p = Price {
        model: "m1".into(),
        currency: Currency::Cny,
        prompt_per_1k: 1_000,
        completion_per_1k: 2_000,
        cached_per_1k: 100,
        per_request: 0,
        rpm: 0,
        tpm: 0,
        updated_ms: 1,
    };
    s.upsert_price(&p).await.unwrap();
    p.completion_per_1k = 3_000;
    s.upsert_price(&p).await.unwrap();
    assert_eq!(
        s.price("m1").await.unwrap().unwrap().completion_per_1k,
        3_000
    );
    assert_eq!(s.prices().await.unwrap().len(), 1);
    assert!(s.delete_price("m1").await.unwrap());
    assert!(!s.delete_price("m1").await.unwrap());
    assert!(s.price("m1").await.unwrap().is_none());

    // Balance: top-up, hold, settle once.
    s.add_credit(&Credit {
        id: "c1".into(),
        tenant_id: "t1".into(),
        amount: 1_000,
        source: "admin".into(),
        note: "welcome".into(),
        created_ms: 1_000,
    })
    .await
    .unwrap();
    assert_eq!(s.tenant("t1").await.unwrap().balance, 1_000);
    assert!(s.reserve(&hold("r1", "t1", "k1", 600)).await.unwrap());
    assert!(
        !s.reserve(&hold("r2", "t1", "k1", 600)).await.unwrap(),
        "over balance"
    );
    let t = s.tenant("t1").await.unwrap();
    assert_eq!((t.balance, t.reserved), (1_000, 600));
    assert!(s
        .settle(&usage("r1", "t1", "k1", "m1", 500, 10_000))
        .await
        .unwrap());
    // The same request id again: no second row, no second charge.
    assert!(!s
        .settle(&usage("r1", "t1", "k1", "m1", 500, 10_000))
        .await
        .unwrap());
    let t = s.tenant("t1").await.unwrap();
    assert_eq!((t.balance, t.reserved, t.period_tokens), (500, 0, 15));
    assert_eq!(t.period, "1970-01", "the UTC month of the row's created_ms");
    let (k, kt) = s.key_with_tenant("k1").await.unwrap();
    assert_eq!(
        (k.spent, k.reserved, kt.id.as_str(), kt.balance),
        (500, 0, "t1", 500)
    );
    assert!(matches!(
        s.key_with_tenant("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.key("k1").await.unwrap().spent, 500);
    assert_eq!(s.ledger_row("r1").await.unwrap().unwrap().cost, 500);
    assert_eq!(s.ledger(Some("t1"), 0, i64::MAX).await.unwrap().len(), 1);

    // Spend cap of a key.
    s.create_key(&key("k4", "t1", 300)).await.unwrap();
    assert!(!s.reserve(&hold("r3", "t1", "k4", 301)).await.unwrap());
    assert!(s.reserve(&hold("r3", "t1", "k4", 300)).await.unwrap());
    s.settle(&usage("r3", "t1", "k4", "m2", 300, 10_000 + 86_400_000))
        .await
        .unwrap();
    assert!(
        !s.reserve(&hold("r4", "t1", "k4", 1)).await.unwrap(),
        "cap reached"
    );
    assert_eq!(s.tenant("t1").await.unwrap().balance, 200);

    // Postpaid: balance may go down to minus the credit limit, not beyond.
    s.create_tenant(&tenant("t2", "bigco", Billing::Postpaid, 1_000))
        .await
        .unwrap();
    s.create_key(&key("k5", "t2", 0)).await.unwrap();
    assert!(s.reserve(&hold("p1", "t2", "k5", 800)).await.unwrap());
    s.settle(&usage("p1", "t2", "k5", "m1", 800, 20_000))
        .await
        .unwrap();
    assert_eq!(s.tenant("t2").await.unwrap().balance, -800);
    assert!(!s.reserve(&hold("p2", "t2", "k5", 300)).await.unwrap());
    assert!(s.reserve(&hold("p2", "t2", "k5", 200)).await.unwrap());
    // A crashed replica's hold is released by the sweep.
    assert_eq!(s.sweep_reservations(6_000).await.unwrap(), 1);
    assert_eq!(s.tenant("t2").await.unwrap().reserved, 0);

    // Codes redeem exactly once, and only in their currency.
    s.create_code(&RedeemCode {
        code_hash: "h1".into(),
        amount: 5_000,
        currency: Currency::Cny,
        created_ms: 1,
    })
    .await
    .unwrap();
    s.create_code(&RedeemCode {
        code_hash: "h2".into(),
        amount: 5_000,
        currency: Currency::Usd,
        created_ms: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        s.redeem_code("h1", "t1", 30_000).await.unwrap(),
        Some(5_000)
    );
    assert_eq!(s.redeem_code("h1", "t1", 30_001).await.unwrap(), None);
    assert_eq!(s.redeem_code("h2", "t1", 30_002).await.unwrap(), None);
    assert_eq!(s.redeem_code("unknown", "t1", 30_003).await.unwrap(), None);
    assert_eq!(s.tenant("t1").await.unwrap().balance, 5_200);
    let credits = s.credits("t1").await.unwrap();
    assert_eq!(credits.iter().map(|c| c.amount).sum::<i64>(), 6_000);

    // Usage totals group by day, tenant and model.
    let totals = s.usage_totals(None, 0, i64::MAX).await.unwrap();
    let summary: Vec<(i64, &str, &str, i64, i64)> = totals
        .iter()
        .map(|t| {
            (
                t.day,
                t.tenant_id.as_str(),
                t.model.as_str(),
                t.requests,
                t.cost,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "t1", "m1", 1, 500),
            (0, "t2", "m1", 1, 800),
            (1, "t1", "m2", 1, 300)
        ]
    );
    assert_eq!(
        s.usage_totals(Some("t2"), 0, i64::MAX).await.unwrap().len(),
        1
    );

    // Balance identity: balance = credits − ledger.
    let spent: i64 = s
        .ledger(Some("t1"), 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|u| u.cost)
        .sum();
    assert_eq!(s.tenant("t1").await.unwrap().balance, 6_000 - spent);

    // Rate windows count atomically per scope and window.
    assert_eq!(
        s.hit_window("key:k1", 60_000, 1, 10).await.unwrap(),
        (1, 10)
    );
    assert_eq!(s.hit_window("key:k1", 60_000, 1, 5).await.unwrap(), (2, 15));
    assert_eq!(s.hit_window("key:k1", 120_000, 1, 5).await.unwrap(), (1, 5));
    assert_eq!(
        s.hit_window("key:k1", 60_000, 0, -3).await.unwrap(),
        (2, 12)
    );
    // Several scopes in one statement, totals in the order asked.
    assert_eq!(
        s.hit_windows(&["tenant:t1", "key:k1", "model:m1"], 60_000, 1, 4)
            .await
            .unwrap(),
        vec![(1, 4), (3, 16), (1, 4)]
    );
    assert_eq!(s.prune_windows(120_000).await.unwrap(), 3);

    // Channels.
    let ch = ChannelRecord {
        id: "ch1".into(),
        name: "deepseek".into(),
        base_url: "http://127.0.0.1:1/v1".into(),
        key_enc: "00ff".into(),
        models: vec!["ds=deepseek-chat".into()],
        weight: 3,
        priority: 1,
        enabled: true,
        unhealthy_until_ms: 0,
        failures: 0,
        created_ms: 1,
    };
    s.create_channel(&ch).await.unwrap();
    assert!(matches!(
        s.create_channel(&ch).await,
        Err(StoreError::Conflict(_))
    ));
    s.set_channel_health("ch1", 99, 3).await.unwrap();
    let got = s.channels().await.unwrap();
    assert_eq!((got[0].unhealthy_until_ms, got[0].failures), (99, 3));
    assert_eq!(got[0].models, ch.models);
    assert!(s.delete_channel("deepseek").await.unwrap());
    assert!(s.channels().await.unwrap().is_empty());

    // Hostile strings are data, not SQL.
    let evil = "x'); DROP TABLE tenants; --";
    s.create_tenant(&tenant("t3", evil, Billing::Prepaid, 0))
        .await
        .unwrap();
    assert_eq!(s.tenant_by_name(evil).await.unwrap().id, "t3");
    assert_eq!(s.tenants().await.unwrap().len(), 3);

    // Concurrency: 40 holds of 100 against a balance of 1,000 — exactly 10 succeed.
    s.create_tenant(&tenant("t4", "race", Billing::Prepaid, 0))
        .await
        .unwrap();
    s.create_key(&key("k6", "t4", 0)).await.unwrap();
    s.add_credit(&Credit {
        id: "c4".into(),
        tenant_id: "t4".into(),
        amount: 1_000,
        source: "admin".into(),
        note: String::new(),
        created_ms: 1,
    })
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.reserve(&hold(&format!("race{i}"), "t4", "k6", 100))
                .await
                .unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 10);
    assert_eq!(s.tenant("t4").await.unwrap().reserved, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = testing::sqlite(dir.path()).await;
    assert_eq!(s.backend_name(), "sqlite");
    story(Arc::new(s)).await;
    // Reopening migrates nothing and keeps the data.
    let again = testing::sqlite(dir.path()).await;
    assert_eq!(again.tenants().await.unwrap().len(), 4);
    // The ledger is append-only in the database itself, not only in our code.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("hanlin.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for sql in [
        "UPDATE usage_ledger SET cost = 0",
        "DELETE FROM usage_ledger",
    ] {
        let e = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_postgres() {
    let Some(s) = testing::postgres("conformance").await else {
        return;
    };
    assert_eq!(s.backend_name(), "postgres");
    story(Arc::new(s)).await;
}
