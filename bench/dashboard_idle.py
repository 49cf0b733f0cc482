#!/usr/bin/env python3
"""The idle cost of `procs dashboard` (issue 17): 3 projects of 10 processes each.

Usage: python3 bench/dashboard_idle.py [--procs target/release/procs] [--seconds 30]

Everything runs in a temporary HOME/XDG directory (its own project index), so nothing of
yours is listed or touched. Measured on the dashboard process alone (utime+stime from
/proc/PID/stat over the window, VmRSS at its end), in three states:
  1. no client connected;
  2. what an open page keeps connected: the state stream (/api/v1/events) and one merged
     log stream (/api/v1/projects/ID/logs?follow=true), the streams' cost only;
  3. the same plus what a visible page also does: read every project's status route
     (/api/v1/projects/ID/processes, CPU and memory of each process tree) every 5 s.
Timings are printed, never checked.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0), rss_kib(pid)


def open_sse(addr, path, token):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    s.settimeout(10)
    s.recv(4096)  # the head (and the first events)
    s.settimeout(None)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", default="target/release/procs")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    procs = os.path.abspath(args.procs)
    with tempfile.TemporaryDirectory(prefix="procs-dash-idle-") as tmp:
        env = dict(os.environ)
        env.update(
            HOME=tmp,
            XDG_STATE_HOME=os.path.join(tmp, "state"),
            XDG_RUNTIME_DIR=os.path.join(tmp, "run"),
            NO_COLOR="1",
        )
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
        projects = []
        for i in range(3):
            d = os.path.join(tmp, f"p{i}")
            os.makedirs(d)
            with open(os.path.join(d, "procs.yaml"), "w") as f:
                f.write("processes:\n")
                for j in range(10):
                    f.write(f"  s{j}:\n    command: \"sleep 100000\"\n")
            projects.append(d)
        dash = None
        try:
            for d in projects:
                subprocess.run([procs, "up"], cwd=d, env=env, check=True,
                               stdout=subprocess.DEVNULL)
            dash = subprocess.Popen([procs, "--json", "dashboard"], cwd=tmp, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            info = json.loads(dash.stdout.readline())
            addr, token = info["address"], info["token"]
            time.sleep(2)  # let start-up settle before the window
            cpu, rss = measure(dash.pid, args.seconds)
            print(f"no client:           CPU {cpu:.3f}% of one core, RSS {rss / 1024:.1f} MiB")
            req = urllib.request.Request(f"http://{addr}/api/v1/projects",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                ids = json.load(r)["projects"]
            streams = [open_sse(addr, "/api/v1/events", token),
                       open_sse(addr, f"/api/v1/projects/{ids[0]['id']}/logs?follow=true", token)]
            time.sleep(2)
            cpu, rss = measure(dash.pid, args.seconds)
            print(f"page's two streams:  CPU {cpu:.3f}% of one core, RSS {rss / 1024:.1f} MiB")
            stop = threading.Event()

            def status_reads():
                while not stop.wait(5.0):
                    for p in ids:
                        r = urllib.request.Request(
                            f"http://{addr}/api/v1/projects/{p['id']}/processes",
                            headers={"Authorization": f"Bearer {token}"})
                        with urllib.request.urlopen(r, timeout=10) as resp:
                            resp.read()

            reader = threading.Thread(target=status_reads, daemon=True)
            reader.start()
            cpu, rss = measure(dash.pid, args.seconds)
            stop.set()
            reader.join()
            print(f"+ 5 s status reads:  CPU {cpu:.3f}% of one core, RSS {rss / 1024:.1f} MiB")
            for s in streams:
                s.close()
        finally:
            if dash:
                dash.terminate()
                dash.wait()
            for d in projects:
                subprocess.run([procs, "down"], cwd=d, env=env, stdout=subprocess.DEVNULL)
    print(f"({args.seconds:.0f} s windows, {len(projects)} projects x 10 processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
