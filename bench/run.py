#!/usr/bin/env python3
"""procs vs supervisord, side by side on this machine, in one run.

Usage: python3 bench/run.py [--quick] [--procs PATH] [--profile release|debug]
       python3 bench/run.py --variant before=PATH --variant after=PATH[,PROCS_NO_CGROUP=1] ...

With `--variant LABEL=PATH[,KEY=VALUE...]` (repeatable) it compares procs builds (each
with its own extra environment, e.g. `PROCS_NO_CGROUP=1`) side by side instead of procs
against supervisord (add `--with-supervisord` to keep it as one more column): the order
of the variants rotates each repeat.

It also times `procs config` on examples/realistic/procs.yaml against `procs --version`
(procs only; `--only config` runs just that).

Every figure is measured for procs and for supervisord in alternating runs (the order
flips each repeat); the table gives the medians and the ratio procs/supervisord. `up`
also gives the floor: a shell forking the same N `sleep`s, and the ratio to it.

How things are observed (the same way for both supervisors):
* children: read from /proc/SUPERVISOR/task/*/children (one small read per poll), and a
  child counts only once it has exec'd `sleep` (its /proc comm is `sleep`);
* "gone": /proc/PID/stat is missing or says zombie;
* memory: VmRSS of the supervisor process; CPU: utime+stime from /proc/PID/stat.

Everything runs in its own short temp dir under /tmp (Unix socket path limit) and is
stopped at the end, even on error. Python 3 stdlib only. See docs/performance.md.
"""

import argparse
import os
import platform as pyplatform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# The argument of every benchmark `sleep`: lets the cleanup find strays.
SLEEP_ARG = "987654"
TIMEOUT = 120.0

# Every temp dir made: the final cleanup kills what runs from them, then removes them.
TEMP_DIRS = []


# ---------------------------------------------------------------- /proc helpers


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def stat_fields(pid):
    """Fields of /proc/PID/stat after the comm, or None (field 3 = index 0)."""
    raw = read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def alive(pid):
    f = stat_fields(pid)
    return f is not None and f[0] != b"Z"


