"""Disk full: the data directory runs out of room while mail arrives.

Two ways to run out, the same test for each:
- tmpfs: the data directory is a small tmpfs and a filler file takes all
  but a little of it; writes fail with ENOSPC.  Needs mount permission
  (root outside a container); skipped where mounting is refused.
- fsize: the running server's file-size limit (RLIMIT_FSIZE, set with
  prlimit on its pid) is lowered to a little above its largest file;
  writes past it fail with EFBIG, which the server must take as a full
  disk (it ignores SIGXFSZ, which would kill it).  Works anywhere.

While full: every LMTP delivery gets 250 or `452 4.3.1` (RFC 3463: mail
system full, after the final dot, or to DATA once the server knows the
disk is full), never a 451 or a cut connection; a message too big for
the room left fails while it is spooled and gets its 452 after the final
dot; IMAP APPEND gets NO [OVERQUOTA] (RFC 5530; see IMAP_NO_FULL in
imap_session.h).  When the room comes back, delivery and APPEND work
again in the same server process.  Afterwards every message that got 250
is stored exactly once, none that got 452 is, and `mailrepd check`
passes.

On the tmpfs, users free space themselves: once deliveries get 452, the
user can still flag messages \\Deleted, EXPUNGE them and DELETE a
mailbox (the server keeps a reserve on the disk for that and releases it
when the disk fills), and mail comes in again into the room they freed,
with nothing acknowledged lost across a restart.
"""
import os
import random
import resource
import shutil
import subprocess
import time

import pytest

from conftest import DOMAIN, check_store, export, make_message

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
SENDER = "sender@remote.test"
ROOM = 256 * 1024             # bytes left when the disk is "full"
SMALL = 16 * 1024             # a message that fills the room in steps
LARGE = 1024 * 1024           # a message bigger than the room: spool fails
MAX_ATTEMPTS = 200            # bound on deliveries until the first 452
TMPFS_SIZE = 32 * 1024 * 1024


class Tmpfs:
    """The data directory on its own small tmpfs."""

    name = "tmpfs"

    def __init__(self, root):
        self.mnt = root / "disk"
        self.mnt.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0700" % TMPFS_SIZE, "tmpfs",
                            str(self.mnt)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.mounted = p.returncode == 0
        self.why = p.stdout.decode(errors="replace").strip()
        self.filler = self.mnt / "filler"
        self.data = self.mnt / "data"

    def squeeze(self, srv):
        """Fills the file system up to ROOM bytes."""
        st = os.statvfs(self.mnt)
        take = st.f_bavail * st.f_frsize - ROOM
        assert take > 0
        with open(self.filler, "wb") as f:
            chunk = b"\0" * (1 << 20)
            while take > 0:
                n = f.write(chunk[:min(take, len(chunk))])
                take -= n

    def release(self, srv):
        self.filler.unlink()

    def close(self):
        if self.mounted:
            if subprocess.run(["umount", str(self.mnt)]).returncode != 0:
                subprocess.run(["umount", "-l", str(self.mnt)])


class FileSize:
    """The server's RLIMIT_FSIZE, lowered on the running process."""

    name = "fsize"

    def __init__(self, root):
        self.mounted = True
        self.why = ""
        self.data = root / "data"

    def squeeze(self, srv):
        """No file of the server may grow more than ROOM bytes past the
        largest there is now (its log included: it writes that too; the
        reserve, allocated whole already, does not grow)."""
        files = [p for p in srv.data.rglob("*") if p.is_file()
                 and p.name != "reserve"]
        largest = max(p.stat().st_size for p in files + [srv.log])
        limit = largest + ROOM
        assert limit < LARGE, "the store grew past the test's sizes"
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (limit, resource.RLIM_INFINITY))

    def release(self, srv):
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    def close(self):
        pass


