#!/usr/bin/python3
"""bench/dev_loop.py — `mailrepd dev` as CI uses it (issue 10).

Prints figures, never passes or fails:
  - start-to-ready: exec of `mailrepd dev --ports auto --json` to its JSON
    line, and to the first SMTP greeting; then SIGQUIT to exit (the
    temporary directory removed);
  - a CI-shaped loop: start, send N mails over SMTP (one smtplib
    connection, as an application's test suite does), `mailrepd wait
    --count N`, stop with SIGQUIT; the whole loop and its parts.

Targets (Mailpit-like; no such peer is in Debian): start-to-ready under
50 ms, the whole loop under 1 s.

usage: bench/dev_loop.py [--binary PATH] [--starts N] [--loops N]
                         [--mails N]
"""
import argparse
import json
import os
import selectors
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(binary, tmpdir):
    """Starts dev; returns (proc, info, seconds to the JSON line)."""
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "dev", "--ports", "auto", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, TMPDIR=tmpdir))
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    line = b""
    while not line.endswith(b"\n"):
        if not sel.select(10):
            p.kill()
            sys.exit("mailrepd dev printed no JSON line in 10 s")
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            sys.exit("mailrepd dev exited with %s" % p.wait())
        line += chunk
    sel.close()
    return p, json.loads(line), time.monotonic() - t0


def stop(p, info):
    t0 = time.monotonic()
    p.send_signal(signal.SIGQUIT)
    rc = p.wait()
    p.stdout.close()
    took = time.monotonic() - t0
    if rc != 0 or os.path.exists(info["data_dir"]):
        sys.exit("dev exited %d, data dir left: %s" % (
            rc, os.path.exists(info["data_dir"])))
    return took


def greeting(info):
    s = socket.create_connection((info["host"], info["ports"]["smtp"]))
    s.recv(512)
    s.close()


def ms(v):
    return "%.1f" % (v * 1000)


def row(name, values, unit="ms", scale=1000):
    values = sorted(values)
    print("  %-34s %8.1f %8.1f %8.1f  %s" % (
        name, values[0] * scale, statistics.median(values) * scale,
        values[-1] * scale, unit))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.environ.get(
        "MAILREPD", os.path.join(HERE, "..", "mailrepd")))
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--loops", type=int, default=10)
    ap.add_argument("--mails", type=int, default=100)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mrd-bench-dev-")
    ready, greet, stops = [], [], []
    for _ in range(a.starts):
        t0 = time.monotonic()
        p, info, r = start(a.binary, tmp)
        greeting(info)
        greet.append(time.monotonic() - t0)
        ready.append(r)
        stops.append(stop(p, info))
    loop, sends, waits = [], [], []
    body = ("From: app@example.org\r\nTo: dev@example.com\r\n"
            "Subject: bench %d\r\n\r\n" + "x" * 1000 + "\r\n")
    for _ in range(a.loops):
        t0 = time.monotonic()
        p, info, r = start(a.binary, tmp)
        t1 = time.monotonic()
        with smtplib.SMTP(info["host"], info["ports"]["smtp"]) as c:
            for i in range(a.mails):
                c.sendmail("app@example.org", ["dev@example.com"], body % i)
        t2 = time.monotonic()
        subprocess.run([a.binary, "wait", "--user", "dev", "--count",
                        str(a.mails), "--timeout", "30", "--data",
                        info["data_dir"]], check=True,
                       stdout=subprocess.DEVNULL)
        t3 = time.monotonic()
        stop(p, info)
        t4 = time.monotonic()
        loop.append(t4 - t0)
        sends.append(t2 - t1)
        waits.append(t3 - t2)
    os.rmdir(tmp)
    print("mailrepd dev (%s), TMPDIR on %s" % (a.binary, tmp))
    print("  %-34s %8s %8s %8s" % ("", "min", "median", "max"))
    row("exec to JSON line (%d starts)" % a.starts, ready)
    row("exec to first SMTP greeting", greet)
    row("SIGQUIT to exit, dir removed", stops)
    row("CI loop, %d mails (%d loops)" % (a.mails, a.loops), loop)
    row("  of which %d sendmail calls" % a.mails, sends)
    row("  of which mailrepd wait", waits)
    print("  targets: start-to-ready < 50 ms, whole loop < 1000 ms")


if __name__ == "__main__":
    main()
