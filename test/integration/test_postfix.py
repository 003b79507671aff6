"""Postfix delivering to mailrepd: the README's recipe, as written, run
against a private Postfix instance (`postfix -c DIR`: its own config,
queue and data directories, listening on the loopback only) over
lmtp:inet: and lmtp:unix:.  The system's Postfix is never touched."""
import grp
import os
import re
import shutil
import signal
import smtplib
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (HOST, MAILREPD, REPO, SERVER_NAME, Server, free_port,
                      run, user_add)

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SYSTEM_MASTER_CF = "/etc/postfix/master.cf"
PF_TIMEOUT = 60
DELIVERY_TIMEOUT = 60
BIG = 12 * 1000 * 1000      # over Postfix's default message_size_limit


def recipe():
    """The README's Postfix section: its indented blocks, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n### Postfix\n", 1)[1].split("\n## ", 1)[0]
    blocks, cur = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("    "):
            cur.append(line[4:])
        elif cur:
            blocks.append(cur)
            cur = []
    assert len(blocks) == 5, blocks
    return blocks


def settings_of(block):
    out = []
    for line in block:
        k, v = line.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


class Postfix:
    """A private Postfix under top/: conf/, queue/, data/, maillog."""

    def __init__(self, top, smtp_port):
        self.top = top
        self.conf = top / "conf"
        self.queue = top / "queue"
        self.maillog = top / "maillog"
        self.smtp_port = smtp_port
        self.started = False

    def write_config(self, extra):
        for d in (self.conf, self.queue, self.top / "data"):
            d.mkdir(mode=0o755)
        shutil.chown(self.top / "data", "postfix")
        base = [
            ("compatibility_level", "3.6"),
            ("queue_directory", str(self.queue)),
            ("data_directory", str(self.top / "data")),
            ("command_directory", "/usr/sbin"),
            ("daemon_directory", "/usr/lib/postfix/sbin"),
            ("meta_directory", "/etc/postfix"),
            ("shlib_directory", "/usr/lib/postfix"),
            ("mail_owner", "postfix"),
            ("setgid_group", "postdrop"),
            ("inet_interfaces", "loopback-only"),
            ("inet_protocols", "ipv4"),
            ("myhostname", "mx.postfix.test"),
            ("mydestination", ""),
            ("mynetworks", "127.0.0.0/8"),
            ("relayhost", ""),
            # Nothing leaves this instance but for mailrepd.
            ("default_transport", "error:private test instance"),
            ("maillog_file", str(self.maillog)),
            ("maillog_file_prefixes", str(self.top)),
            ("syslog_name", "postfix-mailrepd-test"),
        ]
        (self.conf / "main.cf").write_text("".join(
            "%s = %s\n" % kv for kv in base + extra))
        # The system's internal services without chroot (the queue has
        # no copy of /etc), none of its network listeners (whatever the
        # admin enabled), and smtpd on our loopback port only.
        out = ["%s:%d inet n - n - - smtpd" % (HOST, self.smtp_port)]
        skipping = False
        for line in Path(SYSTEM_MASTER_CF).read_text().splitlines():
            if line[:1].isspace() and skipping:
                continue
            fields = line.split()
            skipping = len(fields) > 1 and not line.startswith("#") and \
                fields[1] == "inet"
            if not skipping:
                out.append(re.sub(r"^(\S+\s+(?:unix|unix-dgram|fifo|pass)"
                                  r"\s+\S+\s+\S+\s+)[-y]", r"\1n", line))
        (self.conf / "master.cf").write_text("\n".join(out) + "\n")

    def postfix(self, *args):
        p = subprocess.run([POSTFIX, "-c", str(self.conf)] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=PF_TIMEOUT)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def log(self):
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self):
        rc, out = self.postfix("start")
        self.started = True
        assert rc == 0, "postfix start: %s\n%s" % (out, self.log())
        deadline = time.monotonic() + PF_TIMEOUT
        while time.monotonic() < deadline:
            try:
                smtplib.SMTP(HOST, self.smtp_port, timeout=5).quit()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail("private postfix not listening:\n%s" % self.log())

    def master_pid(self):
        try:
            return int((self.queue / "pid" / "master.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self):
        """Stops this instance; SIGKILLs its master (by the pid in its
        own queue) if it outlives `postfix stop`."""
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self.postfix("stop")
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def set(self, key, value):
        subprocess.run([POSTCONF, "-c", str(self.conf), "-e",
                        "%s = %s" % (key, value)], check=True,
                       timeout=PF_TIMEOUT, stdin=subprocess.DEVNULL)


class ConfServer(Server):
    """mailrepd serve with the recipe's config file and nothing else."""

    def __init__(self, tmp, data, conf):
        super().__init__(tmp, data)
        self.conf = conf

    def command(self):
        return [MAILREPD, "serve", "--config", str(self.conf), "--data",
                str(self.data), "--name", SERVER_NAME]


