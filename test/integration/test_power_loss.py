"""Power loss, not just kill -9: the store loses nothing it acknowledged
when the power goes at any point.

SIGKILL leaves the kernel's page cache intact, so the crash tests that
use it would pass with syncing turned off.  These use the test build
(build/crash/mailrepd), whose SQLite VFS models the disk: at crash
points drawn by a seeded generator it writes what the disk could hold
after a cut (synced data intact; unsynced sectors kept, lost or torn, in
any order; a new file's directory entry lost unless its directory was
synced), see test/testvfs.c and powerloss.py.  Each image is then
opened by the real binary: `mailrepd check` must be clean and every
acknowledged delivery, APPEND, flag change and expunge there exactly
once; on a replica, its applied position must match what it holds.

POWER_LOSS_POINTS crash points in all (make check: 200; make crash
ROUNDS=N runs N), from POWER_LOSS_SEED.  Files the server writes outside
SQLite do not carry acknowledged mail: a message is spooled to an
unlinked temporary file and acknowledged only once it is in the
database; the pid file and request files are rewritten at each start;
a generated TLS key and certificate are synced before they are renamed
into place, and a cut that loses the renames only makes the next start
generate a new pair (a new fingerprint, no mail lost).
"""
import os
import shutil
import sqlite3
import time

import pytest

from conftest import DOMAIN, HOST, IMAPError, LMTPError, free_port
from powerloss import (CRASH_BIN, CrashServer, Ledger, Workload,
                       check_image, check_replica_image, cut_time, images,
                       inbox, keep_log, losses, replica_state, restore,
                       vfs_env)

POINTS = int(os.environ.get("POWER_LOSS_POINTS", "200"))
REPLICA_POINTS = max(POINTS // 10, 20)	# a replica's are slower to reach
SEED = int(os.environ.get("POWER_LOSS_SEED", "1"))
PER_RUN = 40		# crash images per server run (each is a store copy)
EVERY = 10		# mean writes, syncs and truncates between two points
# Every other run spreads its points over many more changes, a third of
# them big messages, so that the WAL fills and SQLite checkpoints it
# into the database (after 1,000 pages) while the cuts come.
SPARSE_EVERY = 150
SPARSE_BIG = 0.3
MAX_OPS = 2000		# a run that makes no more images stops here

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


def crash_run(tmp, template, rng, seed, extra_env=None, most=PER_RUN,
              every=EVERY, big=0):
    """One server run that cuts the power at up to `most` points while
    the workload runs; returns (ledger, image dir, server log)."""
    data = tmp / "data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(template, data)
    imgs = tmp / "images"
    shutil.rmtree(imgs, ignore_errors=True)
    imgs.mkdir()
    arm = tmp / "arm"
    if arm.exists():
        arm.unlink()
    srv = CrashServer(tmp, data, vfs_env(imgs, seed, every, most, arm,
                                         extra_env))
    if srv.log.exists():
        srv.log.unlink()		# this run's log only
    srv.start()
    ledger = Ledger()
    w = Workload(srv.port, srv.imap_port, rng, ledger, big=big)
    arm.touch()
    try:
        while len(images(imgs)) < most and ledger.ops < MAX_OPS:
            w.step()
    finally:
        w.close()
        status = srv.stop()
    log = srv.log.read_text()
    assert status == 0, "crash build exited %s:\n%s" % (status, log[-3000:])
    assert "ERROR: AddressSanitizer" not in log, log
    return ledger, imgs, log


def check_run(tmp, ledger, imgs):
    """Every image's problems, as {image number: [problem]}."""
    bad = {}
    for img in images(imgs):
        problems = check_image(img, ledger, tmp / "restored")
        if problems:
            bad[img.name] = problems
        shutil.rmtree(img)
    return bad


def test_power_loss_keeps_every_acknowledged_change(tmp_path, template_data,
                                                    rng):
    """POWER_LOSS_POINTS cuts over LMTP deliveries, APPENDs, flag STOREs
    and expunges: every image checks clean and holds everything that was
    acknowledged before its cut, exactly once."""
    done = 0
    run_no = 0
    while done < POINTS:
        run_no += 1
        seed = SEED * 1000 + run_no
        most = min(PER_RUN, POINTS - done)
        sparse = run_no % 2 == 0
        ledger, imgs, log = crash_run(
            tmp_path, template_data, rng, seed, most=most,
            every=SPARSE_EVERY if sparse else EVERY,
            big=SPARSE_BIG if sparse else 0)
        checkpoints = log.count("testvfs: checkpoint synced")
        made = len(images(imgs))
        assert made > 0, "no crash point was reached:\n%s" % log[-2000:]
        bad = check_run(tmp_path, ledger, imgs)
        assert not bad, "seed %d (POWER_LOSS_SEED=%d): %s" % (
            seed, SEED, bad)
        done += made
        print("power loss: run %d (seed %d): %d points clean, %d in all; "
              "%d changes, %d messages, %d checkpoints" % (
                  run_no, seed, made, done, ledger.ops, len(ledger.entries),
                  checkpoints), flush=True)
    print("power loss: %d crash points over %d runs, seed %d" % (
        done, run_no, SEED))


def test_cut_then_restart_serves_everything_acknowledged(
        tmp_path, template_data, server, rng):
    """The cut as a real one: the test build exits at the crash point
    (status 77); the real server then starts on the image, every
    acknowledged change is there, and it takes new mail."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    imgs = tmp_path / "images"
    imgs.mkdir()
    arm = tmp_path / "arm"
    srv = CrashServer(tmp_path, data, vfs_env(
        imgs, SEED, 200, 1, arm, {"MAILREPD_VFS_EXIT": "1"}))
    srv.start()
    ledger = Ledger()
    w = Workload(srv.port, srv.imap_port, rng, ledger)
    arm.touch()
    try:
        while srv.proc.poll() is None and ledger.ops < MAX_OPS:
            w.step()
    except (OSError, IMAPError, LMTPError, AssertionError):
        pass			# the cut came in the middle of a step
    srv.proc.wait(20)
    assert srv.proc.returncode == 77, srv.log.read_text()[-3000:]
    (img,) = images(imgs)
    after = server(data=restore(img, tmp_path / "restored"), imap=True)
    assert check_image(img, ledger, tmp_path / "checked") == []
    held = inbox(after.data)
    assert not losses(ledger, held, cut_time(img))
    code, _ = after.deliver("s@remote.test", ["alice@" + DOMAIN],
                            b"Subject: after\r\n\r\nafter the cut\r\n")
    assert code == 250
    with after.raw() as c:
        c.ok("SELECT INBOX")


def test_harness_sees_losses_when_syncing_is_weakened(tmp_path,
                                                      template_data, rng):
    """With every sync a no-op in the model (as with synchronous=OFF),
    the same harness must report acknowledged mail lost: it can see a
    missing fsync, which kill -9 cannot."""
    ledger, imgs, _ = crash_run(tmp_path, template_data, rng, SEED,
                                extra_env={"MAILREPD_VFS_NOSYNC": "1"},
                                most=10)
    bad = check_run(tmp_path, ledger, imgs)
    lost = [p for ps in bad.values() for p in ps if "lost" in p]
    assert lost, "weakened syncing went unnoticed: %s" % bad


def master_head(data):
    """The master's last log position."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute("SELECT coalesce(max(seq), 0) FROM replog"
                          ).fetchone()[0]
    finally:
        db.close()