def cpu_seconds(pid):
    f = stat_fields(pid)
    if f is None:
        return 0.0
    return (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_bytes(pid):
    raw = read(f"/proc/{pid}/status") or b""
    for line in raw.splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def children(pid):
    pids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tasks:
        raw = read(f"/proc/{pid}/task/{tid}/children")
        if raw:
            pids.extend(int(p) for p in raw.split())
    return pids


def is_sleep(pid):
    return read(f"/proc/{pid}/comm") == b"sleep\n"


def sleeping_children(pid):
    return [c for c in children(pid) if is_sleep(c)]


def wait_until(cond, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        time.sleep(0.0002)  # leave the CPU to what is measured (2 cores are few)
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def wait_children(sup, n):
    """Poll (cheaply) until `sup` has n children that all exec'd sleep; return them."""

    def ready():
        kids = children(sup)
        if len(kids) < n:
            return None
        sleeping = [k for k in kids if is_sleep(k)]
        return sleeping if len(sleeping) >= n else None

    return wait_until(ready, f"{n} children of pid {sup}")


def wait_gone(pids):
    left = list(pids)

    def done():
        nonlocal left
        left = [p for p in left if alive(p)]
        return not left

    wait_until(done, f"{len(left)} processes to exit")


def find_procs_supervisor(project_dir):
    """The pid of `procs __supervise --project-dir DIR`."""
    needle = b"\0--project-dir\0" + project_dir.encode() + b"\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            raw = read(f"/proc/{entry}/cmdline")
            if raw and b"__supervise" in raw and needle in raw:
                return int(entry)
    return None


def kill_strays():
    """SIGKILL whatever the benchmark may have left: our `sleep`s (and the shells that
    forked them), and anything whose command line names one of our temp dirs (the two
    supervisors). Matched by command line, never by a remembered pid (pids get reused)."""
    killed = 0
    dirs = [d.encode() for d in TEMP_DIRS]
    marks = [b"sleep\0" + SLEEP_ARG.encode(), b"sleep " + SLEEP_ARG.encode()]
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        raw = read(f"/proc/{entry}/cmdline")
        if raw and (any(m in raw for m in marks) or any(d in raw for d in dirs)):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def run(cmd, cwd, check=True, env=None):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def timed(cmd, cwd, env=None):
    t0 = time.perf_counter()
    run(cmd, cwd, env=env)
    return time.perf_counter() - t0


def tempdir(tag):
    d = tempfile.mkdtemp(prefix=f"pb{tag}", dir="/tmp")
    TEMP_DIRS.append(d)
    return d


# ---------------------------------------------------------------- the two supervisors


_READY_AFTER = {}


def knows_ready_after(exe):
    """Does this procs build accept `ready_after:`? (Asked once per binary.)"""
    if exe not in _READY_AFTER:
        d = tempdir("k")
        with open(os.path.join(d, "procs.yaml"), "w") as f:
            f.write("processes:\n  a:\n    command: [true]\n    ready_after: 0s\n")
        r = subprocess.run([exe, "config"], cwd=d, capture_output=True)
        _READY_AFTER[exe] = r.returncode == 0
    return _READY_AFTER[exe]


class Procs:
    def __init__(self, exe, name="procs", extra_env=None):
        self.exe = exe
        self.name = name
        self.extra_env = extra_env or {}
        self.dir = None
        self.sup = None

    def env(self):
        env = dict(os.environ)
        env.pop("PROCS_STATE_DIR", None)
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        return env

    def write(self, n, extra=""):
        self.dir = tempdir("p")
        lines = ["processes:"]
        for i in range(n):
            lines.append(f"  s{i}:")
            lines.append(f'    command: [sleep, "{SLEEP_ARG}"]')
            lines.append("    backoff: {initial: 0s}")
            lines.append("    stop_timeout: 5s")
            # As supervisord's startsecs=0 below: ready as soon as spawned (a build from
            # before `ready_after` existed was ready when spawned and rejects the key).
            if knows_ready_after(self.exe):
                lines.append("    ready_after: 0s")
        lines.append(extra)
        with open(os.path.join(self.dir, "procs.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def cmd(self, *args):
        return [self.exe, *args]

    def start_and_wait(self, n):
        """Time from invoking `up` until n sleeping children exist and `up` returned."""
        t0 = time.perf_counter()
        p = subprocess.Popen(
            self.cmd("up"), cwd=self.dir, env=self.env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.sup = wait_until(lambda: find_procs_supervisor(self.dir), "the procs supervisor")
        kids = wait_children(self.sup, n)
        if p.wait(timeout=TIMEOUT) != 0:
            raise RuntimeError(f"procs up failed: {p.stderr.read().decode()}")
        dt = time.perf_counter() - t0
        return dt, kids

    def status(self):
        return timed(self.cmd("status"), self.dir, env=self.env())

    def stop_cmd(self):
        return self.cmd("down")

    def start_one(self, name):
        return self.cmd("start", name)

    def teardown(self):
        if self.dir and os.path.exists(os.path.join(self.dir, "procs.yaml")):
            run(self.cmd("down", "--timeout", "2s"), self.dir, check=False, env=self.env())
        if self.sup:
            wait_until(lambda: not alive(self.sup), "the procs supervisor to exit", 10)
        self.sup = None

    def log_path(self, name):
        return os.path.join(self.dir, ".procs", "logs", f"{name}.log")


class Supervisord:
    name = "supervisord"

    def __init__(self):
        self.dir = None
        self.proc = None
        self.sup = None

    def conf(self):
        return os.path.join(self.dir, "supervisord.conf")

    def env(self):
        return None

    def write(self, n, extra=""):
        self.dir = tempdir("s")
        d = self.dir
        text = f"""[supervisord]
nodaemon=true
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
loglevel=warn

[unix_http_server]
file={d}/s.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/s.sock
"""
        for i in range(n):
            text += f"""
[program:s{i}]
command=sleep {SLEEP_ARG}
startsecs=0
autorestart=true
stopwaitsecs=5
stdout_logfile={d}/s{i}.log
redirect_stderr=true
"""
        text += extra.replace("@DIR@", d)
        with open(self.conf(), "w") as f:
            f.write(text)

    def start_and_wait(self, n):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            ["supervisord", "-c", self.conf()], cwd=self.dir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.sup = self.proc.pid
        kids = wait_children(self.sup, n)
        return time.perf_counter() - t0, kids

    def ctl(self, *args):
        return ["supervisorctl", "-c", self.conf(), *args]

    def status(self):
        return timed(self.ctl("status"), self.dir)

    def stop_cmd(self):
        return self.ctl("stop", "all")

    def start_one(self, name):
        return self.ctl("start", name)

    def teardown(self):
        if self.proc is not None and self.proc.poll() is None:
            # `stop all` first: supervisord's own SIGTERM shutdown takes seconds per few
            # programs (its main loop), `stop all` a fraction of a second for 100.
            wait_until(lambda: run(self.ctl("pid"), self.dir, check=False).returncode == 0,
                       "supervisorctl to answer", 30)
            run(self.ctl("stop", "all"), self.dir, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.sup = None

    def log_path(self, name):
        return os.path.join(self.dir, f"{name}.log")


# ---------------------------------------------------------------- benchmarks


def bench_floor(n):
    d = tempdir("f")
    script = f'i=0; while [ $i -lt {n} ]; do sleep {SLEEP_ARG} & i=$((i+1)); done; wait'
    t0 = time.perf_counter()
    sh = subprocess.Popen(["/bin/sh", "-c", script], cwd=d)
    try:
        kids = wait_children(sh.pid, n)
        dt = time.perf_counter() - t0
    finally:
        for k in children(sh.pid):
            os.kill(k, signal.SIGKILL)
        sh.wait(timeout=30)
    wait_gone(kids)
    return dt


def parse_variant(text):
    """`LABEL=PATH[,KEY=VALUE...]` -> Procs."""
    label, sep, rest = text.partition("=")
    if not sep or not label or not rest:
        raise SystemExit(f"--variant wants LABEL=PATH[,KEY=VALUE...], not {text!r}")
    path, *pairs = rest.split(",")
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--variant {text!r}: {pair!r} is not KEY=VALUE")
        env[key] = value
    if not os.access(path, os.X_OK):
        raise SystemExit(f"--variant {text!r}: {path} is not an executable")
    return Procs(os.path.abspath(path), label, env)


def bench_up(sv, n):
    sv.write(n)
    try:
        dt, _ = sv.start_and_wait(n)
    finally:
        sv.teardown()
    return dt


def with_running(sv, n, body, extra=""):
    sv.write(n, extra)
    try:
        sv.start_and_wait(n)
        if isinstance(sv, Supervisord):
            wait_until(lambda: run(sv.ctl("pid"), sv.dir, check=False).returncode == 0,
                       "supervisorctl to answer", 30)
        return body()
    finally:
        sv.teardown()


def bench_running(sv, n, idle, reps):
    """One stack of n: footprint while idle, then status, restart, and down last."""

    def body():
        out = {}
        time.sleep(0.5)  # let start-up work (registry writes, log flushes) settle
        out["rss"] = rss_bytes(sv.sup)
        c0 = cpu_seconds(sv.sup)
        time.sleep(idle)
        out["idle_cpu"] = cpu_seconds(sv.sup) - c0

        sv.status()  # warm-up
        out["status"] = statistics.median(sv.status() for _ in range(reps))

        times = []
        for _ in range(reps):
            kids = set(sleeping_children(sv.sup))
            victim = min(kids)
            t0 = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: set(sleeping_children(sv.sup)) - kids, "a replacement child")
            times.append(time.perf_counter() - t0)
            wait_children(sv.sup, n)
        out["restart"] = statistics.median(times)

        kids = sleeping_children(sv.sup)
        t0 = time.perf_counter()
        p = subprocess.Popen(sv.stop_cmd(), cwd=sv.dir, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=sv.env())
        wait_gone(kids)
        out["down"] = time.perf_counter() - t0
        p.wait(timeout=TIMEOUT)
        return out

    return with_running(sv, n, body)


def bench_logs(sv, size):
    writer = f"head -c {size} /dev/zero"
    if isinstance(sv, Procs):
        # No rotation during the measurement: the figure is the raw write path (like
        # supervisord's `stdout_logfile_maxbytes=0` below).
        extra = (
            f"  writer:\n    command: {writer}\n    restart: no\n    disabled: true\n"
            "    logs: { max_size: 1099511627776, keep: 1 }\n"
        )
    else:
        extra = f"""
[program:writer]
command={writer}
autostart=false
autorestart=false
startsecs=0
stdout_logfile=@DIR@/writer.log
stdout_logfile_maxbytes=0
redirect_stderr=true
"""

    def body():
        log = sv.log_path("writer")
        c0 = cpu_seconds(sv.sup)
        t0 = time.perf_counter()
        p = subprocess.Popen(sv.start_one("writer"), cwd=sv.dir, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=sv.env())

        def full():
            try:
                return os.stat(log).st_size >= size
            except OSError:
                return False

        wait_until(full, f"{log} to hold {size} bytes")
        dt = time.perf_counter() - t0
        p.wait(timeout=TIMEOUT)
        cpu = cpu_seconds(sv.sup) - c0
        return dt, cpu

    return with_running(sv, 1, body, extra)


def bench_log_floor(size):
    d = tempdir("f")
    log = os.path.join(d, "writer.log")
    t0 = time.perf_counter()
    run(["/bin/sh", "-c", f"head -c {size} /dev/zero >> {log}"], d)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- reporting


def bench_config(exe, pairs):
    """`procs config` on the realistic 15-process example against `procs --version`, in
    alternating runs (the order flips each pair); medians in seconds and the median of the
    pairwise ratios. Target (docs/performance.md): within 2.5x of `--version`."""
    example = os.path.join(ROOT, "examples", "realistic", "procs.yaml")
    cwd = tempfile.mkdtemp(prefix="pbconfig", dir="/tmp")
    config = [exe, "-f", example, "config"]
    version = [exe, "--version"]
    tc, tv, ratios = [], [], []
    try:
        run(config, cwd)  # warm-up, and a check that it loads
        run(version, cwd)
        for i in range(pairs):
            if i % 2 == 0:
                c, v = timed(config, cwd), timed(version, cwd)
            else:
                v, c = timed(version, cwd), timed(config, cwd)
            tc.append(c)
            tv.append(v)
            ratios.append(c / v)
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    return statistics.median(tc), statistics.median(tv), statistics.median(ratios)


def ms(x):
    return f"{x * 1000:.1f} ms" if x < 10 else f"{x:.2f} s"


def mib(x):
    return f"{x / (1 << 20):.1f} MiB"


def cpu(x):
    return f"{x:.2f} s"


def ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else ("1.00x" if a == 0 else "inf")


def machine():
    info = {}
    info["nproc"] = str(os.cpu_count())
    meminfo = read("/proc/meminfo").decode()
    info["memory"] = meminfo.splitlines()[0].split(":")[1].strip()
    info["kernel"] = pyplatform.release()
    model = "unknown"
    for line in read("/proc/cpuinfo").decode().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    info["cpu"] = model
    info["python"] = pyplatform.python_version()
    v = run(["supervisord", "--version"], "/tmp", check=False)
    info["supervisord"] = v.stdout.strip()
    return info


def ensure_supervisord():
    if shutil.which("supervisord") and shutil.which("supervisorctl"):
        return
    # Debian's package first (what CI may install); PyPI's as the fallback.
    print("supervisord not found: installing it (apt-get install supervisor)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env)
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "supervisor"], env=env)
    if r.returncode != 0 or not shutil.which("supervisord"):
        print("apt-get failed: trying pip install supervisor", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "supervisor"], check=True)


def find_procs(args):
    if args.procs:
        return os.path.abspath(args.procs)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    flags = ["--release"] if args.profile == "release" else []
    if not args.no_build:
        subprocess.run(["cargo", "build", "--bin", "procs", *flags], cwd=ROOT, check=True)
    return os.path.join(target, args.profile, "procs")


def compare_variants(args):
    """Each figure for every variant (and optionally supervisord) in rotating order."""
    quick = args.quick
    reps = args.reps or (3 if quick else 5)
    ns = [args.n] if args.n else ([20] if quick else [10, 100, 500])
    only = set(args.only.split(","))
    n_run = 20 if quick else 100
    idle = 1.0 if quick else 20.0
    subs = [parse_variant(v) for v in args.variant]
    if args.with_supervisord:
        ensure_supervisord()
        subs.append(Supervisord())
    names = [sv.name for sv in subs]
    if len(set(names)) != len(names):
        raise SystemExit("--variant labels must differ")
    rows = []  # (figure, {name: value}, fmt, floor)

    def alternate(fn):
        out = {sv.name: [] for sv in subs}
        for i in range(reps):
            k = i % len(subs)
            for sv in subs[k:] + subs[:k]:
                out[sv.name].append(fn(sv))
        return out

    def add(figure, fmt, values, floor=None):
        med = {k: statistics.median(v) for k, v in values.items()}
        rows.append((figure, med, fmt, floor))
        line = f"{figure:<34} " + "  ".join(f"{k} {fmt(v):>10}" for k, v in med.items())
        if floor is not None:
            line += f"  floor {fmt(floor):>10}"
        print(line, flush=True)

    try:
        for n in ns if "up" in only else []:
            floors = [bench_floor(n) for _ in range(reps)]
            add(f"up, N={n}", ms, alternate(lambda sv, n=n: bench_up(sv, n)),
                statistics.median(floors))
        if "running" in only:
            res = alternate(lambda sv: bench_running(sv, n_run, idle, reps))

            def pick(key):
                return {k: [v[key] for v in vs] for k, vs in res.items()}

            add(f"status, {n_run} running", ms, pick("status"))
            add(f"down, N={n_run}", ms, pick("down"))
            add(f"restart after SIGKILL, {n_run} running", ms, pick("restart"))
            add(f"supervisor RSS, {n_run} running", mib, pick("rss"))
            add(f"supervisor CPU over {idle:.0f} s idle", cpu, pick("idle_cpu"))
    finally:
        for sv in subs:
            try:
                sv.teardown()
            except Exception as err:  # noqa: BLE001 - cleanup goes on regardless
                print(f"warning: teardown of {sv.name}: {err}", file=sys.stderr)
        strays = kill_strays()
        if strays:
            print(f"warning: killed {strays} stray processes", file=sys.stderr)
        for d in TEMP_DIRS:
            shutil.rmtree(d, ignore_errors=True)

    print()
    print("Variants: " + "; ".join(
        f"{sv.name} = {getattr(sv, 'exe', 'supervisord')}"
        + "".join(f" {k}={v}" for k, v in getattr(sv, "extra_env", {}).items())
        for sv in subs))
    print(f"Load average at the end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"Mode: {'quick' if quick else 'full'}, medians of {reps}")
    print()
    print("| figure | " + " | ".join(names) + " | floor |")
    print("|---|" + "---:|" * (len(names) + 1))
    for figure, med, fmt, floor in rows:
        fl = fmt(floor) if floor is not None else "-"
        print(f"| {figure} | " + " | ".join(fmt(med[k]) for k in names) + f" | {fl} |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    ap.add_argument("--procs", help="the procs binary (default: build it with cargo)")
    ap.add_argument("--profile", default="release", choices=["release", "debug"])
    ap.add_argument("--no-build", action="store_true", help="use the built binary as is")
    ap.add_argument("--reps", type=int, help="repeats per figure (default 5, quick 3)")
    ap.add_argument("--only", default="up,running,logs,config",
                    help="comma-separated groups to run: up, running (status, down, "
                    "restart, footprint), logs, config (procs config vs procs --version)")
    ap.add_argument("--n", type=int, help="run `up` only with this N")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL=PATH[,KEY=VALUE...]: compare these procs builds (each with "
                    "this extra environment) instead of procs vs supervisord")
    ap.add_argument("--with-supervisord", action="store_true",
                    help="with --variant: measure supervisord too")
    args = ap.parse_args()
    if args.variant:
        return compare_variants(args)

    quick = args.quick
    reps = args.reps or (3 if quick else 5)
    ns = [args.n] if args.n else ([20] if quick else [10, 100, 500])
    only = set(args.only.split(","))
    n_run = 20 if quick else 100
    idle = 1.0 if quick else 20.0
    log_size = (16 if quick else 256) << 20
    config_pairs = 10 if quick else 60

    exe = find_procs(args)
    config_figure = None
    if "config" in only:
        c, v, r = bench_config(exe, config_pairs)
        config_figure = (
            f"procs config (examples/realistic, 15 processes) {c * 1000:.2f} ms, "
            f"procs --version {v * 1000:.2f} ms: {r:.2f}x (median of {config_pairs} alternating pairs; "
            + ("target <= 2.5x)" if args.profile == "release" else "a debug build: the 2.5x target is for release)")
        )
        print(config_figure, flush=True)
        if only <= {"config"}:
            return 0
    ensure_supervisord()
    subs = [Procs(exe), Supervisord()]
    rows = []  # (figure, procs, supervisord, fmt, floor)

    def alternate(fn):
        """fn(sv) per repeat, alternating which supervisor goes first."""
        out = {"procs": [], "supervisord": []}
        for i in range(reps):
            order = subs if i % 2 == 0 else subs[::-1]
            for sv in order:
                out[sv.name].append(fn(sv))
        return out

    def add(figure, fmt, values, floor=None):
        p = statistics.median(values["procs"])
        s = statistics.median(values["supervisord"])
        rows.append((figure, p, s, fmt, floor))
        line = f"{figure:<34} procs {fmt(p):>10}  supervisord {fmt(s):>10}  {ratio(p, s):>7}"
        if floor is not None:
            line += f"  floor {fmt(floor):>10}  procs/floor {ratio(p, floor)}"
        print(line, flush=True)

    try:
        for n in ns if "up" in only else []:
            floors = [bench_floor(n) for _ in range(reps)]
            add(f"up, N={n}", ms, alternate(lambda sv, n=n: bench_up(sv, n)),
                statistics.median(floors))
        if "running" in only:
            res = alternate(lambda sv: bench_running(sv, n_run, idle, reps))

            def pick(key):
                return {k: [v[key] for v in vs] for k, vs in res.items()}

            add(f"status, {n_run} running", ms, pick("status"))
            add(f"down, N={n_run}", ms, pick("down"))
            add(f"restart after SIGKILL, {n_run} running", ms, pick("restart"))
            add(f"supervisor RSS, {n_run} running", mib, pick("rss"))
            add(f"supervisor CPU over {idle:.0f} s idle", cpu, pick("idle_cpu"))
        if "logs" in only:
            lg = alternate(lambda sv: bench_logs(sv, log_size))
            floor = statistics.median(bench_log_floor(log_size) for _ in range(reps))
            add(f"logs: {log_size >> 20} MiB written", ms,
                {k: [v[0] for v in vs] for k, vs in lg.items()}, floor)
            add("logs: supervisor CPU", cpu,
                {k: [v[1] for v in vs] for k, vs in lg.items()})
    finally:
        for sv in subs:
            try:
                sv.teardown()
            except Exception as err:  # noqa: BLE001 - cleanup goes on regardless
                print(f"warning: teardown of {sv.name}: {err}", file=sys.stderr)
        strays = kill_strays()
        if strays:
            print(f"warning: killed {strays} stray processes", file=sys.stderr)
        for d in TEMP_DIRS:
            shutil.rmtree(d, ignore_errors=True)

    print()
    print(f"Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print(f"Mode: {'quick' if quick else 'full'}, medians of {reps}")
    print()
    print("| figure | procs | supervisord | procs/supervisord | floor | procs/floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for figure, p, s, fmt, floor in rows:
        fl = f"{fmt(floor)} | {ratio(p, floor)}" if floor is not None else "- | -"
        print(f"| {figure} | {fmt(p)} | {fmt(s)} | {ratio(p, s)} | {fl} |")
    if config_figure:
        print()
        print(config_figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
