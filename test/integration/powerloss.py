"""The power-loss harness: runs a workload against the test build
(build/crash/mailrepd, whose SQLite VFS in test/testvfs.c writes a crash
image of the store at crash points drawn by a seeded generator), keeps a
ledger of what the clients were told, and checks every image with the
real binary: `mailrepd check` clean, every acknowledged delivery, APPEND,
flag change and expunge there exactly once.

The server does not stop at a crash point: the image is what the disk
could hold had the power gone then, and the server goes on to the next
point, so one run yields many images.  Each image records the
CLOCK_MONOTONIC time of its cut (Python's time.monotonic() reads the
same clock); a reply the client had received before that time was sent
before the cut, so what it acknowledged must be in the image.
"""
import base64
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import (DOMAIN, HOST, MAILREPD, REPO, IMAPRaw, LMTPClient,
                      LMTPError, free_port, sanitizer_report)

CRASH_BIN = os.environ.get("MAILREPD_CRASH",
                           str(REPO / "build" / "crash" / "mailrepd"))
# Images are checked with the release binary when it is built (fast: a
# few hundred checks), else with the one the tests run.
CHECK_BIN = os.environ.get("MAILREPD_RELEASE", str(REPO / "mailrepd"))
if not os.access(CHECK_BIN, os.X_OK):
    CHECK_BIN = MAILREPD
FLAG_BITS = {"\\Seen": 0x01, "\\Answered": 0x02, "\\Flagged": 0x04}
DB_FILES = ("mailrepd.db", "mailrepd.db-wal")


def vfs_env(images, seed, every, most, arm, extra=None):
    """The environment that turns the test VFS's power-loss model on."""
    env = dict(os.environ, MAILREPD_VFS_IMAGES=str(images),
               MAILREPD_VFS_SEED=str(seed), MAILREPD_VFS_EVERY=str(every),
               MAILREPD_VFS_MAX=str(most), MAILREPD_VFS_ARM=str(arm))
    env.update(extra or {})
    return env


def message(tag, pad=0, rng=None):
    """A message whose subject is tag, with pad bytes of incompressible
    base64 lines drawn from rng (a store compresses what it can)."""
    body = ("From: <s@remote.test>\r\nTo: <alice@%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@test>\r\n\r\nbody of %s\r\n" % (
                DOMAIN, tag, tag, tag)).encode()
    if pad:
        raw = base64.b64encode(rng.randbytes(pad * 3 // 4))
        body += b"".join(raw[i:i + 76] + b"\r\n"
                         for i in range(0, len(raw), 76))
    return body


class Entry:
    """One message as its clients saw it: when each change was acked."""

    def __init__(self, tag):
        self.tag = tag
        self.uid = None
        self.acked = None		# monotonic time of the 250 / OK
        self.flags = {}			# flag -> time its STORE was acked
        self.expunging = None		# time the expunge was asked for
        self.expunged = None		# time the UID EXPUNGE was acked


class Ledger:
    def __init__(self):
        self.entries = {}
        self.ops = 0

    def new(self, tag):
        e = self.entries[tag] = Entry(tag)
        return e

    def live(self):
        return [e for e in self.entries.values()
                if e.uid is not None and e.expunged is None]


class Workload:
    """Deliveries (LMTP), APPENDs, flag STOREs and expunges (IMAP) on
    alice's INBOX, one at a time, each recorded in the ledger when its
    reply arrives.  A connection the server drops ends the workload."""

    def __init__(self, lmtp_port, imap_port, rng, ledger, prefix="m",
                 big=0):
        self.big = big			# share of messages of 8-64 KiB
        self.lmtp_port = lmtp_port
        self.rng = rng
        self.ledger = ledger
        self.prefix = prefix
        self.imap = IMAPRaw(imap_port)
        self.imap.login("alice")
        self.imap.ok("SELECT INBOX")
        self.ops = {"deliver": self.deliver, "append": self.append,
                    "flag": self.flag, "expunge": self.expunge}
        self.weights = {"deliver": 4, "append": 2, "flag": 3, "expunge": 1}

    def close(self):
        self.imap.close()

    def step(self, kinds=None):
        kinds = kinds or list(self.weights)
        live = self.ledger.live()
        if not live:
            kinds = [k for k in kinds if k in ("deliver", "append")]
        kind = self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]
        self.ledger.ops += 1
        self.ops[kind]()

    def tag(self):
        return "%s%dx" % (self.prefix, len(self.ledger.entries))

    def body(self, tag):
        big = self.rng.random() < self.big
        return message(tag, self.rng.randrange(8192, 65536) if big else 0,
                       self.rng)

    def deliver(self):
        e = self.ledger.new(self.tag())
        with LMTPClient(self.lmtp_port) as c:
            c.lhlo()
            _, data = c.transaction("s@remote.test",
                                    ["alice@" + DOMAIN], self.body(e.tag))
        if data and data[0].startswith("250"):
            e.acked = time.monotonic()
            self.imap.ok("NOOP")
            untagged = self.imap.ok("UID SEARCH SUBJECT %s" % e.tag)
            uids = [int(x) for l in untagged if l.startswith("* SEARCH")
                    for x in l.split()[2:]]
            assert len(uids) == 1, (e.tag, untagged)
            e.uid = uids[0]

    def append(self):
        e = self.ledger.new(self.tag())
        done = self.imap.append("INBOX", self.body(e.tag))
        e.acked = time.monotonic()
        m = re.search(r"APPENDUID \d+ (\d+)", done)
        assert m, done
        e.uid = int(m.group(1))

    def flag(self):
        e = self.rng.choice(self.ledger.live())
        flag = self.rng.choice(sorted(FLAG_BITS))
        self.imap.ok("UID STORE %d +FLAGS.SILENT (%s)" % (e.uid, flag))
        e.flags.setdefault(flag, time.monotonic())

    def expunge(self):
        e = self.rng.choice(self.ledger.live())
        e.expunging = time.monotonic()
        self.imap.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % e.uid)
        self.imap.ok("UID EXPUNGE %d" % e.uid)
        e.expunged = time.monotonic()


