#!/usr/bin/env python3
"""HTTP side of scripts/ha-test and scripts/backup-test. Standard library only.

Subcommands:
  wait-ready  poll /readyz on a port until 200
  issue       as the demo issuer, issue books of 10; write the vouchers (JSON lines)
  load        as the demo venues, redeem vouchers through several instances until
              a stop file appears, as a careful scanner app does: each voucher
              under one Idempotency-Key, retried on 503 or a lost connection
              (on the next instance, after Retry-After) until it gets an answer;
              every attempt is logged (JSON lines) with its times
  report      from a load log and an events file: answers, and for each event
              how long the service did not acknowledge redemptions
  check       compare the acknowledged redemptions of load logs with an SQL
              dump (`id voucher_id live` lines) of the database that survived
  close       as the demo funder, close a statement up to today; save the CSV of
              the whole and of each venue's extract with their kid and signature
  compare     download the saved statements again and compare them byte for byte
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid

PASSWORD = "demo-passnum"
ISSUER = "prescripteur@demo.passnum.test"
FUNDER = "financeur@demo.passnum.test"
VENUES = ["lieu@demo.passnum.test", "lieu2@demo.passnum.test"]


class Client:
    """One keep-alive HTTP/1.1 connection to an instance on the loopback."""

    def __init__(self, port, timeout):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.token = None
        self.used = False

    def call(self, method, path, body=None, headers=None, raw=False):
        h = {"accept": "application/json"}
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["content-type"] = "application/json"
        if self.token:
            h["authorization"] = "Bearer " + self.token
        try:
            try:
                self.conn.request(method, path, body=data, headers=h)
                resp = self.conn.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                if not self.used:
                    raise
                # A kept-alive connection the server closed while idle (its
                # keep-alive timeout): nothing was processed; send again once.
                self.conn.close()
                self.conn.request(method, path, body=data, headers=h)
                resp = self.conn.getresponse()
            payload = resp.read()
            self.used = True
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next call reconnects
            self.used = False
            raise
        if resp.getheader("connection", "").lower() == "close":
            self.conn.close()
            self.used = False
        if raw:
            return resp.status, payload, resp
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return resp.status, parsed, resp

    def login(self, email):
        for _ in range(30):  # a database switching over answers 503 for a few seconds
            status, body, _ = self.call("POST", "/api/v1/auth/token", {"email": email, "password": PASSWORD})
            if status != 503:
                break
            time.sleep(1)
        if status != 200:
            fail(f"login as {email} on port {self.port} failed: {status} {body}")
        self.token = body["access_token"]


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def cmd_wait_ready(a):
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = Client(a.port, 2).call("GET", "/readyz")
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    fail(f"/readyz on port {a.port} did not answer 200 within {a.timeout} s")


def demo_program(c):
    status, body, _ = c.call("GET", "/api/v1/programs")
    if status != 200 or not body["items"]:
        fail(f"no demo programme: {status} {body}")
    return body["items"][0]["id"]


def cmd_issue(a):
    c = Client(a.port, 30)
    c.login(ISSUER)
    program_id = demo_program(c)
    with open(a.out, "w") as out:
        for n in range(a.vouchers // 10):
            book = {"program_id": program_id, "size": 10,
                    "beneficiary": {"reference": f"OPS-{a.tag}-{n + 1}", "postcode": "67000"}}
            status, body, _ = c.call("POST", "/api/v1/books", book)
            if status != 201:
                fail(f"issuing book {n + 1}: {status} {body}")
            for v in body["vouchers"]:
                out.write(json.dumps({"voucher_id": v["voucher_id"], "code": v["code"]}) + "\n")


def cmd_load(a):
    vouchers = [json.loads(line) for line in open(a.vouchers)][a.skip:]
    if a.count:
        vouchers = vouchers[:a.count]
    ports = [int(p) for p in a.ports.split(",")]
    tokens = {}
    for venue in VENUES:
        c = Client(ports[0], 30)
        c.login(venue)
        tokens[venue] = c.token
    lock = threading.Lock()
    log = open(a.log, "a")
    queue = list(enumerate(vouchers))
    queue.reverse()
    workshop = {"theme": "online_procedures", "held_on": a.held_on, "duration_minutes": 60}
    started = time.time()

    def stopped():
        return a.stop_file and os.path.exists(a.stop_file)

    def record(entry):
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def worker(n):
        clients = {p: Client(p, a.timeout) for p in ports}
        turn = n
        while True:
            with lock:
                if not queue or stopped():
                    return
                i, v = queue.pop()
            venue = VENUES[i % len(VENUES)]
            key = str(uuid.uuid4())
            body = {"code": v["code"], "workshop": workshop}
            first = time.time()
            attempt = 0
            while True:
                attempt += 1
                port = ports[turn % len(ports)]
                c = clients[port]
                c.token = tokens[venue]
                entry = {"voucher_id": v["voucher_id"], "venue": venue, "port": port, "attempt": attempt,
                         "key": key, "sent": time.time()}
                retry_after = 0.2
                try:
                    status, answer, resp = c.call("POST", "/api/v1/redemptions", body, {"idempotency-key": key})
                    entry.update(done=time.time(), status=status)
                    if status == 201:
                        entry["redemption_id"] = answer["id"]
                        entry["replayed"] = resp.getheader("idempotent-replayed") == "true"
                    elif isinstance(answer, dict):
                        entry["problem"] = answer.get("type")
                    if status == 503:
                        retry_after = min(float(resp.getheader("retry-after") or 1), 2.0)
                except (OSError, http.client.HTTPException) as e:
                    status = None
                    entry.update(done=time.time(), error=type(e).__name__)
                record(entry)
                if status is not None and status != 503:
                    break
                if time.time() - first > a.give_up:
                    record({"voucher_id": v["voucher_id"], "key": key, "gave_up": True, "sent": time.time()})
                    break
                turn += 1  # the next attempt goes to the other instance
                time.sleep(retry_after)
            if a.pause:
                time.sleep(a.pause)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=a.max_seconds)
    log.close()
    entries = [json.loads(line) for line in open(a.log)]
    print(f"  load: {sum(1 for e in entries if e.get('status') == 201)} acknowledged (201) "
          f"in {time.time() - started:.1f} s through ports {a.ports}")
    if any(t.is_alive() for t in threads):
        fail("client threads did not stop")


def read_log(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def cmd_report(a):
    entries = read_log(a.log)
    events = [line.split(None, 1) for line in open(a.events) if line.strip()]
    answers = {}
    for e in entries:
        key = str(e.get("status") or e.get("error") or ("gave up" if e.get("gave_up") else "?"))
        answers[key] = answers.get(key, 0) + 1
    print(f"  attempts by answer: {json.dumps(answers, sort_keys=True)}")
    oks = sorted(e["done"] for e in entries if e.get("status") == 201)
    failures = sorted(e["done"] for e in entries if e.get("status") == 503 or e.get("error"))
    worst = 0.0
    for i, (at, name) in enumerate(events):
        at = float(at)
        end = float(events[i + 1][0]) if i + 1 < len(events) else float("inf")
        window = [t for t in failures if at <= t < end]
        if not window:
            print(f"  {name.strip()}: no request failed; longest wait for an answer "
                  f"{max((e['done'] - e['sent'] for e in entries if at <= e['sent'] < end and 'done' in e), default=0):.1f} s")
            continue
        last_failure = window[-1]
        back = next((t for t in oks if t > last_failure), None)
        if back is None:
            print(f"  {name.strip()}: FAIL the service never acknowledged a redemption again")
            worst = float("inf")
            continue
        # From the event to the first acknowledgement after its last failure.
        down = back - at
        worst = max(worst, down)
        print(f"  {name.strip()}: {len(window)} attempts answered 503 or cut; acknowledging again "
              f"{down:.1f} s after the event (first failure at +{window[0] - at:.1f} s)")
    if worst > a.limit:
        print(f"  FAIL  the service took more than {a.limit:.0f} s to answer again")
        sys.exit(1)
    print(f"  PASS  the service answered again within {a.limit:.0f} s of each event")


def cmd_check(a):
    entries = read_log(a.log)
    acked = {}
    for e in entries:
        if e.get("status") == 201:
            if e["voucher_id"] in acked and acked[e["voucher_id"]] != e["redemption_id"]:
                print(f"  FAIL  voucher {e['voucher_id']} acknowledged as two redemptions")
                sys.exit(1)
            acked[e["voucher_id"]] = e["redemption_id"]
    wrong = [e for e in entries if e.get("status") not in (None, 201, 503)]
    gave_up = [e for e in entries if e.get("gave_up")]
    rows = [line.split() for line in open(a.sql_dump) if line.strip()]
    stored = {r[0]: (r[1], r[2] == "t") for r in rows}
    live = {}
    for rid, (voucher, is_live) in stored.items():
        if is_live:
            live.setdefault(voucher, []).append(rid)
    doubles = {v: ids for v, ids in live.items() if len(ids) > 1}
    lost = [(v, rid) for v, rid in acked.items() if stored.get(str(rid)) != (v, True)]
    requested = {e["voucher_id"] for e in entries}
    absent = read_log(a.absent) if a.absent else []
    requested |= {e["voucher_id"] for e in absent}
    after_target = [(e["voucher_id"], e["redemption_id"]) for e in absent if e.get("status") == 201]
    resurrected = [(v, rid) for v, rid in after_target if str(rid) in stored or v in live]
    unrequested = [v for v in live if v not in requested]
    unanswered = [v for v in live if v in requested and v not in acked]
    print(f"  acknowledged {len(acked)}, stored (live) {sum(len(ids) for ids in live.values())}, "
          f"lost {len(lost)}, doubles {len(doubles)}, stored without an acknowledgement {len(unanswered)}, "
          f"gave up {len(gave_up)}, wrong answers {len(wrong)}")
    verdicts = [
        ("every redemption answered 201 is stored on the surviving primary", not lost, f"{lost[:10]}"),
        ("no voucher has two live redemptions", not doubles, f"{list(doubles.items())[:10]}"),
        ("no answer other than 201 or 503 (a retry never met already-redeemed)", not wrong,
         f"{[(e['voucher_id'], e.get('status'), e.get('problem')) for e in wrong[:10]]}"),
        ("every voucher requested was acknowledged in the end", not gave_up, f"{len(gave_up)} gave up"),
        ("every stored redemption was requested", not unrequested, f"{unrequested[:10]}"),
    ]
    if a.absent:
        verdicts.append((f"none of the {len(after_target)} redemptions committed after the target is there",
                         not resurrected, f"{resurrected[:10]}"))
    ok = True
    for name, passed, detail in verdicts:
        print(f"  {'PASS' if passed else 'FAIL'}  {name}" + ("" if passed else f": {detail}"))
        ok = ok and passed
    sys.exit(0 if ok else 1)


def cmd_close(a):
    c = Client(a.port, 60)
    c.login(FUNDER)
    program_id = demo_program(c)
    status, body, _ = c.call("POST", f"/api/v1/programs/{program_id}/statements", {"period_end": a.period_end})
    if status != 201:
        fail(f"closing the statement: {status} {body}")
    os.makedirs(a.out_dir, exist_ok=True)
    files = [("whole", c, FUNDER)]
    for venue in VENUES:
        v = Client(a.port, 60)
        v.login(venue)
        files.append((venue.split("@")[0], v, venue))
    with open(os.path.join(a.out_dir, "statements.txt"), "a") as index:
        for name, client, user in files:
            status, summary, _ = client.call("GET", f"/api/v1/statements/{body['id']}")
            if status != 200:
                fail(f"statement {body['id']} for {name}: {status} {summary}")
            status, csv, _ = client.call("GET", f"/api/v1/statements/{body['id']}/csv", raw=True)
            if status != 200:
                fail(f"statement {body['id']} CSV for {name}: {status}")
            path = os.path.join(a.out_dir, f"statement-{body['id']}-{name}.csv")
            with open(path, "wb") as f:
                f.write(csv)
            index.write(f"{path} {summary['kid']} {summary['signature']} {body['id']} {user}\n")
    print(f"  statement {body['number']} closed up to {a.period_end}: {body['total_count']} redemptions, "
          f"{body['total_cents']} cents, {len(body['venues'])} venue extracts")


def cmd_compare(a):
    """Each saved statement file, downloaded again (from a restored server), byte for byte."""
    ok = True
    for line in open(a.index):
        path, _kid, _sig, statement_id, user = line.split()
        c = Client(a.port, 60)
        c.login(user)
        status, csv, _ = c.call("GET", f"/api/v1/statements/{statement_id}/csv", raw=True)
        same = status == 200 and csv == open(path, "rb").read()
        print(f"  {'PASS' if same else 'FAIL'}  statement {statement_id} as {user}: "
              f"{'the same bytes as before the restore' if same else f'{status}, the bytes differ'}")
        ok = ok and same
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("wait-ready")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--timeout", type=float, default=90)

    i = sub.add_parser("issue")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--vouchers", type=int, required=True)
    i.add_argument("--tag", required=True)
    i.add_argument("--out", required=True)

    l = sub.add_parser("load")
    l.add_argument("--ports", required=True, help="comma-separated instance ports")
    l.add_argument("--vouchers", required=True)
    l.add_argument("--skip", type=int, default=0, help="vouchers of the file to leave out first")
    l.add_argument("--count", type=int, default=0, help="redeem this many (0: all)")
    l.add_argument("--log", required=True)
    l.add_argument("--held-on", required=True)
    l.add_argument("--stop-file", default="")
    l.add_argument("--threads", type=int, default=4)
    l.add_argument("--pause", type=float, default=0.0, help="seconds each client waits between vouchers")
    l.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    l.add_argument("--give-up", type=float, default=90, help="seconds of retries for one voucher")
    l.add_argument("--max-seconds", type=float, default=600)

    r = sub.add_parser("report")
    r.add_argument("--log", action="append", required=True)
    r.add_argument("--events", required=True, help="lines of 'epoch-seconds name'")
    r.add_argument("--limit", type=float, default=30)

    c = sub.add_parser("check")
    c.add_argument("--log", action="append", required=True)
    c.add_argument("--sql-dump", required=True)
    c.add_argument("--absent", action="append", default=[],
                   help="load logs whose redemptions must not be stored (after a restore target)")

    s = sub.add_parser("close")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--period-end", required=True)
    s.add_argument("--out-dir", required=True)

    m = sub.add_parser("compare")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--index", required=True, help="the statements.txt that close wrote")

    a = p.parse_args()
    {"wait-ready": cmd_wait_ready, "issue": cmd_issue, "load": cmd_load, "report": cmd_report,
     "check": cmd_check, "close": cmd_close, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
