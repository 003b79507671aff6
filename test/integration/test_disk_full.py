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
system full), never a 451 or a cut connection; a message too big for
the room left fails while it is spooled and gets its 452 after the final
dot; IMAP APPEND gets NO [SERVERBUG] (Dovecot's answer to ENOSPC; see
IMAP_NO_FULL in imap_session.h).  When the room comes back, delivery and
APPEND work again in the same server process.  Afterwards every message
that got 250 is stored exactly once, none that got 452 is, and
`mailrepd check` passes.
"""
import os
import random
import resource
import shutil
import subprocess

import pytest

from conftest import DOMAIN, check_store, export, make_message

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
SENDER = "sender@remote.test"
ROOM = 256 * 1024             # bytes left when the disk is "full"
SMALL = 16 * 1024             # a message that fills the room in steps
LARGE = 1024 * 1024           # a message bigger than the room: spool fails
MAX_ATTEMPTS = 200            # bound on deliveries until the first 452
TMPFS_SIZE = 16 * 1024 * 1024


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
        largest there is now (its log included: it writes that too)."""
        files = [p for p in srv.data.rglob("*") if p.is_file()]
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


@pytest.fixture(params=[Tmpfs, FileSize], ids=["tmpfs", "fsize"])
def disk(request, tmp_path, template_data):
    d = request.param(tmp_path)
    try:
        if not d.mounted:
            pytest.skip("cannot mount a tmpfs here: %s" % d.why)
        shutil.copytree(template_data, d.data)
        yield d
    finally:
        d.close()


def deliver(c, marker, size, rng, rcpts=(ALICE,)):
    """One LMTP transaction; returns the replies after the final dot."""
    body = make_message(marker, size, rng, sender=SENDER)
    rr, dr = c.transaction(SENDER, list(rcpts), body)
    assert all(r.startswith("250") for r in rr), rr
    return dr


def append(raw, marker, size, rng):
    """IMAP APPEND to INBOX; returns the tagged reply."""
    msg = make_message(marker, size, rng, sender=SENDER)
    t = raw.tag()
    raw.send(b"%s APPEND INBOX {%d+}\r\n" % (t.encode(), len(msg))
             + msg + b"\r\n")
    return raw.read_until(t)[1]


def test_disk_full(disk, server):
    rng = random.Random(8)
    srv = server(data=disk.data, imap=True)
    acked, refused = [], []      # (recipients, marker)

    def record(marker, rcpts, replies):
        """Sorts one transaction's replies; every one is 250 or 452."""
        assert len(replies) == len(rcpts), replies
        for r in replies:
            assert r.startswith("250 ") or r.startswith("452 4.3.1 "), \
                "%s got %r" % (marker, r)
        for rcpt, r in zip(rcpts, replies):
            (acked if r.startswith("250") else refused).append(
                (rcpt, marker))
        return all(r.startswith("452") for r in replies)

    with srv.client() as c:
        c.lhlo()
        for i in range(3):
            rcpts = (ALICE, BOB)
            record("before-%d" % i, rcpts,
                   deliver(c, "before-%d" % i, SMALL, rng, rcpts))
        assert len(acked) == 6

        disk.squeeze(srv)
        full = False
        for i in range(MAX_ATTEMPTS):
            marker = "full-%d" % i
            rcpts = (ALICE, BOB) if i % 3 == 0 else (ALICE,)
            if record(marker, rcpts, deliver(c, marker, SMALL, rng, rcpts)):
                full = True
                break
        assert full, "no 452 after %d deliveries" % MAX_ATTEMPTS
        c.cmd("NOOP", "250")

        # Too big for the room left: the spool fails while DATA goes on,
        # and the 452 comes after the final dot, on a live connection.
        dr = deliver(c, "spool-full", LARGE, rng, (ALICE, BOB))
        assert dr and all(r.startswith("452 4.3.1 ") for r in dr), dr
        record("spool-full", (ALICE, BOB), dr)
        c.cmd("NOOP", "250")

        with srv.raw() as raw:
            r = append(raw, "append-full", LARGE, rng)
            assert r.startswith("NO [SERVERBUG] "), r

            disk.release(srv)
            # Room again, same process: delivery and APPEND work.
            for i in range(3):
                marker = "after-%d" % i
                dr = deliver(c, marker, SMALL, rng, (ALICE, BOB))
                assert all(r.startswith("250 ") for r in dr), dr
                record(marker, (ALICE, BOB), dr)
            dr = deliver(c, "after-large", LARGE, rng)
            assert dr[0].startswith("250 "), dr
            record("after-large", (ALICE,), dr)
            r = append(raw, "append-after", SMALL, rng)
            assert r.startswith("OK [APPENDUID "), r
            acked.append((ALICE, "append-after"))
        c.cmd("QUIT", "221")

    assert srv.running(), "the server died:\n%s" % srv.log_text()
    srv.stop()
    check_store(srv.data)
    held = {}
    for rcpt in (ALICE, BOB):
        for m in export(srv.data, rcpt.split("@")[0]):
            for marker in [l.split(b" ", 1)[1].decode() for l in
                           m.data.split(b"\r\n") if l.startswith(b"marker ")]:
                held.setdefault((rcpt, marker), 0)
                held[(rcpt, marker)] += 1
    for key in acked:
        assert held.get(key) == 1, "%s acknowledged, stored %s times" % (
            key, held.get(key, 0))
    for key in refused:
        assert key not in held, "%s refused with 452 but stored" % (key,)
    assert set(held) == set(acked)