def cut_time(image):
    return float((Path(image) / "CRASH").read_text().split()[0])


def restore(image, dest):
    """A data dir holding the image's database files."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for name in DB_FILES:
        if (Path(image) / name).exists():
            shutil.copy(Path(image) / name, Path(dest) / name)
    return dest


def store_rows(data, sql, args=()):
    """The rows of one query of the store in data (read-only)."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def inbox(data, user="alice"):
    """{subject: [(uid, flags)]} of user's INBOX, read from the store."""
    rows = store_rows(
        data, "SELECT b.subject, m.uid, m.flags FROM message m "
        "JOIN blob b ON b.id = m.blob_id "
        "JOIN mailbox mb ON mb.id = m.mailbox_id "
        "JOIN user u ON u.id = mb.user_id "
        "WHERE u.name = ? AND mb.name = 'INBOX'", (user,))
    out = {}
    for subject, uid, flags in rows:
        out.setdefault(subject, []).append((uid, flags))
    return out


def losses(ledger, held, t_cut):
    """What the image (held: inbox()) lacks of what was acknowledged
    before t_cut, or holds twice; a list of sentences."""
    bad = []
    for e in ledger.entries.values():
        copies = held.get(e.tag, [])
        if len(copies) > 1:
            bad.append("%s is there %d times" % (e.tag, len(copies)))
        if e.expunged is not None and e.expunged < t_cut:
            if copies:
                bad.append("%s came back after its expunge was acked"
                           % e.tag)
            continue
        if e.acked is None or e.acked >= t_cut:
            continue
        if not copies:
            # An expunge asked for before the cut may be durable before
            # its reply was sent.
            if e.expunging is None or e.expunging >= t_cut:
                bad.append("%s was acknowledged and is lost" % e.tag)
            continue
        uid, flags = copies[0]
        if uid != e.uid:
            bad.append("%s has uid %d, acknowledged as %d" % (
                e.tag, uid, e.uid))
        for flag, t in e.flags.items():
            if t < t_cut and not flags & FLAG_BITS[flag]:
                bad.append("%s lost its acknowledged %s" % (e.tag, flag))
    return bad


