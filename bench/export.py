"""Measuring and writing up scripts/bench-export (the statement export benchmark).

    export.py query LIVE_RS PROGRAM FROM TO TZ   the server's SELECT, parameters inlined
    export.py cpu SERVER POSTMASTER              CPU seconds so far, as JSON
    export.py rss PID OUT                        samples PID's VmRSS until SIGTERM; max kB to OUT
    export.py hwm PID                            VmHWM and VmRSS of PID, in kB
    export.py record KIND ...                    one run's JSON record (see cmd_record)
    export.py children POSTMASTER OUT            samples its children until SIGTERM; pids to OUT
    export.py perf DATA SERVER PGPIDS CLIENT     shares of CPU samples, as JSON
    export.py render RESULTS META                the Markdown section
"""
import collections, json, os, re, signal, statistics, subprocess, sys, time

TICK = os.sysconf("SC_CLK_TCK")


def cmd_query(live_rs, program, first, last, tz):
    """The QUERY constant of src/domain/statements/live.rs with its four
    parameters written in, so COPY runs exactly the SELECT the server runs."""
    text = open(live_rs).read()
    m = re.search(r'const QUERY: &str = "(.*?)";', text, re.S)
    if not m:
        sys.exit(f"no `const QUERY: &str = \"…\";` in {live_rs}")
    quote = lambda s: "'" + s.replace("'", "''") + "'"
    values = {"1": str(int(program)), "2": quote(first), "3": quote(last), "4": quote(tz)}
    query = re.sub(r"\$(\d+)", lambda p: values[p.group(1)], m.group(1))
    print(" ".join(query.split()))


def stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()  # fields from the 3rd (state) on