def substitute(line, queue, lmtp_port):
    return (line.replace("/var/spool/postfix", str(queue))
            .replace("127.0.0.1:2424", "%s:%d" % (HOST, lmtp_port)))


@pytest.fixture
def private_postfix():
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root (postfix start "
                    "runs its daemons as the user postfix)")
    if not os.access(POSTFIX, os.X_OK):
        pytest.fail("no %s: install Debian's postfix (scripts/deps check "
                    "does, leaving the system's instance unconfigured)"
                    % POSTFIX)
    # Postfix's daemons (user postfix) must reach the queue: not under
    # pytest's tmp_path, which is root's only.
    top = Path(tempfile.mkdtemp(prefix="mrd-postfix-"))
    os.chmod(top, 0o755)
    pf = Postfix(top, free_port())
    try:
        yield pf
    finally:
        pf.stop()
        shutil.rmtree(top, ignore_errors=True)


def send(pf, subject, rcpt, size=0):
    body = b"x" * 76 + b"\r\n"
    msg = (b"From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\n\r\n" % (
        rcpt.encode(), subject.encode())) + body * (size // len(body) + 1)
    with smtplib.SMTP(HOST, pf.smtp_port, timeout=30) as c:
        c.sendmail("sender@remote.test", [rcpt], msg)


def wait_count(data, n, pf):
    p = run("wait", "--user", "alice", "--count", str(n), "--timeout",
            str(DELIVERY_TIMEOUT), "--data", data,
            timeout=DELIVERY_TIMEOUT + 30)
    assert p.returncode == 0, "%s\npostfix log:\n%s" % (p.stderr, pf.log())


def test_postfix_recipe_over_inet_and_unix(private_postfix, tmp_path):
    pf = private_postfix
    main_tcp, mrd_tcp, install, main_unix, mrd_unix = recipe()
    lmtp_port = free_port()

    # mailrepd: both recipes' listeners, the unix one's socket settings.
    conf = tmp_path / "mailrepd.conf"
    mrd = dict(settings_of(mrd_tcp))
    unix = dict(settings_of(mrd_unix))
    mrd["lmtp"] = mrd["lmtp"] + "," + unix.pop("lmtp")
    mrd.update(unix)
    conf.write_text("".join("%s = %s\n" % (k, substitute(v, pf.queue,
                                                         lmtp_port))
                            for k, v in mrd.items()))
    pf.write_config([(k, substitute(v, pf.queue, lmtp_port))
                     for k, v in settings_of(main_tcp)])
    (cmd,) = install
    # The test's mailrepd runs as root, not as the user mailrepd.
    cmd = substitute(cmd, pf.queue, lmtp_port).replace("-o mailrepd",
                                                       "-o root")
    subprocess.run(cmd.split(), check=True, timeout=PF_TIMEOUT)
    pf.start()

    data = tmp_path / "data"
    user_add(data, "alice")
    srv = ConfServer(tmp_path, data, conf)
    try:
        srv.start(port=lmtp_port)
        sock = pf.queue / "mailrepd" / "lmtp"
        st = os.stat(sock)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        assert st.st_gid == grp.getgrnam("postfix").gr_gid

        # lmtp:inet:, and a message over Postfix's own default limit.
        send(pf, "over inet", "alice@example.com")
        send(pf, "big over inet", "alice@example.com", BIG)
        wait_count(data, 2, pf)
        assert re.search(r"lmtp\[\d+\]: .*relay=127\.0\.0\.1\[127\.0\.0\.1"
                         r"\]:%d, .*status=sent" % lmtp_port, pf.log())

        # lmtp:unix: (Postfix connects as the user postfix).
        pf.stop()
        for k, v in settings_of(main_unix):
            pf.set(k, substitute(v, pf.queue, lmtp_port))
        pf.start()
        send(pf, "over unix", "alice@example.com")
        send(pf, "big over unix", "alice@example.com", BIG)
        wait_count(data, 4, pf)
        assert re.search(r"lmtp\[\d+\]: .*relay=.*\[mailrepd/lmtp\], "
                         r".*status=sent", pf.log()), pf.log()
        assert "Permission denied" not in pf.log()
        p = run("messages", "--user", "alice", "--data", data)
        subjects = sorted(l.split("\t")[-1] for l in p.stdout.splitlines())
        assert subjects == ["big over inet", "big over unix", "over inet",
                            "over unix"], p.stdout
        sizes = [int(l.split("\t")[4]) for l in p.stdout.splitlines()
                 if "big" in l]
        assert all(s > BIG for s in sizes), sizes
    finally:
        srv.cleanup()
