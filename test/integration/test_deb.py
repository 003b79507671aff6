"""The Debian packages of `make deb`, installed into a throw-away root.

Each package in $MAILREPD_DEBS is unpacked with `dpkg-deb -x` (what
`dpkg -i` puts on disk, without its maintainer scripts, which would make
a user on this machine); the installed binary is started with the
installed config (the listeners moved to free loopback ports, the data
directory to a temporary one, as options override the file), a message
is delivered over LMTP and read back over IMAP.  ARM packages run under
qemu-user-static.  The maintainer script that makes the system user
runs as root in a mount namespace of its own, over a copy of /etc and of
/var/lib/systemd, so that this machine is left as it was.  Skipped
without $MAILREPD_DEBS (make deb runs it).
"""
import glob
import os
import signal
import subprocess
import time

import pytest

from conftest import (DOMAIN, HOST, PASSWORD, IMAPRaw, LMTPClient,
                      free_port)
from test_replication import lmtp_one, message

DEBS = os.environ.get("MAILREPD_DEBS")
QEMU = {"amd64": [], "arm64": ["qemu-aarch64-static"],
        "armhf": ["qemu-arm-static"]}
FILES = ("usr/bin/mailrepd", "usr/share/man/man8/mailrepd.8.gz",
         "etc/mailrepd/mailrepd.conf", "lib/systemd/system/mailrepd.service",
         "usr/share/doc/mailrepd/copyright")
READY_DEADLINE = 60

pytestmark = pytest.mark.skipif(DEBS is None,
                                reason="no MAILREPD_DEBS: make deb runs it")


def packages():
    return sorted(glob.glob(os.path.join(DEBS or "", "mailrepd_*.deb")))


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def test_three_packages():
    assert sorted(field(d, "Architecture") for d in packages()) == \
        ["amd64", "arm64", "armhf"]


@pytest.mark.parametrize("arch", sorted(QEMU))
def test_installed_package_serves(tmp_path, arch):
    deb, = [d for d in packages() if field(d, "Architecture") == arch]
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    for f in FILES:
        assert (root / f).is_file(), f
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
    for script in ("postinst", "prerm", "postrm"):
        subprocess.run(["sh", "-n", control / script], check=True)
    assert "adduser --system" in (control / "postinst").read_text()
    assert (control / "conffiles").read_text().split() == \
        ["/etc/mailrepd/mailrepd.conf"]
    unit = (root / "lib/systemd/system/mailrepd.service").read_text()
    assert "ExecStart=/usr/bin/mailrepd serve --config " \
        "/etc/mailrepd/mailrepd.conf" in unit

    mailrepd = QEMU[arch] + [str(root / "usr/bin/mailrepd")]
    config = ["--config", str(root / "etc/mailrepd/mailrepd.conf")]
    data = tmp_path / "data"
    subprocess.run(mailrepd + ["user", "add", "alice", "--data", data] +
                   config, input=PASSWORD + "\n", text=True, check=True,
                   timeout=120)
    lmtp, imap, imaps = free_port(), free_port(), free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(mailrepd + ["serve"] + config + [
        "--data", data, "--lmtp", "%s:%d" % (HOST, lmtp),
        "--imap", "%s:%d" % (HOST, imap), "--imaps", "%s:%d" % (HOST, imaps),
        "--name", "deb.test"], stdout=log, stderr=log,
        stdin=subprocess.DEVNULL)
    try:
        wait_ready(proc, lmtp, tmp_path / "serve.log")
        assert lmtp_one(lmtp, "alice@" + DOMAIN,
                        message("deb"))[0].startswith("250")
        with IMAPRaw(imap, timeout=30) as c:
            c.login("alice")
            c.ok("SELECT INBOX")
            untagged = c.ok("FETCH 1 BODY[]")
            assert "body of deb" in "".join(untagged)
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


# In a private mount namespace: /etc and /var/lib/systemd are copies,
# postinst runs twice (install, then upgrade), and what it made is shown.
POSTINST_SANDBOX = """
set -e
cp -a /etc "$1/etc"
mount --bind "$1/etc" /etc
mkdir -p "$1/systemd" /var/lib/systemd
mount --bind "$1/systemd" /var/lib/systemd
sh "$2" configure
sh "$2" configure 0.1.0
getent passwd mailrepd
getent group mailrepd
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="postinst runs as root")
def test_postinst_makes_the_system_user(tmp_path):
    deb, = [d for d in packages() if field(d, "Architecture") == "amd64"]
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
    p = subprocess.run(["unshare", "--mount", "sh", "-c", POSTINST_SANDBOX,
                        "sandbox", tmp_path, control / "postinst"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    user, group = p.stdout.splitlines()
    name, _, uid, gid, _, home, shell = user.split(":")
    assert name == "mailrepd" and int(uid) < 1000, user
    assert home == "/var/lib/mailrepd" and shell.endswith("nologin"), user
    assert group.split(":")[2] == gid, group
    assert subprocess.run(["getent", "passwd", "mailrepd"],
                          stdout=subprocess.DEVNULL).returncode == 2, \
        "the sandbox leaked: this machine has a mailrepd user now"


def wait_ready(proc, port, log):
    """Waits until the server greets on its LMTP port."""
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with LMTPClient(port, timeout=5) as c:
                c.cmd("QUIT", "221 ")
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("not ready: " + log.read_text())