def made_disk(kind, tmp_path, template_data):
    """A disk of that kind holding a copy of the template store."""
    d = kind(tmp_path)
    try:
        if not d.mounted:
            pytest.skip("cannot mount a tmpfs here: %s" % d.why)
        shutil.copytree(template_data, d.data)
        yield d
    finally:
        d.close()


@pytest.fixture(params=[Tmpfs, FileSize], ids=["tmpfs", "fsize"])
def disk(request, tmp_path, template_data):
    yield from made_disk(request.param, tmp_path, template_data)


def deliver(c, marker, size, rng, rcpts=(ALICE,)):
    """One LMTP transaction; returns the replies after the final dot,
    one per recipient (DATA's own 452 stands for each)."""
    body = make_message(marker, size, rng, sender=SENDER)
    rr, dr = c.transaction(SENDER, list(rcpts), body)
    assert all(r.startswith("250") for r in rr), rr
    if len(dr) == 1 and "<" not in dr[0]:     # DATA itself was refused
        c.cmd("RSET", "250")
        return dr * len(rcpts)
    return dr


class Ledger:
    """Which (recipient, marker) got 250 and which 452."""

    def __init__(self):
        self.acked, self.refused = [], []

    def record(self, marker, rcpts, replies):
        """Sorts one transaction's replies; every one is 250 or 452.
        Returns whether all were 452."""
        assert len(replies) == len(rcpts), replies
        for r in replies:
            assert r.startswith("250 ") or r.startswith("452 4.3.1 "), \
                "%s got %r" % (marker, r)
        for rcpt, r in zip(rcpts, replies):
            (self.acked if r.startswith("250") else self.refused).append(
                (rcpt, marker))
        return all(r.startswith("452") for r in replies)

    def fill(self, c, rng, prefix, rcpts_of=lambda i: (ALICE,)):
        """Delivers SMALL messages until one gets 452 everywhere."""
        for i in range(MAX_ATTEMPTS):
            marker = "%s-%d" % (prefix, i)
            rcpts = rcpts_of(i)
            if self.record(marker, rcpts, deliver(c, marker, SMALL, rng,
                                                  rcpts)):
                return
        raise AssertionError("no 452 after %d deliveries" % MAX_ATTEMPTS)

    def until_stuck(self, c, rng, prefix, seconds=2.5):
        """Delivers until every delivery for `seconds` got 452: the
        server has seen the disk full and given back what it could
        (its WAL) and it is still full."""
        since = None
        for i in range(MAX_ATTEMPTS * 5):
            marker = "%s-%d" % (prefix, i)
            if not self.record(marker, (ALICE,), deliver(c, marker, SMALL,
                                                         rng)):
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since > seconds:
                return
            time.sleep(0.05)
        raise AssertionError("not full after %d deliveries" % i)

    def until_accepted(self, c, rng, prefix, size=SMALL, rcpts=(ALICE,),
                       seconds=15):
        """Delivers until a delivery gets 250 (the server may take a
        second to see the room); returns the markers it tried."""
        end = time.monotonic() + seconds
        i = 0
        while True:
            marker = "%s-%d" % (prefix, i)
            if not self.record(marker, rcpts, deliver(c, marker, size, rng,
                                                      rcpts)):
                return
            assert time.monotonic() < end, "still 452 after %d s" % seconds
            i += 1
            time.sleep(0.2)

    def check(self, data, gone=()):
        """Every message that got 250 (but those in gone, deleted by
        the user) is stored once, and none that got 452."""
        held = {}
        for rcpt in (ALICE, BOB):
            for m in export(data, rcpt.split("@")[0]):
                for marker in [l.split(b" ", 1)[1].decode() for l in
                               m.data.split(b"\r\n")
                               if l.startswith(b"marker ")]:
                    held.setdefault((rcpt, marker), 0)
                    held[(rcpt, marker)] += 1
        want = set(self.acked) - set(gone)
        for key in want:
            assert held.get(key) == 1, "%s acknowledged, stored %s times" \
                % (key, held.get(key, 0))
        for key in self.refused:
            assert key not in held, "%s refused with 452 but stored" % (key,)
        assert set(held) == want


