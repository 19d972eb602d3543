#!/usr/bin/env python3
"""HTTP side of scripts/durability (issue 7, acceptance 3). Standard library only.

Subcommands:
  wait-ready  poll /readyz until 200 (gives up when the server process dies)
  issue       as the demo issuer, issue books of 10 and write the vouchers (JSON lines)
  load        as the demo venue, redeem each voucher once from N threads, logging
              every request before it is sent and every 201 as soon as it arrives;
              SIGKILL the given pids once enough redemptions have been answered
  check       list the venue's stored redemptions through the API, compare them with
              the logs (and with a psql dump), print the report and the verdicts

Logs written by `load`:
  requested     one voucher id a line, appended (and flushed) before the request is sent
  acknowledged  "voucher_id redemption_id" a line, appended (and flushed) on each 201
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

PASSWORD = "demo-passnum"
ISSUER = "prescripteur@demo.passnum.test"
VENUE = "lieu@demo.passnum.test"


class Client:
    """One keep-alive HTTP/1.1 connection to the server on the loopback."""

    def __init__(self, port, timeout):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.token = None

    def call(self, method, path, body=None):
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = "Bearer " + self.token
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed

    def login(self, email):
        status, body = self.call("POST", "/api/v1/auth/token", {"email": email, "password": PASSWORD})
        if status != 200:
            raise SystemExit(f"login as {email} failed: {status} {body}")
        self.token = body["access_token"]

    def close(self):
        self.conn.close()


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait_ready(a):
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        if a.pid and not pid_alive(a.pid):
            fail(f"the server (pid {a.pid}) exited before it was ready")
        try:
            c = Client(a.port, 2)
            status, _ = c.call("GET", "/readyz")
            c.close()
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    fail(f"/readyz did not answer 200 within {a.timeout} s")


def get_all(client, path):
    items, cursor = [], ""
    while True:
        sep = "&" if "?" in path else "?"
        status, body = client.call("GET", f"{path}{sep}limit=200&cursor={cursor}")
        if status != 200:
            fail(f"GET {path}: {status} {body}")
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def cmd_issue(a):
    if a.vouchers % 10:
        fail("--vouchers must be a multiple of 10 (books of 10)")
    c = Client(a.port, 30)
    c.login(ISSUER)
    programs = get_all(c, "/api/v1/programs")
    if len(programs) != 1:
        fail(f"expected the one demo programme, found {len(programs)}")
    program_id = programs[0]["id"]
    with open(a.out, "w") as out:
        for n in range(a.vouchers // 10):
            book = {"program_id": program_id, "size": 10,
                    "beneficiary": {"reference": f"CRASH-{a.tag}-{n + 1}", "postcode": "67000"}}
            status, body = c.call("POST", "/api/v1/books", book)
            if status != 201:
                fail(f"issuing book {n + 1}: {status} {body}")
            for v in body["vouchers"]:
                out.write(json.dumps({"voucher_id": v["voucher_id"], "code": v["code"]}) + "\n")
    c.close()


def cmd_load(a):
    vouchers = [json.loads(line) for line in open(a.vouchers)]
    total = len(vouchers)
    threshold = max(1, int(total * a.kill_at))
    kill_pids = [int(p) for p in a.kill_pids.split(",") if p]

    lock = threading.Lock()
    requested = open(a.requested, "a")
    acknowledged = open(a.acknowledged, "a")
    stats = {"sent": 0, "answered": 0, "ok": 0, "refused": {}, "errors": {},
             "errors_before_kill": 0, "killed_at": None}
    next_index = [0]
    killed = threading.Event()
    stop = threading.Event()
    enough = threading.Event()
    deadline = time.monotonic() + a.max_seconds

    venue = Client(a.port, a.timeout)
    venue.login(VENUE)
    token = venue.token
    venue.close()

    def take():
        with lock:
            if stop.is_set() or next_index[0] >= total:
                return None
            v = vouchers[next_index[0]]
            next_index[0] += 1
            # Logged and flushed before the request leaves.
            requested.write(v["voucher_id"] + "\n")
            requested.flush()
            stats["sent"] += 1
            return v

    def worker():
        c = Client(a.port, a.timeout)
        c.token = token
        body = {"theme": "online_procedures", "held_on": a.held_on, "duration_minutes": 60}
        while time.monotonic() < deadline:
            v = take()
            if v is None:
                break
            try:
                status, answer = c.call("POST", "/api/v1/redemptions", {"code": v["code"], "workshop": body})
            except (OSError, http.client.HTTPException) as e:
                # Sent, fate unknown: never retried. The client stops, as a
                # scanner would on a dead server.
                with lock:
                    name = type(e).__name__
                    stats["errors"][name] = stats["errors"].get(name, 0) + 1
                    if not killed.is_set():
                        stats["errors_before_kill"] += 1
                break
            with lock:
                stats["answered"] += 1
                if status == 201:
                    if answer.get("voucher_id") != v["voucher_id"]:
                        stats["refused"]["201-wrong-voucher"] = stats["refused"].get("201-wrong-voucher", 0) + 1
                    acknowledged.write(f"{v['voucher_id']} {answer['id']}\n")
                    acknowledged.flush()
                    stats["ok"] += 1
                    if stats["ok"] >= threshold:
                        enough.set()
                else:
                    slug = answer.get("type", "") if isinstance(answer, dict) else ""
                    key = f"{status} {slug}".strip()
                    stats["refused"][key] = stats["refused"].get(key, 0) + 1
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.threads)]
    started = time.monotonic()
    for t in threads:
        t.start()

    # The killer: SIGKILL once `threshold` redemptions are acknowledged, or after
    # --kill-after-seconds at the latest, whichever comes first.
    kill_deadline = started + a.kill_after_seconds
    while not enough.wait(0.02) and time.monotonic() < kill_deadline:
        if not any(t.is_alive() for t in threads):
            break
    with lock:
        snapshot = dict(sent=stats["sent"], ok=stats["ok"], answered=stats["answered"])
    if kill_pids:
        for pid in kill_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                print(f"  warning: pid {pid} was already gone at kill time")
        killed.set()
        stats["killed_at"] = time.monotonic() - started

    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + a.timeout + 5)
    stop.set()
    still = sum(t.is_alive() for t in threads)
    elapsed = time.monotonic() - started
    requested.close()
    acknowledged.close()

    if kill_pids:
        print(f"  kill -9 {' '.join(map(str, kill_pids))} at {stats['killed_at']:.2f} s: "
              f"{snapshot['sent']} requests sent, {snapshot['ok']} answered 201, "
              f"{snapshot['sent'] - snapshot['answered']} in flight")
    print(f"  load over after {elapsed:.2f} s: {stats['sent']} of {total} vouchers requested, "
          f"{stats['ok']} answered 201")
    if stats["refused"]:
        print(f"  other answers: {json.dumps(stats['refused'], sort_keys=True)}")
    if stats["errors"]:
        print(f"  connection errors (clients stopped): {json.dumps(stats['errors'], sort_keys=True)}")
    problems = []
    if stats["errors_before_kill"]:
        problems.append(f"{stats['errors_before_kill']} connection errors before the kill")
    if stats["refused"]:
        problems.append("answers other than 201 during the load")
    if still:
        problems.append(f"{still} client threads did not stop")
    if kill_pids and snapshot["ok"] >= total:
        problems.append("the load had finished before the kill")
    for p in problems:
        print(f"  LOAD PROBLEM: {p}")
    sys.exit(1 if problems else 0)


def read_lines(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.extend(line.split() for line in f if line.strip())
    return out


def cmd_check(a):
    requested_all = [r[0] for r in read_lines(a.requested)]
    acked_all = [(r[0], r[1]) for r in read_lines(a.acknowledged)]
    requested_round = [r[0] for r in read_lines([a.requested[-1]])]
    acked_round = {r[0]: r[1] for r in read_lines([a.acknowledged[-1]])}
    requested_set = set(requested_all)

    c = Client(a.port, 30)
    c.login(VENUE)
    stored = get_all(c, "/api/v1/redemptions")
    c.close()
    by_id = {str(r["id"]): r for r in stored}
    live_count = {}
    for r in stored:
        if r["cancelled_at"] is None:
            live_count[r["voucher_id"]] = live_count.get(r["voucher_id"], 0) + 1
    stored_vouchers = {r["voucher_id"] for r in stored}

    lost = [(v, rid) for v, rid in acked_all
            if rid not in by_id or by_id[rid]["voucher_id"] != v or by_id[rid]["cancelled_at"] is not None]
    unrequested = sorted(v for v in stored_vouchers if v not in requested_set)
    doubles = sorted(v for v, n in live_count.items() if n > 1)
    dup_requests = len(requested_all) - len(requested_set)

    round_stored = [v for v in set(requested_round) if v in stored_vouchers]
    in_flight_stored = [v for v in round_stored if v not in acked_round]
    print(f"  this round: requested {len(requested_round)}, acknowledged (201) {len(acked_round)}, "
          f"stored {len(round_stored)} (of which {len(in_flight_stored)} stored without a 201: "
          f"in flight at the kill), requested but not stored {len(set(requested_round)) - len(round_stored)}")
    print(f"  all rounds so far: requested {len(requested_all)}, acknowledged {len(acked_all)}, "
          f"stored redemptions (API, venue's list) {len(stored)}, live {sum(live_count.values())}")
    if dup_requests:
        print(f"  note: {dup_requests} vouchers were requested twice (the load should send each once)")

    verdicts = [
        ("(a) every redemption answered 201 is stored (same id, same voucher)", not lost,
         f"{len(lost)} lost: {lost[:10]}"),
        ("(b) every stored redemption's voucher was requested", not unrequested,
         f"{len(unrequested)} never requested: {unrequested[:10]}"),
        ("(c) no voucher has two live redemptions (API)", not doubles,
         f"{len(doubles)} vouchers: {doubles[:10]}"),
    ]
    if a.sql_dump:
        # psql -At -F ' ' of: SELECT id, voucher_id, cancelled_at IS NULL FROM redemptions
        sql = {r[0]: (r[1], r[2] == "t") for r in read_lines([a.sql_dump])}
        api = {str(r["id"]): (r["voucher_id"], r["cancelled_at"] is None) for r in stored}
        sql_live = {}
        for v, live in sql.values():
            if live:
                sql_live[v] = sql_live.get(v, 0) + 1
        sql_doubles = sorted(v for v, n in sql_live.items() if n > 1)
        diff = set(sql.items()) ^ set(api.items())
        verdicts.append(("(c') SQL: no voucher with two live rows; the table equals the API list",
                         not sql_doubles and not diff,
                         f"doubles {sql_doubles[:10]}, {len(diff)} rows differ: {sorted(diff)[:10]}"))
    ok = True
    for name, passed, detail in verdicts:
        print(f"  {'PASS' if passed else 'FAIL'}  {name}" + ("" if passed else f": {detail}"))
        ok = ok and passed
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("wait-ready")
    w.add_argument("--pid", type=int)
    w.add_argument("--timeout", type=float, default=90)

    i = sub.add_parser("issue")
    i.add_argument("--vouchers", type=int, required=True)
    i.add_argument("--tag", required=True)
    i.add_argument("--out", required=True)

    l = sub.add_parser("load")
    l.add_argument("--vouchers", required=True)
    l.add_argument("--requested", required=True)
    l.add_argument("--acknowledged", required=True)
    l.add_argument("--held-on", required=True)
    l.add_argument("--threads", type=int, default=16)
    l.add_argument("--timeout", type=float, default=10, help="per request, seconds")
    l.add_argument("--kill-pids", default="", help="comma-separated pids to SIGKILL mid-load")
    l.add_argument("--kill-at", type=float, default=0.4, help="fraction of vouchers answered 201")
    l.add_argument("--kill-after-seconds", type=float, default=60)
    l.add_argument("--max-seconds", type=float, default=120, help="the load stops by then")

    c = sub.add_parser("check")
    c.add_argument("--requested", action="append", required=True, help="repeat per round, this round last")
    c.add_argument("--acknowledged", action="append", required=True, help="repeat per round, this round last")
    c.add_argument("--sql-dump")

    a = p.parse_args()
    {"wait-ready": cmd_wait_ready, "issue": cmd_issue, "load": cmd_load, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
