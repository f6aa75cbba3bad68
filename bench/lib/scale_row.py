#!/usr/bin/env python3
"""One row of bench/scale.sh: start failoverdns, time its start, then fail a
node's listener ROUNDS times and time each service's failover.

    scale_row.py config ROW.json                      write the row's config
    scale_row.py run ROW.json OUT.json -- CMD [ARG...]  measure it
    scale_row.py report OUT.json...                   table and verdicts

ROW.json (written by bench/scale.sh) says: dir, services, own (each service
has its own three nodes, else all share three), dns and http ports, the
check port, the interval of the nodes nobody fails (own rows), rounds.

Nodes answer 127.x addresses; a node that is failed has its own listener,
held by this process (so the moment it closes is known); the others are
probed at listeners of bench/lib/accept.py (their check target). Every
address is in 127.0.0.0/8.
"""
import json
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import time

ZONE = "scale.test."
INTERVAL = 0.2  # the probe interval of the nodes a round fails (write_config)


def node_addr(i, own):
    # Shared nodes: 127.0.40.1-3. Own nodes: 127.1.0.0 upwards.
    if not own:
        return "127.0.40.%d" % (i + 1)
    return "127.%d.%d.%d" % (1 + (i >> 16), (i >> 8) & 255, i & 255)


POOL = ["127.0.41.%d" % k for k in range(1, 17)]


def failed_nodes(row):
    """The nodes whose listener this process holds and closes: the first
    node of the first service and, with own nodes, of the last."""
    if row["services"] == 0:
        return []
    if not row["own"]:
        return [0]
    return sorted({0, 3 * (row["services"] - 1)})


def listeners(row):
    """Addresses of the listeners accept.py keeps (everything not failed)."""
    port = row["check_port"]
    if not row["own"]:
        return ["%s:%d" % (node_addr(i, False), port) for i in (1, 2)]
    return ["%s:%d" % (a, port) for a in POOL] + [
        "%s:%d" % (node_addr(i + 1, True), port) for i in failed_nodes(row)
    ]


def write_config(row):
    d, n, own = row["dir"], row["services"], row["own"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "scale.test.zone"), "w") as f:
        f.write("$ORIGIN scale.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n")
    nodes = 3 * n if own else 3
    # Own rows: the failed nodes and the one after each (which the service
    # fails over to) are probed at their own listeners every 200ms; the
    # others at the pool, every row["other_interval"].
    close = set()
    for i in failed_nodes(row):
        close.update((i, i + 1))
    out = [
        "[server]\nlisten = [\"127.0.0.1:%d\"]\nhttp = \"127.0.0.1:%d\"\nstate_dir = \"state\"\n\n" % (row["dns_port"], row["http_port"]),
        "[[zone]]\norigin = \"%s\"\nfile = \"scale.test.zone\"\n\n" % ZONE,
    ]
    for i in range(nodes):
        target, interval = "", "%dms" % round(INTERVAL * 1000)
        if own and i not in close:
            target, interval = POOL[i % len(POOL)], row["other_interval"]
        out.append("[[node]]\nname = \"n%d\"\naddress = \"%s\"\n[node.check]\ntype = \"tcp\"\nport = %d\n" % (i, node_addr(i, own), row["check_port"]))
        if target:
            out.append("target = \"%s\"\n" % target)
        out.append("interval = \"%s\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2\n\n" % interval)
    for s in range(n):
        a = 3 * s if own else 0
        out.append("[[service]]\nname = \"s%d.%s\"\nttl = 30\nnodes = [\"n%d\", \"n%d\", \"n%d\"]\nfailback = \"auto\"\nfailback_after = \"1s\"\n\n" % (s, ZONE, a, a + 1, a + 2))
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write("".join(out))


