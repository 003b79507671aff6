"""The WAL's checkpoints run on a thread of their own, never in the loop.

SQLite copies the WAL into the database on its own inside the commit
that takes it past 1,000 pages: on the loop's thread, for as long as
writing and syncing those pages takes (1.46 s seen during a MOVE of
20,000 on a loaded disk, every session waiting).  The server turns that
off and runs PASSIVE checkpoints on a thread with its own connection;
each logs `store.checkpoint thread=checkpointer`.  The WAL stays bounded
(writes wait for the thread once it holds STORE_WAL_PAUSE_PAGES), and a
cut in the middle of one of those checkpoints, or a kill -9, loses
nothing acknowledged.  No timed pass or fail: the probe's threshold only
catches a loop held for seconds."""
import os
import re
import threading
import time

import pytest

from conftest import check_store
from powerloss import CRASH_BIN, images
from test_imap_copy_steps import COPY_STALL
from test_imap_steps import Probe, count, fill
from test_power_loss import check_run, crash_run

MOVED = 10000		# about 8 checkpoints' worth of WAL
WAL_PAUSE = 4096 * 4096  # STORE_WAL_PAUSE_PAGES of 4 KiB
CKPT = re.compile(r"store\.checkpoint thread=checkpointer mode=(\w+) "
                  r"frames=(\d+) copied=(\d+) ms=(\d+) rc=(\d+)")


def checkpoints(log):
    """(mode, frames, copied, ms, rc) of each checkpoint logged."""
    return [(m.group(1),) + tuple(int(g) for g in m.groups()[1:])
            for m in CKPT.finditer(log)]


class WalWatch:
    """The WAL file's largest size, sampled every 10 ms in a thread."""

    def __init__(self, data):
        self.path = os.path.join(str(data), "mailrepd.db-wal")
        self.most = 0
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.is_set():
            try:
                self.most = max(self.most, os.path.getsize(self.path))
            except OSError:
                pass
            time.sleep(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.t.join(10)


def test_a_long_move_checkpoints_off_the_loop(imap_srv):
    """UID MOVE of 10,000 writes several checkpoints' worth of WAL: the
    checkpointer thread copies it (its log lines), the probe's NOOPs are
    answered meanwhile, the WAL stays near its bound, and a kill -9 right
    after the MOVE's OK (checkpoints still under way) loses nothing."""
    srv = imap_srv
    with srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", MOVED)
        c.ok("NOOP")
        start = len(srv.log_text())
        with WalWatch(srv.data) as wal, Probe(srv) as probe:
            untagged, done = c.cmd("UID MOVE 1:* dst", timeout=300)
        assert done.startswith("OK"), done
    srv.kill9()
    probe.report("UID MOVE 1:* of %d" % MOVED, COPY_STALL)
    ran = checkpoints(srv.log_text()[start:])
    print("checkpoints during the MOVE: %d, largest %d pages, longest "
          "%d ms; WAL at most %.1f MiB" % (
              len(ran), max((r[1] for r in ran), default=0),
              max((r[3] for r in ran), default=0), wal.most / 2 ** 20))
    assert any(mode == "passive" and frames >= 1000 and rc == 0
               for mode, frames, _, _, rc in ran), ran
    # The bound, and what one step writes while the thread catches up.
    assert wal.most <= 2 * WAL_PAUSE, wal.most
    check_store(srv.data)
    srv.start()
    assert count(srv, "dst") == MOVED
    assert count(srv, "INBOX") == 0
    srv.stop()
    check_store(srv.data)


@pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                    reason="no test build: make build/crash/mailrepd")
def test_power_cut_in_a_checkpoint_loses_nothing(tmp_path, template_data,
                                                 rng):
    """The test VFS cuts the power only among the checkpointer thread's
    writes, syncs and truncates (MAILREPD_VFS_OFF_LOOP): every image is
    a store cut in the middle of a checkpoint, and each one checks clean
    and holds everything acknowledged before its cut.  The old server
    checkpointed on the loop: no such cut, no image."""
    ledger, imgs, log = crash_run(
        tmp_path, template_data, rng, 7, most=8, every=300, big=0.8,
        extra_env={"MAILREPD_VFS_OFF_LOOP": "1"})
    made = len(images(imgs))
    ran = checkpoints(log)
    print("%d images cut in checkpoints; %d checkpoints, %d changes" % (
        made, len(ran), ledger.ops))
    assert made > 0, "no cut came in a checkpoint:\n%s" % log[-2000:]
    bad = check_run(tmp_path, ledger, imgs)
    assert not bad, bad
