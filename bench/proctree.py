#!/usr/bin/env python3
"""bench/proctree.py — memory and code size of a server's process tree.

Standard library only; reads /proc.

  proctree.py rss PID...        one JSON line: RSS and PSS summed over each
                                PID and all its descendants, and the
                                number of processes
  proctree.py peak PID...       sample that every --interval seconds until
                                SIGTERM/SIGINT, then print the peak (JSON)
  proctree.py cpu PID...        CPU seconds (user + system) the trees have
                                used so far, their reaped children's
                                included (JSON); two readings give the CPU
                                of what ran between them
  proctree.py code PID PREFIX...
                                total size of the distinct executable and
                                library files under the PREFIXes that the
                                tree has mapped (the code a server runs)
"""

import json
import os
import signal
import sys
import time


def children_map():
    """Return {ppid: [pid, ...]} for every process now running."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields after
        # the last ')' are "state ppid ...".
        rest = stat[stat.rfind(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def tree(pids):
    """Return the given PIDs (those still alive) and all descendants."""
    kids = children_map()
    seen = []
    todo = [p for p in pids if os.path.exists("/proc/%d" % p)]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


def kib_field(path, field):
    """Return the value in KiB of 'field:' in a /proc status-style file."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(pids):
    """Sum RSS and PSS (KiB) over the trees of pids."""
    procs = tree(pids)
    rss = pss = 0
    for p in procs:
        rss += kib_field("/proc/%d/status" % p, "VmRSS")
        pss += kib_field("/proc/%d/smaps_rollup" % p, "Pss")
    return {"rss_kib": rss, "pss_kib": pss, "processes": len(procs)}


def cpu_seconds(pids):
    """Sum utime, stime, cutime and cstime over the trees of pids: a
    process that exited and was reaped by one of them still counts."""
    tck = os.sysconf("SC_CLK_TCK")
    ticks = 0
    for p in tree(pids):
        try:
            with open("/proc/%d/stat" % p) as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        ticks += sum(int(x) for x in rest[11:15])
    return {"cpu_s": round(ticks / tck, 2)}


def cmd_peak(pids, interval):
    """Sample until signalled; print the peak RSS, PSS and process count."""
    stop = []
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
    peak = {"rss_kib": 0, "pss_kib": 0, "processes": 0, "samples": 0}
    while not stop:
        m = measure(pids)
        for k in ("rss_kib", "pss_kib", "processes"):
            peak[k] = max(peak[k], m[k])
        peak["samples"] += 1
        time.sleep(interval)
    print(json.dumps(peak))
    sys.stdout.flush()


def cmd_code(pid, prefixes):
    """Print the total size of distinct mapped files under prefixes."""
    files = set()
    for p in tree([pid]):
        try:
            with open("/proc/%d/maps" % p) as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6:
                        path = parts[5].strip()
                        if any(path.startswith(x) for x in prefixes):
                            files.add(path)
        except OSError:
            continue
        try:
            exe = os.readlink("/proc/%d/exe" % p)
            if any(exe.startswith(x) for x in prefixes):
                files.add(exe)
        except OSError:
            pass
    total = sum(os.path.getsize(f) for f in files if os.path.exists(f))
    print(json.dumps({"bytes": total, "files": len(files)}))


def main():
    """Dispatch on the sub-command."""
    args = sys.argv[1:]
    interval = 0.1
    if "--interval" in args:
        i = args.index("--interval")
        interval = float(args[i + 1])
        del args[i:i + 2]
    if len(args) >= 2 and args[0] == "rss":
        print(json.dumps(measure([int(a) for a in args[1:]])))
    elif len(args) >= 2 and args[0] == "cpu":
        print(json.dumps(cpu_seconds([int(a) for a in args[1:]])))
    elif len(args) >= 2 and args[0] == "peak":
        cmd_peak([int(a) for a in args[1:]], interval)
    elif len(args) >= 3 and args[0] == "code":
        cmd_code(int(args[1]), args[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
