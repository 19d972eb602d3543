"""The abuse benchmark of issue 17 (scripts/bench-abuse): what made-up HTTP
methods do to the server's memory and /metrics, and what a flood of bad
logins does to everyone else's requests. Starts release servers of its own
(`passnum serve --demo`, each with a throwaway embedded cluster), measures,
stops them, and writes the Markdown section to --out.

Every figure stands beside its limit in the same run: the memory a server
gains from as many ordinary requests, and `GET /api/v1/me` timed on the same
server with nothing else going on.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import string
import subprocess
import sys
import time
import urllib.request

DEMO_PASSWORD = "demo-passnum"
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------- the server


class Server:
    """`passnum serve --demo` on a free loopback port, with its own cluster."""

    def __init__(self, binary, directory, env=None):
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        environment.update(
            PASSNUM_ENV="development",
            PASSNUM_DATA_DIR=os.path.join(directory, "data"),
            PASSNUM_KEYS_DIR=os.path.join(directory, "keys"),
            PASSNUM_BIND=f"127.0.0.1:{self.port}",
            PASSNUM_PUBLIC_URL=self.url,
            RUST_LOG="warn",
        )
        environment.update(env or {})
        self.log = open(os.path.join(directory, "server.log"), "ab")
        self.process = subprocess.Popen(
            [binary, "serve", "--demo"], env=environment, stdout=self.log, stderr=self.log
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"passnum stopped before it was ready (see {directory}/server.log)")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        sys.exit("passnum was not ready within two minutes")

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def token(self, email):
        body = json.dumps({"email": email, "password": DEMO_PASSWORD}).encode()
        request = urllib.request.Request(
            self.url + "/api/v1/auth/token", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)["access_token"]

    def metrics_bytes(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:
            return len(r.read())

    def stop(self):
        self.process.send_signal(signal.SIGINT)  # the server stops its cluster
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ------------------------------------------------------ raw HTTP, cheaply


async def read_answer(reader):
    """Reads one HTTP/1.1 answer; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def hammer(port, requests, connections):
    """Sends the requests (raw bytes) over `connections` keep-alive
    connections; returns the count of each status."""
    queue = list(requests)
    counts = {}

    async def one_connection():
        reader = writer = None
        while queue:
            request = queue.pop()
            for _ in range(3):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(request)
                    await writer.drain()
                    status = await read_answer(reader)
                    counts[status] = counts.get(status, 0) + 1
                    break
                except (OSError, asyncio.IncompleteReadError):
                    # The server may close a connection after an error answer.
                    if writer is not None:
                        writer.close()
                    reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return counts


def request_bytes(method, path, headers=None, body=b""):
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def random_token(length):
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=length))


# ----------------------------------------------------- part 1: methods


def methods_part(binary, directory):
    server = Server(binary, os.path.join(directory, "methods"))
    try:
        def run(requests):
            started = time.time()
            counts = asyncio.run(hammer(server.port, requests, 16))
            return counts, time.time() - started

        ordinary = [request_bytes("GET", "/healthz") for _ in range(10_000)]
        run(ordinary)  # warm-up: buffers, pools, the allocator's arenas
        rss_start, metrics_start = server.rss_kib(), server.metrics_bytes()
        known_counts, known_s = run(ordinary)
        rss_known, metrics_known = server.rss_kib(), server.metrics_bytes()
        unique = [request_bytes("M" + random_token(15), "/healthz") for _ in range(10_000)]
        unique_counts, unique_s = run(unique)
        rss_unique, metrics_unique = server.rss_kib(), server.metrics_bytes()
        long = [request_bytes(random_token(30 * 1024), "/healthz") for _ in range(2_000)]
        long_counts, long_s = run(long)
        rss_long, metrics_long = server.rss_kib(), server.metrics_bytes()
        return {
            "rss_start": rss_start,
            "metrics_start": metrics_start,
            "known": (known_counts, known_s, rss_known, metrics_known),
            "unique": (unique_counts, unique_s, rss_unique, metrics_unique),
            "long": (long_counts, long_s, rss_long, metrics_long),
            "cpu": server.cpu_seconds(),
        }
    finally:
        server.stop()


# ------------------------------------------------------ part 2: logins