def replica_run(tmp_path, server, rng, points, extra_env=None):
    """A master in synchronous mode and a replica in the test build that
    cuts the power at up to `points` points while it applies the
    master's batches; returns each image's problems, {number: [...]}."""
    secret = tmp_path / "repl.secret"
    secret.write_text("ab" * 32 + "\n")
    secret.chmod(0o600)
    repl_port = free_port()
    master = server(imap=True, args=[
        "--repl-listen", "%s:%d" % (HOST, repl_port),
        "--repl-secret-file", secret, "--repl-sync-timeout", "20000"],
        start=False)
    keep_log(master.data)
    master.start()
    rdir = tmp_path / "replica"
    rdir.mkdir()
    imgs = rdir / "images"
    imgs.mkdir()
    arm = rdir / "arm"
    replica = CrashServer(rdir, rdir / "data", vfs_env(
        imgs, SEED, EVERY, points, arm, extra_env), args=[
            "--replicate-from", "%s:%d" % (HOST, repl_port),
            "--repl-secret-file", str(secret), "--name", "replica0"])
    replica.start()
    ledger = Ledger()
    try:
        deadline = time.monotonic() + 30
        while not (rdir / "data" / "mailrepd.db").exists() or \
                replica_state(rdir / "data")[0] < master_head(master.data):
            assert time.monotonic() < deadline, replica.log.read_text()
            time.sleep(0.05)
        w = Workload(master.port, master.imap_port, rng, ledger)
        arm.touch()
        while len(images(imgs)) < points and ledger.ops < MAX_OPS:
            w.step()
        w.close()
    finally:
        status = replica.stop()
    log = replica.log.read_text()
    assert status == 0, "replica exited %s:\n%s" % (status, log[-3000:])
    assert "sync.timeout" not in master.log_text(), master.log_text()
    bad = {}
    for img in images(imgs):
        problems = check_replica_image(img, ledger, tmp_path / "restored",
                                       master.data)
        if problems:
            bad[img.name] = problems
        shutil.rmtree(img)
    return bad


def test_replica_power_loss_keeps_acknowledged_batches(tmp_path, server,
                                                       rng):
    """A replica in the test build cuts the power while it applies the
    master's batches; the master runs in synchronous mode, so every reply
    a client had before the cut waited for the replica: each image holds
    all of it exactly once, checks clean, and its applied position names
    exactly the messages it holds (the master's log replayed to it)."""
    bad = replica_run(tmp_path, server, rng, REPLICA_POINTS)
    assert not bad, "POWER_LOSS_SEED=%d: %s" % (SEED, bad)


def test_harness_sees_replica_losses_when_syncing_is_weakened(
        tmp_path, server, rng):
    """The replica's checks have teeth too: with syncing weakened, its
    images lose batches it acknowledged."""
    bad = replica_run(tmp_path, server, rng, 5,
                      extra_env={"MAILREPD_VFS_NOSYNC": "1"})
    assert bad, "weakened syncing on the replica went unnoticed"
