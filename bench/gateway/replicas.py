#!/usr/bin/env python3
"""Two gateway replicas on one PostgreSQL: one tenant's balance and RPM enforced across both.

Starts two fake_serve replicas on a fresh schema of $HANLIN_TEST_POSTGRES_URL, then
  1. balance: a prepaid tenant with a small balance; many concurrent clients split over both
     replicas until every request is refused; reports requests served, money spent and the
     overspend (spent - balance), which must stay within one request's cost;
  2. RPM: a tenant with rpm=N hammered through both replicas within one minute window;
     reports 200s vs N (must be <= N).
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

BASE = os.environ.get("HANLIN_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def hammer(ports, key, workers, keep_going, body):
    counts = {"ok": 0, "quota": 0, "rate": 0, "other": 0}
    lock = threading.Lock()

    def w(i):
        port = ports[i % len(ports)]
        while keep_going():
            st, _, text = common.call(port, "POST", "/v1/chat/completions", key, body)
            kind = "ok" if st == 200 else "quota" if "insufficient_quota" in text else \
                "rate" if "rate_limit_exceeded" in text else "other"
            with lock:
                counts[kind] += 1
    ts = [threading.Thread(target=w, args=(i,)) for i in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts


def main():
    if "--no-build" not in sys.argv:
        common.build()
    schema = f"replicas_{int(time.time())}"
    subprocess.run(["psql", BASE, "-qc", f"CREATE SCHEMA {schema}"], check=True)
    db = f"{BASE}?options=-c%20search_path%3D{schema}"
    admin_key = common.init(db)
    ports = [18441, 18442]
    servers = [common.start("serve", p, db, ["--token-delay-ms", "1"]) for p in ports]
    try:
        a = lambda *x: common.admin(ports[0], admin_key, *x)  # noqa: E731
        a("PUT", "/prices", {"model": "fake", "prompt": "1", "completion": "2"})
        body = {"model": "fake", "max_tokens": 16, "messages": [{"role": "user", "content": "a b c d e f g h"}]}

        # 1. Balance.
        t = a("POST", "/tenants", {"name": "shared", "kind": "business"})
        a("POST", "/topups", {"tenant": t["id"], "amount": "2"})
        key = a("POST", "/keys", {"tenant": t["id"]})["key"]
        start = time.time()
        counts = hammer(ports, key, 24, lambda: time.time() - start < 8, body)
        rows = subprocess.run(["psql", db, "-At", "-F", " ", "-c",
                               f"SELECT COUNT(*), COALESCE(MAX(cost),0), COALESCE(SUM(cost),0) FROM usage_ledger WHERE tenant_id='{t['id']}' AND status=200"],
                              check=True, capture_output=True, text=True).stdout.split()
        n, max_cost, spent = map(int, rows)
        bal = int(subprocess.run(["psql", db, "-At", "-c", f"SELECT balance FROM tenants WHERE id='{t['id']}'"],
                                 check=True, capture_output=True, text=True).stdout)
        overspend = max(0, spent - 2_000_000)
        balance_result = {"balance_micro": 2_000_000, "served_200": counts["ok"], "ledger_rows_200": n,
                          "refused_insufficient_quota": counts["quota"], "other": counts["other"],
                          "spent_micro": spent, "final_balance_micro": bal,
                          "overspend_micro": overspend, "one_request_cost_micro": max_cost}

        # 2. RPM across both replicas, inside one minute window.
        t2 = a("POST", "/tenants", {"name": "rpm", "kind": "business", "rpm": 40})
        a("POST", "/topups", {"tenant": t2["id"], "amount": "1000"})
        key2 = a("POST", "/keys", {"tenant": t2["id"]})["key"]
        if time.time() % 60 > 50:
            time.sleep(61 - time.time() % 60)
        start = time.time()
        c2 = hammer(ports, key2, 16, lambda: time.time() - start < 4, body)
        rpm_result = {"rpm_limit": 40, "served_200": c2["ok"], "refused_429_rate": c2["rate"], "other": c2["other"]}
        out = {"balance": balance_result, "rpm": rpm_result}
        print(json.dumps(out, indent=2))
        ok = (counts["ok"] > 0 and counts["quota"] > 0 and overspend <= max_cost and n == counts["ok"]
              and 0 < c2["ok"] <= 40 and c2["rate"] > 0 and counts["other"] == 0)
        print("OK" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    finally:
        for s in servers:
            s.kill()


if __name__ == "__main__":
    main()