def sample_me(port, token, seconds, out):
    """`GET /api/v1/me` one after the other for `seconds`, 20 ms apart, on
    one keep-alive connection: (latency in ms, status) of each, into `out`."""

    async def run():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = request_bytes("GET", "/api/v1/me", {"authorization": f"Bearer {token}"})
        deadline = time.perf_counter() + seconds
        samples = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                writer.write(request)
                await writer.drain()
                status = await read_answer(reader)
            except (OSError, asyncio.IncompleteReadError):
                status = 0
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            samples.append(((time.perf_counter() - started) * 1000, status))
            await asyncio.sleep(max(0, 0.02 - (time.perf_counter() - started)))
        writer.close()
        return samples

    out.put(asyncio.run(run()))


def flood(port, seconds, concurrency, kind, out):
    """Requests, `concurrency` at a time, for `seconds`. `kind`: "healthz"
    (`GET /healthz`, the cheapest request there is), or bad logins, each for
    an e-mail nobody has, from one address ("one address") or each from an
    address of its own ("spread", the trusted proxy's `X-Forwarded-For`), so
    that throttling admits every one and each costs a password check."""

    async def run():
        counts, sent = {}, 0
        deadline = time.perf_counter() + seconds

        async def one_connection(n):
            nonlocal sent
            reader = writer = None
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                body = json.dumps({"email": f"nobody-{n}-{i}@example.org", "password": "wrong password"}).encode()
                headers = {"content-type": "application/json"}
                if kind == "spread":
                    headers["x-forwarded-for"] = f"10.{n % 250}.{i // 250 % 250}.{i % 250 + 1}"
                if kind == "healthz":
                    request = request_bytes("GET", "/healthz")
                else:
                    request = request_bytes("POST", "/api/v1/auth/token", headers, body)
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(request)
                    await writer.drain()
                    status = await read_answer(reader)
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                    writer = None
                counts[status] = counts.get(status, 0) + 1
                sent += 1
            if writer is not None:
                writer.close()

        await asyncio.gather(*(one_connection(n) for n in range(concurrency)))
        return counts, sent

    out.put(asyncio.run(run()))


