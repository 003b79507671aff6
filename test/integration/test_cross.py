"""The ARM binaries (make cross) beside the native one, under qemu.

$MAILREPD_CROSS runs a binary built for another CPU (build/ARCH/
mailrepd-qemu, a qemu-user-static wrapper); $MAILREPD is the native one.
Without $MAILREPD_CROSS these tests are skipped: `make check` runs the
smoke test through `make cross-smoke`, `make check-cross` runs all of
them for arm64 and armhf.

Covered: LMTP delivery and IMAPS reading on the ARM binary, a store
written by one architecture served by the other (the template store of
conftest.py is made by the native binary; what the MIME pre-parse
stored reads the same on both), test_replication's every-mutation test
with the master on x86-64 and the replicas on ARM and the other way
round, and a SIGQUIT drain on the ARM master that waits for its x86-64
replica.
"""
import imaplib
import os
import signal
import ssl
import subprocess

import pytest

from conftest import DOMAIN, HOST, PASSWORD, free_port, run_ok
import test_replication
from test_replication import (listing, lmtp_one, make_cluster,  # noqa: F401
                              message, secret, wait_same)

CROSS = os.environ.get("MAILREPD_CROSS")
ARCH = os.environ.get("MAILREPD_CROSS_ARCH", "cross")
DRAIN_DEADLINE = 60

pytestmark = pytest.mark.skipif(
    CROSS is None, reason="no MAILREPD_CROSS: make cross-smoke or "
    "make check-cross run these under qemu")


def cross(server, **kw):
    """A Server (see conftest) that runs the ARM binary."""
    start = kw.pop("start", True)
    s = server(start=False, **kw)
    native = s.command
    s.command = lambda: [CROSS] + native()[1:]
    return s.start() if start else s


def run_cross(*args):
    """`mailrepd ARGS` with the ARM binary; asserts exit status 0."""
    p = subprocess.run([CROSS] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120, text=True)
    assert p.returncode == 0, "%s %s exited %d: %s%s" % (
        ARCH, " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
    return p.stdout


def imaps_bodies(port, user="alice"):
    """Every message of user's INBOX, read over IMAPS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL(HOST, port, ssl_context=ctx, timeout=30)
    try:
        c.login(user, PASSWORD)
        c.select("INBOX", readonly=True)
        _, nums = c.search(None, "ALL")
        bodies = []
        for n in nums[0].split():
            _, data = c.fetch(n, "(BODY.PEEK[])")
            bodies.append(data[0][1])
        return bodies
    finally:
        c.logout()


def test_smoke_lmtp_imaps_on_a_store_from_x86(server):
    imaps = free_port()
    s = cross(server, args=["--imaps", "%s:%d" % (HOST, imaps)])
    assert lmtp_one(s.port, "alice@" + DOMAIN,
                    message("arm"))[0].startswith("250")
    bodies = imaps_bodies(imaps)
    assert len(bodies) == 1 and b"body of arm" in bodies[0]
    s.stop()
    assert run_cross("check", "--data", s.data).startswith("ok: ")


MULTIPART = (
    "From: <s@remote.test>\r\nTo: <alice@%s>\r\nSubject: parts\r\n"
    "Date: Sun, 06 Dec 2026 23:00:00 +0000\r\nMessage-ID: <parts@test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    "--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
    "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    "Subject: inner\r\nFrom: <i@remote.test>\r\n\r\ninner body\r\n"
    "--b1--\r\n" % DOMAIN).encode()
# What the pre-parse stored at delivery answers: it must read the same
# on either architecture.
PARSED = "UID FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[2.1] " \
    "BODY.PEEK[1.MIME] RFC822.SIZE INTERNALDATE)"


def parsed(srv):
    with srv.raw("alice") as c:
        c.ok("SELECT INBOX")
        return c.ok(PARSED)


def test_store_moves_between_architectures(server):
    s = cross(server, imap=True)
    assert lmtp_one(s.port, "alice@" + DOMAIN,
                    MULTIPART)[0].startswith("250")
    on_arm = parsed(s)
    assert "inner body" in "".join(on_arm)
    s.stop()
    before = listing(s.data)
    # The native binary serves what the ARM one wrote, and adds to it.
    native = server(data=s.data, imap=True)
    assert parsed(native) == on_arm
    c = native.imap("alice")
    c.select("INBOX")
    assert c.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    c.logout()
    assert lmtp_one(native.port, "alice@" + DOMAIN,
                    message("two"))[0].startswith("250")
    native.stop()
    after = listing(s.data)
    assert len(after[2]) == len(before[2]) + 1
    # And the ARM binary takes it back.
    assert run_cross("check", "--data", s.data).startswith("ok: ")
    s.start()
    assert parsed(s) == on_arm
    s.stop()
    assert listing(s.data) == after


@pytest.fixture(params=["replica", "master"])
def mixed_cluster(request, server, secret):
    """test_replication's cluster with the ARM binary at one end: the
    replicas, or the master."""
    def node(**kw):
        is_replica = "--replicate-from" in kw.get("args", ())
        if is_replica == (request.param == "replica"):
            return cross(server, **kw)
        return server(**kw)
    return make_cluster(node, secret)


def test_replication_between_x86_and_arm(mixed_cluster):
    test_replication.test_every_mutation_arrives_identically(mixed_cluster)


def test_drain_on_arm_waits_for_x86_replica(server, secret):
    port = free_port()
    master = cross(server, args=["--repl-listen", "%s:%d" % (HOST, port),
                                 "--repl-secret-file", secret])
    rep = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, port), "--repl-secret-file",
        secret, "--name", "replica"])
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("drained"))[0].startswith("250")
    p, master.proc = master.proc, None
    p.send_signal(signal.SIGQUIT)
    assert p.wait(DRAIN_DEADLINE) == 0, master.log_text()
    wait_same(master, rep)
    run_ok("check", "--data", rep.data)