def query(qid, name, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n >= 0xC0:
            return i + 2
        i += n + 1


def answer(m):
    """(id, rcode, first A address or None) of a reply."""
    qid, flags, qd, an = struct.unpack(">HHHH", m[:8])
    i = 12
    for _ in range(qd):
        i = skip_name(m, i) + 4
    for _ in range(an):
        i = skip_name(m, i)
        t, _, _, rdlen = struct.unpack(">HHIH", m[i:i + 10])
        i += 10
        if t == 1 and rdlen == 4:
            return qid, flags & 15, socket.inet_ntoa(m[i:i + 4])
        i += rdlen
    return qid, flags & 15, None


class Bench:
    def __init__(self, row):
        self.row = row
        self.sel = selectors.DefaultSelector()
        self.held = {}  # node index -> listening socket
        self.dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dns.setblocking(False)
        self.dns.connect(("127.0.0.1", row["dns_port"]))
        self.sel.register(self.dns, selectors.EVENT_READ, "dns")
        self.qid = 0
        self.asked = {}  # qid -> name
        self.seen = {}  # name -> last A answered
        self.probed = {}  # node index -> when its listener last accepted

    def listen(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((node_addr(i, self.row["own"]), self.row["check_port"]))
        s.listen(512)
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, ("listen", i))
        self.held[i] = s

    def stop(self, i):
        s = self.held.pop(i)
        self.sel.unregister(s)
        s.close()

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            if key.data != "dns":
                try:
                    while True:
                        c, _ = key.fileobj.accept()
                        c.close()
                        self.probed[key.data[1]] = time.monotonic()
                except OSError:
                    pass
                continue
            try:
                while True:
                    m = self.dns.recv(4096)
                    qid, rcode, a = answer(m)
                    name = self.asked.pop(qid, None)
                    if name is not None and rcode == 0:
                        self.seen[name] = a
            except (BlockingIOError, ConnectionRefusedError):
                pass

    def ask(self, name):
        self.qid = (self.qid + 1) & 0xFFFF
        self.asked[self.qid] = name
        try:
            self.dns.send(query(self.qid, name))
        except (BlockingIOError, ConnectionRefusedError):
            pass

    def wait(self, want, limit, every=0.002):
        """Poll until each name answers its address in want; the seconds
        from now at which each first did, or None past limit."""
        t0 = time.monotonic()
        got = {}
        self.seen = {}
        nxt = t0
        while len(got) < len(want):
            now = time.monotonic()
            if now - t0 > limit:
                return None
            if now >= nxt:
                for name in want:
                    if name not in got:
                        self.ask(name)
                nxt = now + every
            self.pump(max(0.0, min(every, nxt - time.monotonic())))
            now = time.monotonic()
            for name, a in want.items():
                if name not in got and self.seen.get(name) == a:
                    got[name] = now - t0
        return got


def recomputes(path, offset):
    """The "recomputed" lines the server logged after offset: (seconds,
    services decided, views changed, seconds until published) each, and
    the new offset. (Not from
    /metrics: gathering 300,000 series at 100,000 services costs seconds
    of CPU, which would land on the measurement.)"""
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if b'"msg":"recomputed"' not in line:
            continue
        try:
            j = json.loads(line)
            out.append((j["seconds"], j["services"], j["views_changed"], j.get("published_seconds", float("nan"))))
        except (ValueError, KeyError):
            pass
    return out, offset + end


def quiet(b, paths, secs, limit):
    """Pump until none of the files at paths (those that exist) has changed
    for secs (at most limit)."""
    end = time.monotonic() + limit
    seen, since = None, time.monotonic()
    while time.monotonic() < end:
        now = []
        for p in paths:
            try:
                st = os.stat(p)
                now.append((st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                now.append(None)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= secs:
            return
        b.pump(0.05)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(row, out, cmd):
    n, own = row["services"], row["own"]
    b = Bench(row)
    for i in failed_nodes(row):
        b.listen(i)
    first, last = "s0." + ZONE, "s%d.%s" % (max(n - 1, 0), ZONE)
    res = {"services": n, "own": own, "nodes": 3 * n if own else 3}
    t0 = time.monotonic()
    log = os.path.join(row["dir"], "log")
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=row["dir"])
    try:
        if n == 0:
            want = {}
            deadline = t0 + 120
            while time.monotonic() < deadline:
                b.qid = (b.qid + 1) & 0xFFFF
                b.asked[b.qid] = ZONE
                try:
                    b.dns.send(query(b.qid, ZONE, 6))
                except OSError:
                    pass
                b.seen = {}
                b.pump(0.002)
                if ZONE in b.seen:
                    break
            else:
                raise SystemExit("scale_row.py: the empty server does not answer")
        else:
            addr = lambda i: node_addr(i, own)
            want = {last: addr(3 * (n - 1) if own else 0), first: addr(0)}
            if b.wait({last: want[last]}, 300) is None:
                raise SystemExit("scale_row.py: %s does not answer %s within 300s" % (last, want[last]))
        res["start_ms"] = (time.monotonic() - t0) * 1000
        res["rss_first_kb"] = rss_kb(proc.pid)
        # Settle: the post-start collection hands the load's garbage back.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            b.pump(0.05)
        res["rss_kb"] = rss_kb(proc.pid)
        res["first_ms"], res["last_ms"], res["recompute_ms"], res["publish_ms"], res["recomputes"] = [], [], [], [], []
        for rnd in range(row["rounds"] if n else 0):
            before = {first: addr(0), last: addr(3 * (n - 1) if own else 0)}
            after = {first: addr(1), last: addr(3 * (n - 1) + 1 if own else 1)}
            if b.wait(before, 60) is None:
                raise SystemExit("scale_row.py: round %d: the services do not answer their first node" % rnd)
            # The fail-back's recompute logs, counts and records its
            # changes after the answers (and 100,000 of them take a
            # while), and the event history writes them to state_dir a
            # second later (zones/events: 20,000 JSON lines, sometimes a
            # rewrite of the file): start when the log and the history
            # have been quiet for a second, so each round measures a
            # failover of an idle server.
            quiet(b, [log, os.path.join(row["dir"], "state", "events.log")], 1.0, 60)
            # The same point of the probe cycle in every row: round r
            # closes the listener (r + 0.5) / rounds of 0.8 interval after
            # a probe of the first node connected, so rows differ by what
            # the server does, not by where in the cycle each round fell
            # (a random point moves a median of 5 by +-30 ms). Not later:
            # the next probe may come 0.85 interval after the last
            # (health/prober.go: -10 % jitter, a twentieth of batching
            # slack), and a close after it costs a whole interval more.
            probe = b.probed.get(0, 0.0)
            end = time.monotonic() + 5
            while b.probed.get(0, 0.0) == probe and time.monotonic() < end:
                b.pump(0.001)
            if b.probed.get(0, 0.0) == probe:
                raise SystemExit("scale_row.py: round %d: the first node is not probed" % rnd)
            end = b.probed[0] + 0.8 * INTERVAL * (rnd + 0.5) / row["rounds"]
            while time.monotonic() < end:
                b.pump(max(0.0, min(0.001, end - time.monotonic())))
            _, off = recomputes(log, 0)
            for i in failed_nodes(row):
                b.stop(i)
            got = b.wait(after, 60)
            if got is None:
                raise SystemExit("scale_row.py: round %d: no failover within 60s" % rnd)
            # The log line follows the publish (gauges, events): let it
            # land before reading.
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                b.pump(0.05)
            rc, _ = recomputes(log, off)
            res["first_ms"].append(got[first] * 1000)
            res["last_ms"].append(got[last] * 1000)
            res["recomputes"].append(len(rc))
            res["recompute_ms"].append(max((r[0] for r in rc), default=float("nan")) * 1000)
            res["publish_ms"].append(max((r[3] for r in rc), default=float("nan")) * 1000)
            print("  round %d: first %.0f ms, last %.0f ms; recomputes that changed answers: %s" % (
                rnd + 1, got[first] * 1000, got[last] * 1000,
                ", ".join("%.1f ms, published after %.1f ms (%d services decided, %d views changed)" % (r[0] * 1000, r[3] * 1000, r[1], r[2]) for r in rc) or "none logged"), flush=True)
            for i in failed_nodes(row):
                b.listen(i)
        res["vmhwm_kb"] = 0
        with open("/proc/%d/status" % proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    res["vmhwm_kb"] = int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(out, "w") as f:
        json.dump(res, f)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def report(paths):
    rows = [json.load(open(p)) for p in paths]
    print("%-28s %9s %9s %12s %12s %14s %12s %12s" % ("services / nodes", "start", "RSS", "KB/service", "failover 1st", "failover last", "publish", "recompute"))
    empty = next((r for r in rows if r["services"] == 0), None)
    for r in rows:
        label = "%d / %d%s" % (r["services"], r["nodes"], " (own)" if r["own"] else "")
        per = ""
        if empty and r["services"]:
            per = "%.2f" % ((r["rss_kb"] - empty["rss_kb"]) / r["services"])
        fo = lambda k: "%.0f ms" % med(r[k]) if r.get(k) else "-"
        ms = lambda k: "%.1f ms" % med(r[k]) if r.get(k) else "-"
        print("%-28s %6.0f ms %6.0f MB %12s %12s %14s %12s %12s" % (label, r["start_ms"], r["rss_kb"] / 1024, per, fo("first_ms"), fo("last_ms"), ms("publish_ms"), ms("recompute_ms")))
    print("(start: exec to the last service answering; RSS: 3 s after; failover: median of %d rounds from the listener's close, at the same points of the probe cycle in every row, to the answer changing; publish: from the health change to the new answers in force, recompute: to the end of the recompute (logs, events, counters), of the longest 'recomputed' the server logged during the failover, median over rounds)" % len(rows[-1].get("first_ms") or [0]))
    fail = 0

    def verdict(ok, text):
        nonlocal fail
        fail |= not ok
        print("%s  %s" % ("PASS" if ok else "FAIL", text))

    one = next((r for r in rows if r["services"] == 1 and not r["own"]), None)
    big = next((r for r in rows if r["services"] == 100000 and not r["own"]), None)
    print()
    if one and big:
        base = med(one["first_ms"])
        worst = max(med(big["first_ms"]), med(big["last_ms"]))
        verdict(worst <= 1.2 * base, "failover at 100,000 services %.0f ms = %.2fx the failover at 1 service (%.0f ms); want <= 1.2x" % (worst, worst / base, base))
        verdict(big["start_ms"] <= 1500, "start at 100,000 services %.0f ms; want <= 1500 ms" % big["start_ms"])
        if empty:
            per = (big["rss_kb"] - empty["rss_kb"]) / big["services"]
            verdict(per <= 1.5, "RSS at 100,000 services %.0f MB, %.2f KB per service above the empty server (%.0f MB); want <= 1.5 KB" % (big["rss_kb"] / 1024, per, empty["rss_kb"] / 1024))
    return fail


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode = sys.argv[1]
    if mode == "config":
        write_config(json.load(open(sys.argv[2])))
    elif mode == "listeners":
        print(" ".join(listeners(json.load(open(sys.argv[2])))))
    elif mode == "run":
        i = sys.argv.index("--")
        run(json.load(open(sys.argv[2])), sys.argv[3], sys.argv[i + 1:])
    elif mode == "report":
        sys.exit(report(sys.argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