def check_image(image, ledger, scratch):
    """Restores image into scratch, runs `mailrepd check` on it, and
    returns the list of problems found (empty: the image is good)."""
    data = restore(image, scratch)
    p = subprocess.run([CHECK_BIN, "check", "--data", str(data)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert sanitizer_report(p.stderr) is None, p.stderr
    if p.returncode != 0 or not p.stdout.startswith("ok: ") or \
            " 0 problems" not in p.stdout:
        return ["check failed: %s%s" % (p.stdout, p.stderr)]
    return losses(ledger, inbox(data), cut_time(image))


def images(root):
    """The finished crash images under root, in the order they were cut."""
    return sorted((p for p in Path(root).iterdir() if p.name.isdigit()),
                  key=lambda p: int(p.name))


class CrashServer:
    """`build/crash/mailrepd serve` with the power-loss model on."""

    def __init__(self, tmp, data, env, args=()):
        self.tmp = Path(tmp)
        self.data = Path(data)
        self.env = env
        self.args = list(args)
        self.port = free_port()
        self.imap_port = free_port()
        self.log = self.tmp / "crash-serve.log"
        self.proc = None

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [CRASH_BIN, "serve", "--data", str(self.data),
                 "--lmtp", "%s:%d" % (HOST, self.port),
                 "--imap", "%s:%d" % (HOST, self.imap_port),
                 "--name", "crash.test"] + self.args,
                env=self.env, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with LMTPClient(self.port, timeout=2) as c:
                    c.cmd("QUIT", "221 ")
                return self
            except (OSError, LMTPError):	# a slow start on a busy host
                time.sleep(0.05)
        raise AssertionError("crash build not ready:\n" +
                             self.log.read_text())

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.proc is None:
            return None
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode


class FaultFileServer(CrashServer):
    """The test build with one of its fault hooks' control files: the
    hook (test/testvfs.c, test/testalloc.c) reads the file named in the
    environment variable env_var, whose one line arm() writes as a new
    generation; it logs marker for each fault it injects."""

    def __init__(self, tmp, data, env_var, name, marker, args=()):
        self.faults = Path(tmp) / name
        self.marker = marker
        env = dict(os.environ, **{env_var: str(self.faults)})
        super().__init__(tmp, data, env, args)
        self.gen = 0
        self.mark = 0

    def write_faults(self, fields):
        """Makes "GEN fields" the file's line, whole (a rename)."""
        self.gen += 1
        tmp = self.faults.with_suffix(".tmp")
        tmp.write_text("%d %s\n" % (self.gen, fields))
        tmp.rename(self.faults)
        self.mark = self.log.stat().st_size if self.log.exists() else 0

    def disarm(self):
        if self.faults.exists():
            self.faults.unlink()

    def since(self):
        """The log since the last arm()."""
        if not self.log.exists():
            return b""
        with open(self.log, "rb") as f:
            f.seek(self.mark)
            return f.read()

    def injected(self):
        """Whether a fault was injected since the last arm()."""
        return self.marker in self.since()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def replica_state(data):
    """(applied position, {(mailbox uniqueid, uid): (guid, flags)}) of
    a replica's store."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True)
    try:
        applied = db.execute("SELECT applied FROM node").fetchone()[0]
        rows = db.execute(
            "SELECT mb.uniqueid, m.uid, b.guid, m.flags FROM message m "
            "JOIN blob b ON b.id = m.blob_id "
            "JOIN mailbox mb ON mb.id = m.mailbox_id").fetchall()
    finally:
        db.close()
    return applied, {(r[0], r[1]): (r[2], r[3]) for r in rows}


def keep_log(master_data):
    """Makes a stopped master's store keep a copy of every log record in
    replog_kept: the master purges what its replicas acknowledged, and
    log_replay() needs all of it.  Test scaffolding, never in a store
    that a check reads."""
    db = sqlite3.connect(str(Path(master_data) / "mailrepd.db"))
    try:
        db.executescript(
            "CREATE TABLE replog_kept AS SELECT * FROM replog WHERE 0;"
            "CREATE TRIGGER replog_keep AFTER INSERT ON replog BEGIN "
            "INSERT INTO replog_kept SELECT * FROM replog "
            "WHERE seq = new.seq; END;")
    finally:
        db.close()


def log_replay(master_data, upto):
    """The messages a replica holds after applying the master's log up
    to and including upto: {(mailbox uniqueid, uid): (guid, flags)}.
    The master's store must keep its log (keep_log())."""
    rows = store_rows(
        master_data, "SELECT type, mailbox, uid, guid, flags FROM "
        "replog_kept WHERE seq <= ? AND type LIKE 'message.%' ORDER BY seq",
        (upto,))
    held = {}
    for kind, box, uid, guid, flags in rows:
        if kind == "message.append":
            held[(box, uid)] = (guid, flags)
        elif kind == "message.flags" and (box, uid) in held:
            held[(box, uid)] = (held[(box, uid)][0], flags)
        elif kind == "message.expunge":
            held.pop((box, uid), None)
    return held


def check_replica_image(image, ledger, scratch, master_data):
    """check_image() for a replica's image in synchronous mode (every
    acknowledgement waited for the replica), and its applied position
    must name exactly what it holds."""
    bad = check_image(image, ledger, scratch)
    if bad and bad[0].startswith("check failed"):
        return bad
    applied, held = replica_state(scratch)
    want = log_replay(master_data, applied)
    if held != want:
        extra = sorted(set(held) - set(want))
        missing = sorted(set(want) - set(held))
        differ = sorted(k for k in set(held) & set(want)
                        if held[k] != want[k])
        bad.append("applied position %d does not match the store: "
                   "%d extra, %d missing, %d differ" % (
                       applied, len(extra), len(missing), len(differ)))
    return bad
