#!/usr/bin/python3
"""bench/web_view.py — the web view and its API with many messages.

Prints figures, never passes or fails:
  - API latency (p50, p90, max over --requests requests on one
    keep-alive connection, and the server's CPU time a request) with --messages messages in the store: the
    first page of GET /api/v1/messages, the deepest page (start= near
    the end), one user's list, searches (a subject; free text, with the
    full-text index built), GET /api/v1/mailboxes, and one message's
    JSON;
  - how long a deep page holds the event loop: /healthz latency on a
    second connection while a client asks for the deepest page again
    and again;
  - with --browser: page ready, from the browser's navigation to the
    first 50 rows in the list, over --rounds rounds: as WebDriver sees
    it (its polling adds tens of ms on a loaded machine) and on the
    page's own clock (a MutationObserver run before the page's
    scripts); and a jump to the oldest page (Debian's chromium headless
    through chromium-driver and python3-selenium);
  - with --compare OLD_BINARY instead: the first and the deepest page
    on both binaries at once, each with its own --messages, asked in
    turns of 20 requests, so that both see the same load; with
    --browser too, the page on both, a round each in turns.

Targets (issue 21): API list p50 under 5 ms with 10,000 messages, page
ready under 1 s.

usage: bench/web_view.py [--binary PATH] [--messages N] [--requests N]
                         [--browser [--rounds N]] [--compare OLD_BINARY]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(binary, tmpdir):
    """`mailrepd dev` on automatic ports; returns (proc, its JSON)."""
    p = subprocess.Popen([binary, "dev", "--ports", "auto", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, TMPDIR=tmpdir))
    line = p.stdout.readline()
    if not line:
        sys.exit("mailrepd dev exited with %s" % p.wait())
    return p, json.loads(line)


def deliver(info, n):
    """n messages over LMTP, 4 users' worth of recipients."""
    host, port = info["host"], info["ports"]["lmtp"]
    t0 = time.monotonic()
    with smtplib.LMTP(host, port) as c:
        for i in range(n):
            c.sendmail("s@remote.test", ["%s@example.com" % info["user"]],
                       "From: Sender %d <s%d@remote.test>\r\n"
                       "To: %s@example.com\r\nSubject: message %d\r\n"
                       "Message-ID: <%d@remote.test>\r\n\r\nbody %d\r\n"
                       % (i % 97, i % 97, info["user"], i, i, i))
    return time.monotonic() - t0


def wait_indexed(binary, info):
    """Seconds until the full-text index has every message (searches
    are timed with it, as a store that has been up a while has it)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        out = subprocess.run([binary, "index", "status", "--data",
                              info["data_dir"]], stdout=subprocess.PIPE,
                             text=True).stdout
        if "pending: 0\n" in out:
            break
        time.sleep(0.2)
    return time.monotonic() - t0


def timed(conn, path, n):
    """n GETs of path on one connection: sorted milliseconds, or None
    when the server has no such call (404: an older build)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        out.append((time.perf_counter() - t0) * 1000)
        if r.status == 404:
            return None
        if r.status != 200:
            sys.exit("%s: %d %r" % (path, r.status, body[:200]))
    return sorted(out)


def cpu_ms(pid):
    """The CPU time (user and system) process pid has used, in ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / \
        os.sysconf("SC_CLK_TCK")


def row(name, ms, cpu=None):
    """A row of the table; cpu: the server's CPU ms a request, or None."""
    c = "%9.2f" % cpu if cpu is not None else "%9s" % "-"
    if ms is None:
        print("| %-38s | %7s | %7s | %7s | %s |" % (name, "-", "-", "-", c))
        return
    print("| %-38s | %7.2f | %7.2f | %7.2f | %s |" % (
        name, statistics.median(ms), ms[int(len(ms) * 0.9)], ms[-1], c))


def loop_hold(info, path, n):
    """/healthz latency while another connection asks for path."""
    host, port = info["host"], info["ports"]["http"]
    stop = threading.Event()

    def hammer():
        c = http.client.HTTPConnection(host, port, timeout=60)
        while not stop.is_set():
            c.request("GET", path)
            c.getresponse().read()
        c.close()
    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(0.2)
    c = http.client.HTTPConnection(host, port, timeout=60)
    ms = timed(c, "/healthz", n)
    stop.set()
    t.join()
    c.close()
    return ms


# Run in the page before its own scripts: the time (the page's clock,
# from the navigation's start) when the list first holds 50 rows.
ROWS_SEEN = """
new MutationObserver(function (ms, obs) {
    const rows = document.getElementById("rows");
    if (rows && rows.children.length === 50) {
        window.rowsSeen = performance.now();
        obs.disconnect();
    }
}).observe(document, {childList: true, subtree: true});
"""