def append_to(raw, mailbox, marker, size, rng):
    """IMAP APPEND; returns the tagged reply."""
    msg = make_message(marker, size, rng, sender=SENDER)
    t = raw.tag()
    raw.send(b"%s APPEND %s {%d+}\r\n" % (t.encode(), mailbox.encode(),
                                           len(msg)) + msg + b"\r\n")
    return raw.read_until(t)[1]


def append(raw, marker, size, rng):
    """IMAP APPEND to INBOX; returns the tagged reply."""
    return append_to(raw, "INBOX", marker, size, rng)


def test_disk_full(disk, server):
    rng = random.Random(8)
    srv = server(data=disk.data, imap=True)
    led = Ledger()

    with srv.client() as c:
        c.lhlo()
        for i in range(3):
            rcpts = (ALICE, BOB)
            led.record("before-%d" % i, rcpts,
                       deliver(c, "before-%d" % i, SMALL, rng, rcpts))
        assert len(led.acked) == 6

        disk.squeeze(srv)
        led.fill(c, rng, "full",
                 lambda i: (ALICE, BOB) if i % 3 == 0 else (ALICE,))
        c.cmd("NOOP", "250")

        # Too big for the room left: the spool fails while DATA goes on,
        # and the 452 comes after the final dot, on a live connection.
        dr = deliver(c, "spool-full", LARGE, rng, (ALICE, BOB))
        assert dr and all(r.startswith("452 4.3.1 ") for r in dr), dr
        led.record("spool-full", (ALICE, BOB), dr)
        c.cmd("NOOP", "250")

        with srv.raw() as raw:
            r = append(raw, "append-full", LARGE, rng)
            assert r.startswith("NO [OVERQUOTA] "), r

            disk.release(srv)
            # Room again, same process: delivery and APPEND work.
            led.until_accepted(c, rng, "room", rcpts=(ALICE, BOB))
            for i in range(3):
                marker = "after-%d" % i
                dr = deliver(c, marker, SMALL, rng, (ALICE, BOB))
                assert all(r.startswith("250 ") for r in dr), dr
                led.record(marker, (ALICE, BOB), dr)
            dr = deliver(c, "after-large", LARGE, rng)
            assert dr[0].startswith("250 "), dr
            led.record("after-large", (ALICE,), dr)
            r = append(raw, "append-after", SMALL, rng)
            assert r.startswith("OK [APPENDUID "), r
            led.acked.append((ALICE, "append-after"))
        c.cmd("QUIT", "221")

    assert srv.running(), "the server died:\n%s" % srv.log_text()
    srv.stop()
    check_store(srv.data)
    led.check(srv.data)


OLD = 24                      # messages of the mailbox the user deletes
OLD_SIZE = 64 * 1024          # each; with INBOX's as many: 3 MiB freed


@pytest.fixture
def tmpfs(tmp_path, template_data):
    yield from made_disk(Tmpfs, tmp_path, template_data)


