#!/usr/bin/python3
"""bench/session_checks.py — what the checks an IMAP session makes before
each command (its user, its selected mailbox) cost the server.

Prints figures, never passes or fails: server CPU time (utime + stime
from /proc) per `FETCH 1 FLAGS` in a selected mailbox.  Two servers, one
per binary, run side by side and take the commands in turn, so that both
see the same noise of a shared machine.

usage: bench/session_checks.py OLD_BINARY NEW_BINARY [COMMANDS]
"""
import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] /
                       "test" / "integration"))
import conftest  # noqa: E402


def start(binary):
    conftest.MAILREPD = binary
    tmp = pathlib.Path(tempfile.mkdtemp())
    conftest.user_add(tmp / "data", "alice")
    s = conftest.Server(tmp, tmp / "data", (), imap=True)
    s.start()
    c = s.raw("alice")
    c.append("INBOX", b"Subject: x\r\n\r\nx\r\n")
    c.ok("SELECT INBOX")
    return s, c


def cpu(s):
    f = open("/proc/%d/stat" % s.proc.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    bins = sys.argv[1:3]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 30000
    servers = [start(b) for b in bins]
    before = [cpu(s) for s, _ in servers]
    for _ in range(n):
        for _, c in servers:
            c.ok("FETCH 1 FLAGS")
    for (s, c), t, b in zip(servers, before, bins):
        print("%s: %.1f us of server CPU per command (%d commands)" % (
            b, (cpu(s) - t) / n * 1e6, n))
        s.stop()


if __name__ == "__main__":
    main()
