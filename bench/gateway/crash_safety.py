#!/usr/bin/env python3
"""Crash safety of the usage ledger.

Runs concurrent load (streamed and non-streamed chat completions, several tenants) through a
gateway server (fake backend, SQLite by default or --db postgres://...), kill -9s the server
mid-load several times, restarts it, and then checks against the database:

  * every request that got a complete 200 has exactly one ledger row (by x-request-id);
  * no request id appears twice;
  * each tenant's balance equals its credits minus its ledger costs;
  * no money is left held after the restart's sweep.

Prints the counts and exits non-zero on any violation.
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def one_request(port, key, stream):
    """(status, request_id, completed) — completed means the whole body arrived."""
    body = {"model": "fake", "max_tokens": 16, "stream": stream,
            "messages": [{"role": "user", "content": "alpha beta gamma delta epsilon zeta eta theta"}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = conn.getresponse()
        rid = r.getheader("x-request-id")
        data = r.read().decode()
        done = r.status == 200 and ("[DONE]" in data if stream else '"usage"' in data)
        return r.status, rid, done
    except Exception:
        return None, None, False
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--port", type=int, default=18431)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        common.build()
    tmp = tempfile.mkdtemp()
    db = a.db or f"sqlite://{tmp}/crash.db"
    admin_key = common.init(db)
    log = open(os.path.join(tmp, "server.log"), "w")
    extra = ["--token-delay-ms", "2", "--sweep-all"]
    server = common.start("serve", a.port, db, extra, log)
    common.admin(a.port, admin_key, "PUT", "/prices", {"model": "fake", "prompt": "0.5", "completion": "1.5"})
    keys, tids = [], []
    for i in range(a.tenants):
        t = common.admin(a.port, admin_key, "POST", "/tenants", {"name": f"crash{i}", "kind": "business"})
        common.admin(a.port, admin_key, "POST", "/topups", {"tenant": t["id"], "amount": "1000"})
        k = common.admin(a.port, admin_key, "POST", "/keys", {"tenant": t["id"]})
        keys.append(k["key"])
        tids.append(t["id"])

    results = []  # (status, rid, completed)
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n):
        rnd = random.Random(n)
        while not stop.is_set():
            res = one_request(a.port, rnd.choice(keys), rnd.random() < 0.5)
            with lock:
                results.append(res)
            if res[0] is None:
                time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.workers)]
    for t in threads:
        t.start()
    for k in range(a.kills):
        time.sleep(random.uniform(1.5, 3.0))
        common.kill9(server)
        print(f"kill -9 #{k + 1} after {len(results)} requests", flush=True)
        time.sleep(0.3)
        server = common.start("serve", a.port, db, extra, log)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    # One clean restart so the start-up sweep runs after the last load.
    common.kill9(server)
    server = common.start("serve", a.port, db, extra, log)

    ok = [rid for st, rid, done in results if st == 200 and done]
    other_status = sum(1 for st, _, _ in results if st is not None and st != 200)
    broken = sum(1 for st, _, done in results if st is None or (st == 200 and not done))

    rows, dups, balances, reserved = read_db(db, tids)
    server.kill()
    missing = [r for r in ok if rows.get(r) != 1]
    bad_balance = [(t, b, c, s) for t, (b, c, s) in balances.items() if b != c - s]
    extra_rows = sum(rows.values()) - len(set(ok) & set(rows))
    print(json.dumps({
        "database": db.split("://")[0],
        "kills": a.kills,
        "requests_sent": len(results),
        "complete_200s": len(ok),
        "non_200_responses": other_status,
        "cut_by_kill_or_refused_connection": broken,
        "ledger_rows": sum(rows.values()),
        "rows_without_a_complete_200": extra_rows,
        "complete_200s_missing_a_row": len(missing),
        "duplicate_request_ids": dups,
        "balance_mismatches": len(bad_balance),
        "money_still_held_after_restart": reserved,
    }, indent=2))
    if missing or dups or bad_balance or reserved:
        print("FAIL", missing[:5], bad_balance[:5])
        sys.exit(1)
    print("OK: every complete 200 has exactly one ledger row; balances = credits - ledger")


def read_db(db, tids):
    q_rows = "SELECT request_id, COUNT(*) FROM usage_ledger GROUP BY request_id"
    q_dups = "SELECT COUNT(*) FROM (SELECT request_id FROM usage_ledger GROUP BY request_id HAVING COUNT(*) > 1) d"
    if db.startswith("sqlite://"):
        c = sqlite3.connect(db[len("sqlite://"):])
        ex = lambda q, p=(): c.execute(q.replace("%s", "?"), p).fetchall()  # noqa: E731
    else:
        def ex(q, p=()):
            for v in p:
                q = q.replace("%s", "'" + v.replace("'", "''") + "'", 1)
            out = subprocess.run(["psql", db, "-At", "-F", "\t", "-c", q], check=True, capture_output=True, text=True)
            return [tuple(int(x) if x.lstrip("-").isdigit() else x for x in line.split("\t"))
                    for line in out.stdout.splitlines() if line]
    rows = {r: n for r, n in ex(q_rows)}
    dups = ex(q_dups)[0][0]
    balances = {}
    reserved = 0
    for t in tids:
        b, res = ex("SELECT balance, reserved FROM tenants WHERE id = %s", (t,))[0]
        credits = ex("SELECT COALESCE(SUM(amount), 0) FROM credits WHERE tenant_id = %s", (t,))[0][0]
        spent = ex("SELECT COALESCE(SUM(cost), 0) FROM usage_ledger WHERE tenant_id = %s", (t,))[0][0]
        balances[t] = (b, credits, spent)
        reserved += res
    return rows, dups, balances, reserved


if __name__ == "__main__":
    main()