def logins_part(binary, directory, seconds):
    server = Server(binary, os.path.join(directory, "logins"), {"PASSNUM_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        token = server.token("lieu@demo.passnum.test")
        results = {}
        for name, concurrency in (("idle", 0), ("healthz", 500), ("one address", 500), ("spread", 500)):
            me = multiprocessing.Queue()
            sampler = multiprocessing.Process(target=sample_me, args=(server.port, token, seconds, me))
            flooded = multiprocessing.Queue()
            flooder = None
            if concurrency:
                flooder = multiprocessing.Process(target=flood, args=(server.port, seconds + 1, concurrency, name, flooded))
                flooder.start()
                time.sleep(1)  # the flood is on before the first sample
            cpu_before = server.cpu_seconds()
            sampler.start()
            samples = me.get()
            sampler.join()
            logins = flooded.get() if flooder else ({}, 0)
            if flooder:
                flooder.join()
            results[name] = {
                "samples": samples,
                "logins": logins,
                "server_cpu": server.cpu_seconds() - cpu_before,
                "rss": server.rss_kib(),
            }
            time.sleep(2)
        return results
    finally:
        server.stop()


# ------------------------------------------------------------ Markdown


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def size(n):
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def statuses(counts):
    return ", ".join(f"{n} × {s or 'no answer'}" for s, n in sorted(counts.items()))


def markdown(m, logins, seconds, invocation, machine):
    out = []
    w = out.append
    w("## Abuse: made-up methods and login floods")
    w("")
    w(f"Written by `{invocation}` (scripts/bench-abuse, scripts/bench_abuse.py): release")
    w("servers of its own (`passnum serve --demo`, a throwaway embedded cluster each), clients")
    w("on raw sockets in Python. Do not edit between the markers: the script rewrites this section.")
    w("")
    w(machine)
    w("")
    w("### Made-up HTTP methods (issue 17, acceptance 2)")
    w("")
    w("A client may send any token as the method. Each was a label of the metrics of its own:")
    w("43,000 of them took a server from 30 to 133 MB. Now they share `method=\"other\"`.")
    w("Limit: the same number of ordinary requests (`GET /healthz`), after a warm-up of as many.")
    w("")
    w("| requests (16 connections) | answers | time | server RSS after | RSS growth | `/metrics` after |")
    w("|---|---|--:|--:|--:|--:|")
    w(f"| (after the warm-up of 10 000 `GET /healthz`) | | | {mib(m['rss_start'])} | | {size(m['metrics_start'])} |")
    previous = m["rss_start"]
    for key, what in (("known", "**limit**: 10 000 `GET /healthz`"),
                      ("unique", "10 000, each with a method of its own (16 random characters)"),
                      ("long", "2 000, each with a method of its own of 30 KiB")):
        counts, s, rss, metrics = m[key]
        w(f"| {what} | {statuses(counts)} | {s:.1f} s | {mib(rss)} | {(rss - previous) / 1024:+.1f} MiB | {size(metrics)} |")
        previous = rss
    growth = (m["unique"][2] - m["known"][2]) / 1024
    w("")
    w(f"10 000 unique methods grew the server by {growth:+.1f} MiB (the aim: under 5 MB) and left")
    w(f"`/metrics` at {size(m['unique'][3])} (the aim: under 64 KiB); 2 000 methods of 30 KiB, by")
    w(f"{(m['long'][2] - m['unique'][2]) / 1024:+.1f} MiB, `/metrics` then {size(m['long'][3])}.")
    w("")
    w(f"### A flood of bad logins (issue 17, acceptance 3)")
    w("")
    w(f"`GET /api/v1/me` with a venue's valid token, one after the other 20 ms apart for {seconds} s on")
    w("one connection, while 500 connections send bad logins (an unknown e-mail each, a new one")
    w("every time) as fast as they are answered. Limits: the same `GET /api/v1/me` with nothing else")
    w("going on, and while the 500 connections send `GET /healthz` as fast instead, the cheapest")
    w("request there is: what any flood of requests costs the others on this machine, so the ratio")
    w("to it is what logins cost beyond. \"One address\": every login from 127.0.0.1, so throttling soon answers 429 at once;")
    w("\"spread\": each login from an address of its own (`X-Forwarded-For`, the server trusting")
    w("127.0.0.1 as its proxy), so every one is admitted and waits for a password check: the")
    w("worst case, where the password queue answers 503 with `Retry-After` once it is full.")
    w("")
    w("| run | `/me` answers | p50 | p99 | max | p99 × idle | p99 × `/healthz` flood | requests of the flood (answers) | server CPU |")
    w("|---|---|--:|--:|--:|--:|--:|---|--:|")
    idle_p99 = percentile([ms for ms, _ in logins["idle"]["samples"]], 99)
    storm_p99 = percentile([ms for ms, _ in logins["healthz"]["samples"]], 99)
    for name, label in (("idle", "**limit**: nothing else"), ("healthz", "**limit**: 500 connections of `GET /healthz`"),
                        ("one address", "500 bad logins, one address"),
                        ("spread", "500 bad logins, spread addresses")):
        r = logins[name]
        latencies = [ms for ms, _ in r["samples"]]
        counts = {}
        for _, status in r["samples"]:
            counts[status] = counts.get(status, 0) + 1
        login_counts, sent = r["logins"]
        sent_text = f"{sent} ({statuses(login_counts)})" if sent else "none"
        w(f"| {label} | {statuses(counts)} | {statistics.median(latencies):.1f} ms | "
          f"{percentile(latencies, 99):.1f} ms | {max(latencies):.1f} ms | "
          f"{percentile(latencies, 99) / idle_p99:.1f}× | {percentile(latencies, 99) / storm_p99:.2f}× | {sent_text} | {r['server_cpu'] / seconds:.2f} cores |")
    floods = [(label, logins[name]) for name, label in (("one address", "from one address"), ("spread", "from spread addresses"))]
    all_200 = all(status == 200 for _, r in floods for _, status in r["samples"])
    p99s = ", ".join(f"{percentile([ms for ms, _ in r['samples']], 99):.1f} ms {label}" for label, r in floods)
    w("")
    w(f"During the floods of bad logins every `/me` answered {'200' if all_200 else 'not always 200 (see the table)'}; "
      f"p99: {p99s} (the aim: under 100 ms), beside {storm_p99:.1f} ms during the flood of `GET /healthz`.")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--invocation", default="./scripts/bench-abuse")
    parser.add_argument("--machine", default="")
    args = parser.parse_args()
    random.seed(17)
    m = methods_part(args.bin, args.dir)
    logins = logins_part(args.bin, args.dir, args.seconds)
    with open(args.out, "w") as f:
        f.write(markdown(m, logins, args.seconds, args.invocation, args.machine))


if __name__ == "__main__":
    main()