def cmd_cpu(server, postmaster):
    """Seconds of CPU so far: the server, PostgreSQL (the postmaster, its live
    children and those it reaped), the machine busy and in all; the wall clock."""
    f = stat_fields(server)
    srv = (int(f[11]) + int(f[12])) if f else 0
    pg = 0
    f = stat_fields(postmaster)
    if f:
        pg += sum(int(x) for x in f[11:15])
        for p in os.listdir("/proc"):
            if p.isdigit():
                c = stat_fields(p)
                if c and c[1] == postmaster:
                    pg += int(c[11]) + int(c[12])
    with open("/proc/stat") as st:
        v = [int(x) for x in st.readline().split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    total = busy + v[3] + v[4]
    print(json.dumps({"server": srv / TICK, "postgres": pg / TICK, "busy": busy / TICK,
                      "total": total / TICK, "wall": time.time()}))


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cmd_rss(pid, out):
    """Samples VmRSS every 10 ms until told to stop: a check on VmHWM."""
    peak, stop = 0, []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        try:
            peak = max(peak, status_kb(pid, "VmRSS"))
        except OSError:
            break
        time.sleep(0.01)
    with open(out, "w") as f:
        f.write(f"{peak}\n")


def cmd_hwm(pid):
    print(status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS"))


def children_cpu(path):
    """User + system seconds of the shell's waited-for children, from `times`."""
    total = 0.0
    for t in open(path).read().split("\n")[1].split():
        m = re.match(r"(\d+)m([\d.]+)s", t)
        total += int(m.group(1)) * 60 + float(m.group(2))
    return total


def cmd_record(kind, run, rows, nbytes, seconds, cpu0, cpu1, times0, times1, rss_before, hwm, sampled, status):
    a, b = json.load(open(cpu0)), json.load(open(cpu1))
    cpu = {k: b[k] - a[k] for k in ("server", "postgres", "busy", "total")}
    cpu["client"] = children_cpu(times1) - children_cpu(times0)
    cpu["wall"] = b["wall"] - a["wall"]
    print(json.dumps({
        "kind": kind, "run": int(run), "rows": int(rows), "bytes": int(nbytes),
        "seconds": float(seconds), "cpu": cpu, "status": status,
        "rss_before_kb": int(rss_before) if rss_before else None,
        "hwm_kb": int(hwm) if hwm else None, "sampled_kb": int(sampled) if sampled else None,
    }))


def cmd_children(postmaster, out):
    """The postmaster and every child seen every 20 ms (backends and parallel
    workers come and go) until told to stop: PostgreSQL's processes for perf."""
    seen, stop = {int(postmaster)}, []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        for p in os.listdir("/proc"):
            if p.isdigit() and (f := stat_fields(p)) and f[1] == postmaster:
                seen.add(int(p))
        time.sleep(0.02)
    with open(out, "w") as f:
        f.write(" ".join(map(str, sorted(seen))) + "\n")


def cmd_perf(data, server, pgpids_file, client):
    """Samples by process (server, PostgreSQL, client, other) and the server's
    and PostgreSQL's busiest functions, from `perf script`."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "pid,comm,ip,sym,dso"],
                         capture_output=True, text=True, errors="replace").stdout
    server = int(server)
    pgpids = set(map(int, open(pgpids_file).read().split()))
    procs = collections.Counter()
    syms = {"server": collections.Counter(), "postgres": collections.Counter()}
    sample = re.compile(r"^\s*(.+?)\s+(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
    for line in out.splitlines():
        m = sample.match(line)
        if not m:
            continue
        comm, pid, sym, dso = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if pid == 0:
            who = "idle"
        elif pid == server:
            who = "server"
        elif pid in pgpids:
            who = "postgres"
        elif comm == client:
            who = "client"
        else:
            who = "other"
        procs[who] += 1
        if who in syms:
            sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)  # Rust's symbol hash
            syms[who][f"{sym} ({os.path.basename(dso)})"] += 1
    procs.pop("idle", None)  # -a samples idle CPUs too
    json.dump({"samples": sum(procs.values()), "procs": dict(procs),
               "server_top": syms["server"].most_common(15),
               "postgres_top": syms["postgres"].most_common(10)}, sys.stdout)


# ------------------------------------------------------------------ render

def sig3(x):
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:#.3g}".rstrip(".")


def spaced(n):
    return f"{n:,.0f}".replace(",", " ")


def cmd_render(results, meta_path):
    meta = json.load(open(meta_path))
    rows = [json.loads(line) for line in open(results)]
    http = [r for r in rows if r["kind"] == "http"]
    copy = [r for r in rows if r["kind"] == "copy"]
    out = []
    p = out.append

    def rate(r):
        return r["rows"] / r["seconds"]

    def mbps(r):
        return r["bytes"] / r["seconds"] / 1e6

    def median(rs, f):
        return statistics.median(f(r) for r in rs) if rs else float("nan")

    p("## Statement export")
    p("")
    p(f"Written by `{meta['invocation']}`, which runs `scripts/bench-export`: the release server")
    p("(`passnum serve --demo`, `RUST_LOG=warn`) on a throwaway embedded cluster (durable: `fsync`")
    p(f"and `synchronous_commit` on, PostgreSQL's default `work_mem`), then `scripts/seed-bulk-redemptions`")
    p(f"adds a programme of {spaced(meta['redemptions'])} redemptions (by hand, on a development database:")
    p("`passnum serve --demo`, then `./scripts/seed-bulk-redemptions [--redemptions N] [--data-dir DIR]`;")
    p("its vouchers' `code` is a placeholder, so they do not scan). The same statement is then read")
    p(f"{meta['runs']} times each way, the two ways taking turns: the live statement CSV over HTTP from")
    p("127.0.0.1 (`GET /api/v1/programs/{id}/statement` with `Accept: text/csv`, the funder's token,")
    p("`curl -o /dev/null`), and psql running `COPY (…) TO STDOUT (FORMAT csv, DELIMITER ';', HEADER)` on the")
    p("cluster's Unix socket, output to `/dev/null`, where `…` is the server's own SELECT")
    p("(`QUERY` in `src/domain/statements/live.rs`, read from the source at run time, its parameters")
    p("written in). Times are wall clock, from starting the client to its exit. Peak memory is the")
    p("server's `VmHWM`, reset (`echo 5 > /proc/PID/clear_refs`) before each run, checked against")
    p("`VmRSS` sampled every 10 ms. Do not edit between the markers: the script rewrites this section.")
    p("")
    out.extend(meta["machine"])
    p("")
    p(f"Rows per statement: {spaced(meta['rows'])} (and the header). "
      f"Bytes: {spaced(meta['http_bytes'])} over HTTP (the statement CSV: BOM, `;`, CRLF, RFC 3339 UTC times), "
      f"{spaced(meta['copy_bytes'])} from COPY (PostgreSQL's text for the same values). "
      f"A download checked before the timed runs had {spaced(meta['checked_lines'])} lines after the header, "
      f"the header the contract's.")
    p("")
    p("| run | way | seconds | rows/s | MB/s | server peak RSS MiB (sampled) | server CPU s | PostgreSQL CPU s | client CPU s | other CPU s |")
    p("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        c = r["cpu"]
        other = max(c["busy"] - c["server"] - c["postgres"] - c["client"], 0)
        way = "HTTP CSV" if r["kind"] == "http" else "`COPY` to psql"
        rss = "–"
        if r["hwm_kb"]:
            rss = f"{r['hwm_kb'] / 1024:.1f} ({r['sampled_kb'] / 1024:.1f})"
        p(f"| {r['run']} | {way} | {r['seconds']:.2f} | {spaced(rate(r))} | {mbps(r):.1f} | {rss} "
          f"| {c['server']:.2f} | {c['postgres']:.2f} | {c['client']:.2f} | {other:.2f} |")
    p("")
    h_rate, c_rate = median(http, rate), median(copy, rate)
    h_mb, c_mb = median(http, mbps), median(copy, mbps)
    ratio = h_rate / c_rate
    peak = max(r["hwm_kb"] for r in http) / 1024
    sampled = max(r["sampled_kb"] for r in http) / 1024
    before = min(r["rss_before_kb"] for r in http) / 1024
    p("| way (median of the runs) | rows/s | MB/s | ÷ `COPY` rows/s |")
    p("|---|--:|--:|--:|")
    p(f"| **limit**: `COPY (same SELECT) TO STDOUT`, psql | {spaced(c_rate)} | {c_mb:.1f} | 1× |")
    p(f"| live statement CSV over HTTP | **{spaced(h_rate)}** | {h_mb:.1f} | **{ratio:.2f}×** |")
    p("")
    def cpu(rs, key):
        return median(rs, lambda r: r["cpu"][key])

    h_cpu = {k: cpu(http, k) for k in ("server", "postgres", "client")}
    c_cpu = {k: cpu(copy, k) for k in ("postgres", "client")}
    h_total, c_total = sum(h_cpu.values()), sum(c_cpu.values())
    p(f"CPU per statement (medians), which the rest of the machine's load moves far less than the "
      f"wall clock: over HTTP, the server {h_cpu['server']:.2f} s, PostgreSQL {h_cpu['postgres']:.2f} s "
      f"and curl {h_cpu['client']:.2f} s, {h_total:.2f} s in all; through `COPY`, PostgreSQL "
      f"{c_cpu['postgres']:.2f} s and psql {c_cpu['client']:.2f} s, {c_total:.2f} s in all: the HTTP way "
      f"costs {h_total / c_total:.2f}× the CPU of `COPY`.")
    p("")
    rate_ok = ratio >= meta["aim_ratio"]
    rss_ok = peak < meta["aim_rss_mib"]
    added = max((r["hwm_kb"] - r["rss_before_kb"]) for r in http) / 1024
    p(f"**Aim** (at least {meta['aim_ratio']:g}× the `COPY` rate, server memory under {meta['aim_rss_mib']:g} MiB): "
      f"rate **{'met' if rate_ok else 'missed'}** ({ratio:.2f}×), memory **{'met' if rss_ok else 'missed'}** "
      f"(peak {peak:.1f} MiB over all HTTP runs, {sampled:.1f} MiB sampled).")
    p("")
    p(f"Memory: the server held {meta['rss_started_kb'] / 1024:.1f} MiB once started and seeded, "
      f"{meta['rss_logged_in_kb'] / 1024:.1f} MiB after the funder's one login (before any export), "
      f"{before:.1f} MiB at the start of the runs; streaming a whole statement added at most "
      f"{added:.1f} MiB to that.")
    perf = meta.get("perf")
    if perf and perf.get("samples"):
        p("")
        p("### Where the time goes")
        p("")
        p(f"`perf record -a -e cpu-clock -F 999` over the whole machine during an extra HTTP export "
          f"({perf['seconds']:.1f} s, {spaced(perf['samples'])} samples): share of the samples by process.")
        p("")
        p("| process | share of samples |")
        p("|---|--:|")
        names = {"server": "`passnum serve`", "postgres": "PostgreSQL (postmaster, backends, parallel workers)", "client": "curl",
                 "other": "other processes, idle excluded"}
        for key in ("server", "postgres", "client", "other"):
            p(f"| {names[key]} | {perf['procs'].get(key, 0) / perf['samples']:.1%} |")
        srv = perf["procs"].get("server", 0)
        if srv:
            p("")
            p("Busiest functions inside `passnum serve` (share of its samples):")
            p("")
            p("| function (object) | share |")
            p("|---|--:|")
            for sym, n in perf["server_top"]:
                p(f"| `{sym.replace('|', '/')}` | {n / srv:.0%} |")
        pg = perf["procs"].get("postgres", 0)
        if pg:
            p("")
            p("Busiest functions inside PostgreSQL (share of its samples):")
            p("")
            p("| function (object) | share |")
            p("|---|--:|")
            for sym, n in perf["postgres_top"]:
                p(f"| `{sym.replace('|', '/')}` | {n / pg:.0%} |")
    elif meta.get("perf_note"):
        p("")
        p(f"No profile: {meta['perf_note']}.")
    if meta.get("findings"):
        p("")
        p(meta["findings"])
    print("\n".join(out))


COMMANDS = {"query": cmd_query, "cpu": cmd_cpu, "rss": cmd_rss, "hwm": cmd_hwm, "record": cmd_record,
            "children": cmd_children, "perf": cmd_perf, "render": cmd_render}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
