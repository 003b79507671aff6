"""The system calls an LMTP delivery costs the event loop, counted by
strace on the running server (not timed: counts do not depend on the
machine's load).  On the virtual machines this runs on each call costs
1.5-3 us of CPU, so calls the loop makes in every iteration add up to a
good part of a 4 KiB delivery (bench/RESULTS.md): the loop's CPU clock
(no vDSO has it) is read twice an iteration, no more, and the
full-text index looks for new blobs without a read snapshot (two locks)
when no row changed since its last look."""
import re
import shutil
import subprocess
import time

import pytest

from conftest import DOMAIN, LMTPClient, dot_stuff

MESSAGES = 40
BODY = b"Subject: count\r\n\r\n" + b"counted words of a line\r\n" * 150


def strace_counts(path):
    """{syscall: count} of the -f -c summary strace wrote to path."""
    counts = {}
    for line in open(path):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$",
                     line)
        if m:
            if m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    return counts


@pytest.mark.skipif(shutil.which("strace") is None, reason="no strace")
def test_delivery_syscalls(srv, tmp_path):
    """MESSAGES deliveries on one connection, unpipelined (each command
    its own loop iterations): per message at most 16 reads of a clock
    (48 before: 11 CPU-clock reads an iteration; 8 now) and 24 file
    locks (34 before: the index's three statements in every iteration
    took a snapshot each; 13 now).  The margins are for a slow run,
    where the once-a-second work and the index's batches fall on fewer
    messages."""
    with LMTPClient(srv.port) as c:
        c.lhlo()
        c.transaction("s@remote.test", ["alice@" + DOMAIN], BODY)
        time.sleep(1.5)         # the index has it; a tick went by
        out = tmp_path / "strace.txt"
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(out),
                                   "-p", str(srv.proc.pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)         # attached
        for i in range(MESSAGES):
            c.cmd("MAIL FROM:<s@remote.test>", "250 ")
            c.cmd("RCPT TO:<alice@%s>" % DOMAIN, "250 ")
            c.cmd("DATA", "354 ")
            c.send(dot_stuff(BODY))
            c.expect("250 ")
        tracer.send_signal(2)
        tracer.wait(timeout=30)
    counts = strace_counts(out)
    assert counts.get("sendto", 0) >= 4 * MESSAGES, counts
    per = {k: v / MESSAGES for k, v in counts.items()}
    print(sorted(per.items(), key=lambda kv: -kv[1]))
    assert per.get("clock_gettime", 0) <= 16, per
    assert per.get("fcntl", 0) <= 24, per