def browser(infos, tmpdir, rounds):
    """Page ready and a jump to the oldest page, a round on each server
    (infos) in turns: per server, sorted milliseconds of the wall time
    (WebDriver's polling included), of the page's own clock until the
    rows were there, and of the jump."""
    from selenium import webdriver
    from selenium.webdriver.support.ui import WebDriverWait
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=%s" % os.path.join(tmpdir, "chr"))
    d = webdriver.Chrome(options=opts)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                      {"source": ROWS_SEEN})
    rows = "return document.querySelectorAll('#rows tr').length"
    out = [([], [], []) for _ in infos]
    try:
        for _ in range(rounds):
            for info, (ready, clock, oldest) in zip(infos, out):
                url = "http://%s:%d/" % (info["host"], info["ports"]["http"])
                d.get("about:blank")
                t0 = time.perf_counter()
                d.get(url)
                WebDriverWait(d, 30, poll_frequency=0.005).until(
                    lambda d: d.execute_script(rows) == 50)
                ready.append((time.perf_counter() - t0) * 1000)
                clock.append(d.execute_script("return window.rowsSeen"))
                before = d.execute_script(
                    "return document.getElementById('range').textContent")
                t0 = time.perf_counter()
                d.execute_script("document.getElementById('oldest').click()")
                WebDriverWait(d, 30, poll_frequency=0.005).until(
                    lambda d: d.execute_script("return document."
                                               "getElementById('range')."
                                               "textContent") != before)
                oldest.append((time.perf_counter() - t0) * 1000)
    finally:
        d.quit()
    return [tuple(sorted(x) for x in o) for o in out]


def compare_browser(binary, old, messages, tmpdir, rounds):
    """Page ready on this binary and old, in turns in one browser."""
    servers = [start(b, tmpdir) for b in (binary, old)]
    try:
        for _, info in servers:
            deliver(info, messages)
        got = browser([i for _, i in servers], tmpdir, rounds)
        print("| %-32s | %-4s | %7s | %7s | %7s |" % (
            "ms, %d rounds each, in turns" % rounds, "", "p50", "p90",
            "max"))
        print("|%s|------|---------|---------|---------|" % ("-" * 34))
        for k, name in ((0, "page ready (wall, polled)"),
                        (1, "page ready (page's clock)"),
                        (2, "jump to the oldest page")):
            for which, g in zip(("this", "old"), got):
                ms = g[k]
                print("| %-32s | %-4s | %7.0f | %7.0f | %7.0f |" % (
                    name, which, statistics.median(ms),
                    ms[int(len(ms) * 0.9)], ms[-1]))
    finally:
        for p, _ in servers:
            p.send_signal(signal.SIGQUIT)
            p.wait()


def compare(binary, old, messages, tmpdir):
    """The first and deepest pages, this binary and old in turns."""
    servers = [start(b, tmpdir) for b in (binary, old)]
    try:
        for _, info in servers:
            deliver(info, messages)
        conns = [http.client.HTTPConnection(i["host"], i["ports"]["http"],
                                            timeout=60) for _, i in servers]
        print("| %-38s | %9s | %9s |" % ("p50 ms, in turns", "this",
                                         "old"))
        print("|%s|-----------|-----------|" % ("-" * 40))
        for name, path in (
                ("list, first page (50)", "/api/v1/messages"),
                ("list, deepest page (start=N-50)",
                 "/api/v1/messages?start=%d&limit=50" % (messages - 50))):
            ms = [[], []]
            for _ in range(10):
                for k in (0, 1):
                    ms[k] += timed(conns[k], path, 20)
            print("| %-38s | %9.2f | %9.2f |" % (
                name, statistics.median(ms[0]), statistics.median(ms[1])))
    finally:
        for p, _ in servers:
            p.send_signal(signal.SIGQUIT)
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(HERE, "..",
                                                     "mailrepd"))
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--browser", action="store_true")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--compare", metavar="OLD_BINARY")
    a = ap.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="web-view-bench-")
    if a.compare:
        try:
            if a.browser:
                compare_browser(a.binary, a.compare, a.messages, tmpdir,
                                a.rounds)
            else:
                compare(a.binary, a.compare, a.messages, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return
    p, info = start(a.binary, tmpdir)
    try:
        took = deliver(info, a.messages)
        print("%d messages delivered in %.1f s" % (a.messages, took))
        print("search index built %.1f s later" % wait_indexed(
            a.binary, info))
        c = http.client.HTTPConnection(info["host"], info["ports"]["http"],
                                       timeout=60)
        c.request("GET", "/api/v1/messages?limit=1")
        first = json.loads(c.getresponse().read())["messages"][0]["ID"]
        deep = "/api/v1/messages?start=%d&limit=50" % (a.messages - 50)
        print("\n| %-38s | %7s | %7s | %7s | %9s |" % (
            "ms", "p50", "p90", "max", "CPU ms/req"))
        print("|%s|---------|---------|---------|-----------|" % ("-" * 40))
        for name, path, n in (
                ("list, first page (50)", "/api/v1/messages", a.requests),
                ("list, deepest page (start=N-50)", deep, a.requests),
                ("one user's list", "/api/v1/messages?user=%s" %
                 info["user"], a.requests),
                ("search subject:\"message 5000\" (whole)",
                 "/api/v1/search?query=subject:%22message%205000%22", 10),
                ("search \"body 5000\" (free text, 1 match)",
                 "/api/v1/search?query=%22body%205000%22", 10),
                ("search \"sender 1\" (free text, ~1,100)",
                 "/api/v1/search?query=%22sender%201%22", 10),
                ("mailboxes", "/api/v1/mailboxes", a.requests),
                ("one message's JSON", "/api/v1/message/" + first,
                 a.requests)):
            before = cpu_ms(p.pid)
            ms = timed(c, path, n)
            row(name, ms, (cpu_ms(p.pid) - before) / n)
        row("/healthz beside deepest pages", loop_hold(info, deep,
                                                       a.requests))
        c.close()
        if a.browser:
            ready, clock, oldest = browser([info], tmpdir, a.rounds)[0]
            row("page ready, 50 rows drawn (wall)", ready)
            row("page ready (the page's clock)", clock)
            row("page: jump to the oldest page", oldest)
    finally:
        p.send_signal(signal.SIGQUIT)
        p.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