def test_users_free_space_on_a_full_disk(tmpfs, server):
    """The disk fills with deliveries until 452; then the user (logging
    in only now) flags INBOX's old mail \\Deleted, EXPUNGEs it and
    DELETEs a mailbox, every command answered OK; mail comes in again
    into the room freed, without anyone freeing the disk; the server
    kept serving, `mailrepd check` is clean, and a restart keeps all
    that was acknowledged."""
    rng = random.Random(17)
    srv = server(data=tmpfs.data, imap=True)
    led = Ledger()
    gone = []
    with srv.raw() as raw:
        raw.ok("CREATE Old")
        for i in range(OLD):
            r = append_to(raw, "Old", "old-%d" % i, OLD_SIZE, rng)
            assert r.startswith("OK"), r
            gone.append((ALICE, "old-%d" % i))
    with srv.client() as c:
        c.lhlo()
        for i in range(OLD):
            marker = "inbox-%d" % i
            led.record(marker, (ALICE,), deliver(c, marker, OLD_SIZE, rng))
            gone.append((ALICE, marker))
        led.record("bob", (BOB,), deliver(c, "bob", SMALL, rng, (BOB,)))
        assert len(led.acked) == OLD + 1

        tmpfs.squeeze(srv)
        led.until_stuck(c, rng, "full")
        c.cmd("NOOP", "250")
        with srv.raw() as raw:
            raw.ok("SELECT INBOX")
            raw.ok("STORE 1:%d +FLAGS.SILENT (\\Deleted)" % OLD)
            raw.ok("EXPUNGE")
            raw.ok("DELETE Old")
            assert not any(l.endswith(" Old") for l in raw.ok('LIST "" *'))
            # Mail comes in again, into the room the user freed: a
            # delivery may still get 452 while the server gives the
            # WAL's room back (once a second), but 1 MiB gets in.
            led.until_accepted(c, rng, "freed")
            end = time.monotonic() + 30
            for i in range(1000):
                if len([k for k in led.acked if "again" in k[1]]) >= 16:
                    break
                assert time.monotonic() < end, "the room freed is not used"
                marker = "again-%d" % i
                if led.record(marker, (ALICE,), deliver(c, marker, OLD_SIZE,
                                                        rng)):
                    time.sleep(0.2)
            r = append_to(raw, "INBOX", "append-again", SMALL, rng)
            assert r.startswith("OK [APPENDUID "), r
            led.acked.append((ALICE, "append-again"))
            raw.ok("NOOP")
        c.cmd("QUIT", "221")
    assert srv.running(), "the server died:\n%s" % srv.log_text()
    assert "store.full" in srv.log_text()
    srv.stop()
    # A restart on the disk still full serves what it holds.
    srv.start()
    with srv.raw() as raw:
        got = raw.ok("STATUS INBOX (MESSAGES)")
        assert "MESSAGES %d" % len([k for k in set(led.acked) - set(gone)
                                    if k[0] == ALICE]) in got[0], got
    srv.stop()
    tmpfs.release(srv)           # room for the checks' own files
    check_store(srv.data)
    led.check(srv.data, gone)


def test_expunge_beside_a_reserve_held_on_a_nearly_full_disk(tmpfs, server):
    """The disk fills to ROOM by another process while the server still
    holds its reserve file and no write of its own has failed yet; the
    user's EXPUNGE of 1.5 MiB then needs more WAL room than is left
    (SQLite zeroes the pages it frees).  It must answer OK the first
    time: the write releases the reserve before it begins, rather than
    failing and releasing it for the next one.  Afterwards the messages
    are gone, the rest kept, and `mailrepd check` is clean."""
    rng = random.Random(23)
    srv = server(data=tmpfs.data, imap=True)
    with srv.raw() as raw:
        for i in range(OLD):
            r = append_to(raw, "INBOX", "old-%d" % i, OLD_SIZE, rng)
            assert r.startswith("OK"), r
        r = append_to(raw, "INBOX", "kept", SMALL, rng)
        assert r.startswith("OK"), r
    srv.stop()              # a clean stop leaves no WAL to write into
    srv.start()
    tmpfs.squeeze(srv)
    with srv.raw() as raw:
        raw.ok("SELECT INBOX")
        raw.ok("STORE 1:%d +FLAGS.SILENT (\\Deleted)" % OLD)
        raw.ok("EXPUNGE")
        got = raw.ok("STATUS INBOX (MESSAGES)")
        assert "MESSAGES 1" in got[0], got
    assert srv.running(), "the server died:\n%s" % srv.log_text()
    assert "the disk is nearly full" in srv.log_text()
    srv.stop()
    tmpfs.release(srv)
    check_store(srv.data)
