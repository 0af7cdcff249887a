#!/usr/bin/env python3
"""lbctl's benchmark suite (run it through bench/run.sh, which builds, names and cleans up).

Every figure of issue 15 against its baseline, measured in the same invocation: baseline and
lbctl alternate, the order flips every run, and the table shows medians. Whole processes are
timed (fork + exec included, as a user would see them); peak RSS comes from wait4(2).
Nothing here asserts a time: `--quick` shrinks every size and prints "n/a" under "met?".
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime

PREFIX = os.environ.get("LBP_PREFIX", f"lbp-{os.getpid()}")
LAB = os.environ.get("LBP_LAB", f"lbp{os.getpid()}")
BIN = os.environ.get("LBP_BIN", os.path.abspath("target/release/lbctl"))
TMP = tempfile.mkdtemp(prefix="lbp-")


# ---------------------------------------------------------------------------------------------
# processes and namespaces
# ---------------------------------------------------------------------------------------------

def run(argv, env=None, stdin=None, stdout=subprocess.DEVNULL, ok=(0,)):
    """Run argv; return (seconds, peak RSS in KiB, exit code)."""
    e = dict(os.environ, **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=e, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv[:6])}…: exit {p.returncode}: {err.decode()[-600:]}")
    return dt, ru.ru_maxrss, p.returncode


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def netns(tag):
    ns = f"{PREFIX}-{tag}"
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    sh(f"ip netns add {ns} && ip -n {ns} link set lo up"
       f" && ip -n {ns} link add eth0 type veth peer name peer0"
       f" && ip -n {ns} addr add 198.18.0.11/24 dev eth0 && ip -n {ns} link set eth0 up")
    return ns


def delns(ns):
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def vip(i):
    return f"198.19.{i // 250}.{i % 250 + 1}"


# ---------------------------------------------------------------------------------------------
# P1 / P2 / P7: apply, re-apply and down of N VIPs (nft ARP) against ip -batch + nft -f
# ---------------------------------------------------------------------------------------------

def files_for(n):
    d = os.path.join(TMP, f"n{n}")
    if os.path.isdir(d):
        return d
    os.makedirs(d)
    with open(f"{d}/scale.toml", "w") as f:
        f.write('name = "scale"\n')
        for i in range(n):
            f.write(f'[[vip]]\naddress = "{vip(i)}"\n')
        f.write('[arp]\nmode = "nft"\n[[arp.interface]]\nname = "eth0"\nreal_ip = "198.18.0.11"\n')
    with open(f"{d}/ip.batch", "w") as f:
        f.writelines(f"addr add {vip(i)}/32 dev lo\n" for i in range(n))
    with open(f"{d}/ip-del.batch", "w") as f:
        f.writelines(f"addr del {vip(i)}/32 dev lo\n" for i in range(n))
    with open(f"{d}/base.nft", "w") as f:
        # The same objects lbctl makes: the two sets and the two chains with their rules.
        f.write("table arp base {\n set vips { type ipv4_addr; }\n"
                " map vip_rip { type ipv4_addr : ipv4_addr; }\n"
                " chain input { type filter hook input priority filter; policy accept;\n"
                "  arp operation request arp daddr ip @vips counter drop; }\n"
                " chain output { type filter hook output priority filter; policy accept;\n"
                "  arp saddr ip @vips counter arp saddr ip set arp saddr ip map @vip_rip; }\n"
                "}\n")
        f.write("add element arp base vips { " + ", ".join(vip(i) for i in range(n)) + " }\n")
        f.write("add element arp base vip_rip { "
                + ", ".join(f"{vip(i)} : 198.18.0.11" for i in range(n)) + " }\n")
    with open(f"{d}/per-object.sh", "w") as f:
        f.write("set -e\nnft add table arp base\n"
                "nft add set arp base vips '{ type ipv4_addr; }'\n"
                "nft add map arp base vip_rip '{ type ipv4_addr : ipv4_addr; }'\n")
        for i in range(n):
            v = vip(i)
            f.write(f"ip addr add {v}/32 dev lo\nnft add element arp base vips '{{ {v} }}'\n"
                    f"nft add element arp base vip_rip '{{ {v} : 198.18.0.11 }}'\n")
    return d


def lbctl_env(run_dir):
    return {"LBCTL_RUN_DIR": run_dir}


def apply_cycle(n, with_down=True):
    """One lbctl apply / re-apply / down in a fresh namespace: times and peak RSS."""
    d = files_for(n)
    ns = netns("lbctl")
    rd = tempfile.mkdtemp(dir=TMP)
    e = lbctl_env(rd)
    a, a_rss, _ = run([BIN, "-q", "--netns", ns, "apply", "-f", f"{d}/scale.toml"], e)
    r, r_rss, _ = run([BIN, "-q", "--netns", ns, "apply", "-f", f"{d}/scale.toml"], e)
    out = {"apply": a, "apply_rss": a_rss, "again": r, "again_rss": r_rss}
    if with_down:
        out["down"], _, _ = run([BIN, "-q", "--netns", ns, "down", "-f", f"{d}/scale.toml"], e)
        left = subprocess.run(["ip", "-n", ns, "-4", "addr", "show", "dev", "lo"],
                              capture_output=True, text=True).stdout.count("inet 198.19")
        if left:
            raise RuntimeError(f"lbctl down left {left} addresses")
    delns(ns)
    shutil.rmtree(rd, ignore_errors=True)
    return out


def batch_cycle(n):
    d = files_for(n)
    ns = netns("base")
    t_ip, _, _ = run(["ip", "-n", ns, "-batch", f"{d}/ip.batch"])
    # nft enters the namespace as lbctl --netns and ip -n do (setns, no `ip netns exec`
    # mount namespace and /sys remount on the baseline's clock).
    nft = ["nsenter", f"--net=/run/netns/{ns}", "nft"]
    t_nft, _, _ = run(nft + ["-f", f"{d}/base.nft"])
    t_ipd, _, _ = run(["ip", "-n", ns, "-batch", f"{d}/ip-del.batch"])
    t_nftd, _, _ = run(nft + ["delete", "table", "arp", "base"])
    delns(ns)
    return {"add": t_ip + t_nft, "del": t_ipd + t_nftd}


def per_object_cycle(n):
    d = files_for(n)
    ns = netns("base")
    t, _, _ = run(["ip", "netns", "exec", ns, "sh", f"{d}/per-object.sh"])
    delns(ns)
    return t


# ---------------------------------------------------------------------------------------------
# P4: lb maglev report
# ---------------------------------------------------------------------------------------------

def maglev_report(n, m):
    """Seconds for the report, and its average moved share on removal (× the removed share)."""
    names = ",".join(f"10.{i // 250}.{i % 250}.1" for i in range(n))
    out = os.path.join(TMP, "maglev.txt")
    with open(out, "w") as f:
        t, _, _ = run([BIN, "lb", "maglev", "--size", str(m), "--backends", names], stdout=f)
    x = re.search(r"removal moves ([\d.]+)×", open(out).read())
    return t, float(x.group(1)) if x else float("nan")


# ---------------------------------------------------------------------------------------------
# P5: a failing check → its slots gone from the nft data path (M = 65537, 3 backends)
# ---------------------------------------------------------------------------------------------

def lb_fail(m):
    ns = f"{PREFIX}-lb"
    delns(ns)
    sh(f"ip netns add {ns} && ip -n {ns} link set lo up"
       f" && ip -n {ns} link add eth0 type veth peer name peer0"
       f" && ip -n {ns} link set eth0 address 02:00:00:00:00:02 up"
       f" && ip -n {ns} link set peer0 up && ip -n {ns} addr add 198.18.0.2/24 dev eth0")
    for i in (1, 2, 3):
        sh(f"ip -n {ns} neigh add 198.18.0.1{i} lladdr 02:00:00:00:00:1{i} dev eth0 nud permanent")
    work = tempfile.mkdtemp(dir=TMP)
    # baseline: the whole map as nft text, loaded once
    with open(f"{work}/full.nft", "w") as f:
        f.write(f"table netdev bench {{ map m {{ typeof numgen inc mod {m} : ether daddr; "
                "elements = {\n")
        f.write(",\n".join(f"{i} : 02:00:00:00:00:1{i % 3 + 1}" for i in range(m)))
        f.write("\n} }; }\n")
    base, _, _ = run(["ip", "netns", "exec", ns, "nft", "-f", f"{work}/full.nft"])
    sh(f"ip netns exec {ns} nft delete table netdev bench")
    with open(f"{work}/lb.toml", "w") as f:
        f.write(f'''name = "bench"
[balancer]
engine = "nft"
interface = "eth0"
maglev_size = {m}
[[service]]
vip = "198.18.0.100:80"
[service.check]
type = "exec"
command = ["sh", "-c", "! [ -e {work}/fail-$LBCTL_RIP ]"]
interval = "100ms"
timeout = "100ms"
rise = 1
fall = 1
''' + "".join(f'[[service.backend]]\nrip = "198.18.0.1{i}"\n' for i in (1, 2, 3)))
    e = dict(os.environ, LBCTL_RUN_DIR=f"{work}/run")
    log = open(f"{work}/lb.log", "w")
    p = subprocess.Popen([BIN, "--json", "--netns", ns, "lb", "run", "-c", f"{work}/lb.toml"],
                         env=e, stdout=log, stderr=subprocess.STDOUT)

    def slots():
        r = subprocess.run([BIN, "--netns", ns, "--json", "lb", "status"], env=e,
                           capture_output=True, text=True)
        return [int(x) for x in re.findall(r'"slots":\s*(\d+)', r.stdout)]

    try:
        deadline = time.time() + 60
        while True:
            s = slots()
            if s and len(s) == 3 and all(x and x > 0 for x in s):
                break
            if time.time() > deadline or p.poll() is not None:
                raise RuntimeError(f"lb run not ready: {open(f'{work}/lb.log').read()[-600:]}")
            time.sleep(0.02)
        open(f"{work}/fail-198.18.0.12", "w").close()
        t_fail = time.time()
        deadline = t_fail + 120
        # The daemon logs `slots` once the kernel acknowledged the nf_tables netlink batch that
        # rewrites the moved slots (one transaction). Watching its log costs nothing; polling
        # `lb status` would not measure the data path: each call dumps the whole 65537-element
        # map (netlink) to verify the kernel, competing with the daemon for the CPU.
        decided = written = None
        while written is None:
            decided = None
            for line in open(f"{work}/lb.log"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                t = datetime.fromisoformat(ev.get("time", "").replace("Z", "+00:00")).timestamp() \
                    if ev.get("time") else None
                if ev.get("event") == "transition" and ev.get("to") == "down":
                    decided = t
                elif ev.get("event") == "slots" and decided is not None:
                    written = t
                    break
            if written is None:
                if time.time() > deadline or p.poll() is not None:
                    raise RuntimeError("slots of the failed backend never went")
                time.sleep(0.005)
        t_seen = time.time()
        # Then as `lb status` shows it (its status file is written just after the log line;
        # each call also checks the kernel's map): the failed backend holds no slot.
        while True:
            s = slots()
            if s and len(s) == 3 and s[1] == 0:
                break
            if time.time() > deadline:
                raise RuntimeError(f"lb status after the update: slots {s}")
        status_s = time.time() - t_seen
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
        log.close()
        delns(ns)
    return {"base": base, "after_decision": written - decided, "total": t_seen - t_fail,
            "status": status_s}


# ---------------------------------------------------------------------------------------------
# P6: capture -r of a pcap against tcpdump -e -n -r
# ---------------------------------------------------------------------------------------------

def pcap(n):
    path = os.path.join(TMP, f"p{n}.pcap")
    if os.path.exists(path):
        return path
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            c = i % 200
            if i % 50 == 0:  # an ARP request for the VIP
                arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1,
                                  bytes([2, 0, 0, 0, 0, 0x10]), bytes([198, 18, 0, 10]),
                                  bytes(6), bytes([198, 18, 0, 100]))
                frame = b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 0x10]) + b"\x08\x06" + arp
            else:
                payload = b"x" * (i % 64)
                tcp = struct.pack("!HHIIBBHHH", 40000 + c, 80, i, 0, 5 << 4, 0x18, 65535, 0, 0)
                tot = 20 + len(tcp) + len(payload)
                iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, i & 0xFFFF, 0, 64, 6, 0,
                                  bytes([198, 18, 1, c % 250]), bytes([198, 18, 0, 100]))
                frame = (bytes([2, 0, 0, 0, 0, 0x11]) + bytes([2, 0, 0, 0, 0, 0x02]) + b"\x08\x00"
                         + iph + tcp + payload)
            f.write(struct.pack("<IIII", 1_700_000_000 + i // 1000, (i % 1000) * 1000,
                                len(frame), len(frame)))
            f.write(frame)
    return path


# ---------------------------------------------------------------------------------------------
# P3 / P8 / P9: the lab (lbctl lab up --engine nft)
# ---------------------------------------------------------------------------------------------

def lab_ns(node):
    return f"lbl-{LAB}-{node}"


def doctor_baseline(ns):
    """The checks doctor makes, as the shell commands a sysadmin would type."""
    script = (
        "sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce"
        " net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.arp_ignore"
        " net.ipv4.conf.eth0.arp_announce net.ipv4.conf.eth0.rp_filter"
        " net.ipv4.conf.lo.rp_filter net.ipv4.ip_forward >/dev/null;"
        " ip -4 addr show >/dev/null; ip rule show >/dev/null;"
        " ip route get 198.18.0.10 from 198.18.0.100 >/dev/null;"
        " ip neigh show >/dev/null; ss -ltn >/dev/null; nft list ruleset >/dev/null")
    return run(["ip", "netns", "exec", ns, "sh", "-c", script])[0]


def ab(ns, url, n, c):
    r = subprocess.run(["ip", "netns", "exec", ns, "ab", "-q", "-n", str(n), "-c", str(c), url],
                       capture_output=True, text=True)
    m = re.search(r"Requests per second:\s+([\d.]+)", r.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", r.stdout)
    if not m or r.returncode != 0:
        raise RuntimeError(f"ab {url}: {r.stdout[-400:]}{r.stderr[-400:]}")
    if failed and int(failed.group(1)) > 0:
        raise RuntimeError(f"ab {url}: {failed.group(1)} failed requests")
    return float(m.group(1))


def link_bytes(ns, dev="eth0"):
    base = f"/sys/class/net/{dev}/statistics"
    r = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                        f"cat {base}/rx_bytes {base}/tx_bytes"], capture_output=True, text=True)
    rx, tx = map(int, r.stdout.split())
    return rx, tx


# ---------------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x):
    if x != x:
        return "—"
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    runs = a.runs or (1 if a.quick else 3)
    only = {x.strip().upper() for x in a.only.split(",") if x.strip()}

    def want(*ids):
        return not only or any(i.upper() in only for i in ids)

    q = a.quick
    n1, n10 = (50, 200) if q else (1000, 10000)
    n_obj = 20 if q else 1000
    m_p4, n_p4 = (4099, 30) if q else (65537, 1000)
    m_p5 = 4099 if q else 65537
    pk = 5000 if q else 260_000
    ab_n = 500 if q else 20000
    rows = []

    def row(pid, what, ours, base, goal, met, ratio=None, note=""):
        rows.append((pid, what, ours, base, ratio, goal, met, note))

    def say(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # P1a/P1b/P1c/P2/P2d/P7 ---------------------------------------------------------------
    if want("P1a", "P1b", "P1c", "P2", "P2d", "P7"):
        A1, B1, PO, A10, B10 = [], [], [], [], []
        for r in range(runs):
            say(f"P1/P2/P7 run {r + 1}/{runs}")
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for o in order:
                if o == 0:
                    if want("P1a", "P1b"):
                        B1.append(batch_cycle(n1))
                    if want("P1a"):
                        PO.append(per_object_cycle(n_obj))
                    if want("P1c", "P2d"):
                        B10.append(batch_cycle(n10))
                else:
                    if want("P1a", "P1b"):
                        A1.append(apply_cycle(n1, with_down=False))
                    if want("P1c", "P2", "P2d", "P7"):
                        A10.append(apply_cycle(n10))
        if want("P1a"):
            # the per-object recipe runs at n_obj; lbctl at n1 (= n_obj in the full run)
            ours = med([x["apply"] for x in A1]) * n_obj / n1
            base = med(PO)
            row("P1a", f"apply N={n_obj} VIPs vs per-object shell recipe", ours, base,
                "≤ 0.02×", lambda r: r <= 0.02)
        if want("P1b"):
            row("P1b", f"apply N={n1} vs ip -batch + nft -f", med([x["apply"] for x in A1]),
                med([x["add"] for x in B1]), "≤ 1.0×", lambda r: r <= 1.0)
        if want("P1c"):
            row("P1c", f"apply N={n10} vs ip -batch + nft -f", med([x["apply"] for x in A10]),
                med([x["add"] for x in B10]), "≤ 1.0×", lambda r: r <= 1.0)
        if want("P2"):
            row("P2", f"no-op re-apply N={n10} vs fresh apply", med([x["again"] for x in A10]),
                med([x["apply"] for x in A10]), "≤ 0.05×", lambda r: r <= 0.05)
        if want("P2d"):
            row("P2d", f"down N={n10} vs ip -batch deletes + nft delete table",
                med([x["down"] for x in A10]), med([x["del"] for x in B10]), "≤ 1.0×",
                lambda r: r <= 1.0)
        if want("P7"):
            a_rss = max(x["apply_rss"] for x in A10) / 1024
            r_rss = max(x["again_rss"] for x in A10) / 1024
            rows.append(("P7", f"peak RSS apply / re-apply N={n10}",
                         f"{a_rss:.1f} / {r_rss:.1f} MiB", "—", None, "≤ 20 MiB both",
                         (a_rss <= 20 and r_rss <= 20), ""))

    # P4 -----------------------------------------------------------------------------------
    if want("P4"):
        say("P4")
        res = [maglev_report(n_p4, m_p4) for _ in range(runs)]
        xs = [t for t, _ in res]
        rows.append(("P4", f"lb maglev report, M={m_p4}, N={n_p4}", fmt_s(med(xs)),
                     "6.7 s (issue)", None, "≤ 0.3 s", med(xs) <= 0.3, ""))
        # What Maglev disruption is (for the docs): moved share on removal, × the minimum.
        for n in ([10, 30] if q else [10, 100, 1000]):
            mv = res[0][1] if n == n_p4 else maglev_report(n, m_p4)[1]
            rows.append(("P4d", f"Maglev: removing 1 of N={n} moves (M={m_p4})", f"{mv:.2f}×",
                         "1.00× (its own share)", None, "(documented)", None, ""))

    # P5 -----------------------------------------------------------------------------------
    if want("P5"):
        res = []
        for r in range(runs):
            say(f"P5 run {r + 1}/{runs}")
            res.append(lb_fail(m_p5))
            say(f"P5 run {r + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in res[-1].items()))
        ad = med([x["after_decision"] for x in res])
        rows.append(("P5", f"check decided → slots gone, M={m_p5}, 3 backends (total from "
                     f"failure {fmt_s(med([x['total'] for x in res]))}, 100 ms interval; then in "
                     f"lb status after {fmt_s(med([x['status'] for x in res]))})",
                     fmt_s(ad), fmt_s(med([x["base"] for x in res])) + " (nft -f full map)",
                     ad / med([x["base"] for x in res]), "≤ 0.1 s", ad <= 0.1, ""))

    # P6 -----------------------------------------------------------------------------------
    if want("P6"):
        path = pcap(pk)
        O, T = [], []
        for r in range(runs):
            say(f"P6 run {r + 1}/{runs}")
            pair = [(T, ["tcpdump", "-e", "-n", "-r", path]), (O, [BIN, "capture", "-r", path])]
            for dst, argv in (pair if r % 2 == 0 else pair[::-1]):
                dst.append(run(argv, ok=(0, 1))[0])
        row("P6", f"capture -r of {pk} packets vs tcpdump -e -n -r", med(O), med(T),
            "≤ 0.5×", lambda r: r <= 0.5)

    # P3 / P8 / P9 ---------------------------------------------------------------------------
    if want("P3", "P8", "P9"):
        say("lab up")
        rd = os.environ.get("LBP_LAB_RUN") or os.path.join(TMP, "lab-run")
        e = {"LBCTL_RUN_DIR": rd}
        env = dict(os.environ, **e)
        # The lab without its balancer: ours runs the lab's service (VIP:80, the lab page) and
        # a download service (VIP:8080, python's http.server on each backend, a 1 MiB file).
        subprocess.run([BIN, "-q", "lab", "up", "--name", LAB, "--engine", "nft",
                        "--no-balancer"], env=env, check=True, stdout=subprocess.DEVNULL)
        procs = []
        try:
            www = os.path.join(TMP, "www")
            os.makedirs(www, exist_ok=True)
            with open(os.path.join(www, "1m"), "wb") as f:
                f.write(os.urandom(1 << 20))
            for be in ("be1", "be2"):
                procs.append(subprocess.Popen(
                    ["ip", "netns", "exec", lab_ns(be), sys.executable, "-m", "http.server",
                     "--bind", "0.0.0.0", "--directory", www, "8080"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            cfg = os.path.join(TMP, "lab-lb.toml")
            with open(cfg, "w") as f:
                f.write('name = "bench"\n[balancer]\nengine = "nft"\ninterface = "eth0"\n')
                for port in (80, 8080):
                    f.write(f'[[service]]\nvip = "198.18.0.100:{port}"\nscheduler = "mh"\n'
                            '[service.check]\ntype = "http"\npath = "/"\ninterval = "500ms"\n'
                            'timeout = "300ms"\nrise = 1\nfall = 2\n')
                    for rip in ("198.18.0.11", "198.18.0.12"):
                        f.write(f'[[service.backend]]\nrip = "{rip}"\n')
            procs.append(subprocess.Popen(
                [BIN, "--netns", lab_ns("lb"), "lb", "run", "-c", cfg], env=env,
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "lab-lb.log"), "w")))
            deadline = time.time() + 60
            while True:
                r = subprocess.run([BIN, "--netns", lab_ns("lb"), "--json", "lb", "status"],
                                   env=env, capture_output=True, text=True)
                if r.stdout.count('"state": "up"') + r.stdout.count('"state":"up"') >= 4:
                    break
                if time.time() > deadline:
                    raise RuntimeError("lab balancer not ready: "
                                       + open(os.path.join(TMP, "lab-lb.log")).read()[-600:])
                time.sleep(0.1)
            be1 = lab_ns("be1")
            if want("P3"):
                O, S = [], []
                for r in range(max(runs, 3) * 2):
                    argv = [BIN, "--netns", be1, "doctor", "--vip", "198.18.0.100:80",
                            "--client", "198.18.0.10"]
                    if r % 2 == 0:
                        O.append(run(argv, e, ok=(0, 1))[0]); S.append(doctor_baseline(be1))
                    else:
                        S.append(doctor_baseline(be1)); O.append(run(argv, e, ok=(0, 1))[0])
                row("P3", "doctor on a lab backend vs the same checks as shell commands",
                    med(O), med(S), "≤ 0.3×", lambda r: r <= 0.3)
            if want("P8"):
                if shutil.which("ab") is None:
                    rows.append(("P8", "HTTP req/s via nft engine vs one backend", "—", "—",
                                 None, "≥ 0.95×", None, "ab (apache2-utils) not installed"))
                else:
                    V, D = [], []
                    for r in range(runs):
                        say(f"P8 run {r + 1}/{runs}")
                        pair = [(V, "http://198.18.0.100/"), (D, "http://198.18.0.11/")]
                        for dst, url in (pair if r % 2 == 0 else pair[::-1]):
                            dst.append(ab(lab_ns("client"), url, ab_n, 20))
                    v, d = med(V), med(D)
                    rows.append(("P8", f"HTTP req/s through the nft engine vs straight to one "
                                 f"backend (lab page, ab -c 20 -n {ab_n})", f"{v:.0f}/s",
                                 f"{d:.0f}/s", v / d, "≥ 0.95×", v / d >= 0.95, ""))
            if want("P9"):
                say("P9")
                # In DSR only the requests cross the balancer: bytes on its NIC (both ways,
                # health checks included) against the bytes the client received.
                n_dl = 5 if q else 20
                lb0, c0 = link_bytes(lab_ns("lb")), link_bytes(lab_ns("client"))
                for _ in range(n_dl):
                    subprocess.run(["ip", "netns", "exec", lab_ns("client"), "curl", "-sf",
                                    "-o", "/dev/null", "http://198.18.0.100:8080/1m"],
                                   check=True)
                lb1, c1 = link_bytes(lab_ns("lb")), link_bytes(lab_ns("client"))
                lbb = (lb1[0] - lb0[0]) + (lb1[1] - lb0[1])
                cb = c1[0] - c0[0]
                rows.append(("P9", f"LB NIC bytes / client rx bytes, {n_dl} × 1 MiB downloads "
                             "(haproxy TCP proxy: 2.01)", f"{lbb / cb:.4f}", "—", None,
                             "keep ≤ 0.01", lbb / cb <= 0.01, ""))
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            subprocess.run([BIN, "-q", "lab", "down", "--name", LAB], env=env,
                           stdout=subprocess.DEVNULL)

    # table -------------------------------------------------------------------------------
    out = []
    for pid, what, ours, base, ratio, goal, met, note in rows:
        if callable(met):
            ratio = ours / base if base else float("nan")
            met = met(ratio)
            ours, base = fmt_s(ours), fmt_s(base)
        r = "—" if ratio is None else f"{ratio:.3f}×"
        m = "n/a" if q or met is None else ("yes" if met else "NO")
        out.append((pid, what, ours, base, r, goal, m, note))
    hdr = ("id", "measure", "ours", "baseline", "ratio", "goal", "met?")
    if a.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for o in out:
            print("| " + " | ".join(o[:7]) + " |" + (f" {o[7]}" if o[7] else ""))
    else:
        w = [max(len(str(x[i])) for x in out + [hdr]) for i in range(7)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        for o in out:
            print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(o[:7]))
                  + (f"  ({o[7]})" if o[7] else ""))
    print(f"\n{'quick run (small sizes, 1 run)' if q else f'{runs} runs, medians'}; "
          f"nproc {os.cpu_count()}, load {open('/proc/loadavg').read().split()[:3]}, "
          f"kernel {os.uname().release}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
