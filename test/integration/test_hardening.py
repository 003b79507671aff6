"""Hardening: one server per data directory, private files, envelope
header injection, over-long lines in IMAP's one-line modes, UTF-8 user
names and the exit-status table.  Each test was written against a
defect an attacker (or an operator's typo) could reach."""
import base64
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (HOST, MAILREPD, PASSWORD, REPO, IMAPRaw, LMTPClient,
                      export, free_port, run, run_ok, user_add)

ONE_LINE_MAX = 64 * 1024


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what)


# --- one server per data directory ----------------------------------------

def second_serve(data, *extra):
    """A second `serve` on data with ports of its own; its result."""
    return run("serve", "--data", data, "--lmtp", "%s:%d" % (
        HOST, free_port()), *extra, timeout=20)


def test_second_server_on_one_data_dir_refused(srv):
    pid_file = srv.data / "mailrepd.pid"
    wait_for(pid_file.exists, what="the pid file")
    first = srv.proc.pid
    assert int(pid_file.read_text()) == first
    p = second_serve(srv.data)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert str(first) in p.stderr, p.stderr
    assert "data" in p.stderr, p.stderr
    # It neither took the first one's pid file nor its deliveries.
    assert int(pid_file.read_text()) == first
    assert srv.running()
    p = run("dev", "--data", srv.data, "--ports", "auto", timeout=20)
    assert p.returncode == 2 and str(first) in p.stderr, p.stderr
    assert int(pid_file.read_text()) == first
    # Admin commands work beside the server.
    user_add(srv.data, "carol")
    run_ok("status", "--data", srv.data)
    run_ok("messages", "--data", srv.data, "--user", "alice")
    run_ok("user", "list", "--data", srv.data)
    srv.deliver("a@remote.test", ["carol@example.com"],
                b"Subject: beside\r\n\r\nx\r\n")


def test_lock_released_at_exit(srv):
    srv.stop()
    srv.start()
    assert srv.running()


# --- private files ----------------------------------------------------------

def modes(data):
    """{name: mode} of the data dir (".") and everything in it."""
    out = {".": stat.S_IMODE(os.stat(data).st_mode)}
    for p in Path(data).iterdir():
        out[p.name] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def test_files_created_private(server, tmp_path):
    data = tmp_path / "fresh"
    s = server(users=(), data=data, start=False,
               args=["--imaps", "%s:%d" % (HOST, free_port()),
                     "--catch-all", "yes"])
    s.start()
    s.deliver("a@remote.test", ["new@example.com"], b"x\r\n")
    got = modes(data)
    for name in ("mailrepd.db", "mailrepd.db-wal", "mailrepd.db-shm",
                 "mailrepd.pid", "tls-key.pem", "tls-cert.pem"):
        assert name in got, got
    bad = {n: oct(m) for n, m in got.items()
           if m & 0o077 or (n == "." and m != 0o700)}
    assert not bad, bad
    user_add(data, "later")
    bad = {n: oct(m) for n, m in modes(data).items() if m & 0o077}
    assert not bad, bad


def test_open_data_dir_fixed_with_warning(server, template_data, tmp_path):
    data = tmp_path / "open"
    shutil.copytree(template_data, data)
    os.chmod(data, 0o755)
    s = server(data=data)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert re.search(r"warn datadir\.mode .*mode=0755", s.log_text()), \
        s.log_text()


def unit_settings(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit_hardened():
    u = unit_settings(REPO / "contrib" / "mailrepd.service")
    want = {"StateDirectoryMode": "0700", "UMask": "0077",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict",
            "ProtectHome": "yes", "PrivateTmp": "yes"}
    for k, v in want.items():
        assert u.get(k) == [v], (k, u.get(k))
    assert u.get("DynamicUser") == ["yes"] or "User" in u, u
    init = (REPO / "contrib" / "mailrepd.init").read_text()
    assert "umask 077" in init and "--run-as-user" in init


def root_only():
    if os.geteuid() != 0:
        pytest.skip("switching users needs root (run the tests as root)")


def shared_tmp():
    """A directory any user may enter: pytest's tmp_path is root's only."""
    d = tempfile.mkdtemp(prefix="mrd-user-")
    os.chmod(d, 0o711)
    return Path(d)


def test_root_drops_to_run_as_user(server):
    root_only()
    nobody = pwd.getpwnam("nobody")
    top = shared_tmp()
    try:
        data = top / "data"
        user_add(data, "alice")          # made by root
        p = run("serve", "--data", data, "--lmtp", "%s:%d" % (
            HOST, free_port()), "--run-as-user", "nobody")
        assert p.returncode == 2, p
        assert "chown -R nobody" in p.stderr, p.stderr
        for p in [data] + list(data.iterdir()):
            os.lchown(p, nobody.pw_uid, nobody.pw_gid)
        s = server(data=data, start=False, imap=True,
                   args=["--run-as-user", "nobody"])
        s.start()
        status = Path("/proc/%d/status" % s.proc.pid).read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1)
        assert set(uids) == {str(nobody.pw_uid)}, status
        assert set(gids) == {str(nobody.pw_gid)}, status
        assert "0" not in groups.split(), status
        s.deliver("a@remote.test", ["alice@example.com"],
                  b"Subject: dropped\r\n\r\nx\r\n")
        with s.raw() as c:
            assert c.status("INBOX")["MESSAGES"] == 1
        for p in [data] + list(data.iterdir()):
            assert os.lstat(p).st_uid == nobody.pw_uid, p
        s.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_run_as_user_unknown_refused(tmp_path):
    p = run("serve", "--data", tmp_path / "d", "--lmtp", "%s:%d" % (
        HOST, free_port()), "--run-as-user", "no-such-user-here")
    assert p.returncode == 2, p
    assert "run-as-user" in p.stderr, p.stderr


# --- header injection through the envelope -----------------------------------

INJECT = ("\r", "\t", "\x01", "\x7f", "\x1b")


def envelope_refusals(c, lmtp):
    c.cmd(("LHLO" if lmtp else "EHLO") + " client.test", "250")
    for ch in INJECT:
        c.cmd("MAIL FROM:<a%sX-Injected: yes@remote.test>" % ch,
              "501 5.1.7")
    c.cmd("MAIL FROM:<a@remote.test>", "250")
    for ch in INJECT:
        c.cmd("RCPT TO:<alice@example.com%sX-Injected: yes>" % ch,
              "501 5.1.3")
    c.cmd("RCPT TO:<alice@example.com>", "250")
    c.cmd("DATA", "354")
    c.send("Subject: clean\r\n\r\nbody\r\n.\r\n")
    c.expect("250")


def test_hello_name_control_characters_refused(server):
    """The EHLO name goes into Received: (SMTP): same injection."""
    port = free_port()
    s = server(args=["--smtp", "%s:%d" % (HOST, port)])
    for client, verb in ((LMTPClient(port), "EHLO"),
                         (s.client(), "LHLO")):
        with client as c:
            for ch in INJECT:
                c.cmd("%s client%sX-Injected: yes" % (verb, ch), "501 5.5.4")
            c.cmd(verb + " client.test", "250")


def test_envelope_control_characters_refused(server):
    port = free_port()
    s = server(args=["--smtp", "%s:%d" % (HOST, port)])
    with s.client() as c:
        envelope_refusals(c, True)
    with LMTPClient(port) as c:
        envelope_refusals(c, False)
    got = s.export("alice")
    assert len(got) == 2
    for m in got:
        assert b"X-Injected" not in m.data, m.data


# --- over-long lines in IDLE, AUTHENTICATE and after an APPEND literal -------

def overlong():
    """A line well past the limit whose every tail would parse as a
    command: the server must drop all of it."""
    return ("z NOOP " * (5 * ONE_LINE_MAX // 7)).encode() + b"\r\n"


def only_tagged(c, tag):
    """The tagged lines up to and including `tag`'s answer to a NOOP."""
    c.send("%s NOOP\r\n" % tag)
    tagged = []
    while True:
        l = c.line(timeout=20)
        if not l.startswith(("* ", "+ ")):
            tagged.append(l)
        if l.startswith(tag + " "):
            return tagged


def test_overlong_done_after_idle_dropped(imap_srv):
    with imap_srv.raw() as c:
        c.send("a IDLE\r\n")
        assert c.line().startswith("+ ")
        c.send(overlong())
        tagged = only_tagged(c, "b")
        assert len(tagged) == 2 and tagged[0].startswith("a BAD"), tagged
        assert tagged[1].startswith("b OK"), tagged


def test_overlong_authenticate_response_dropped(imap_srv):
    with imap_srv.raw(login=False) as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.line().startswith("+")
        c.send(overlong())
        tagged = only_tagged(c, "b")
        assert len(tagged) == 2 and tagged[0].startswith("a BAD"), tagged
        assert tagged[1].startswith("b OK"), tagged


def test_overlong_command_before_login_dropped(imap_srv):
    # Before login the input buffer is smaller than a command line may
    # be after it; a line past it is still dropped, not run nor fatal.
    with imap_srv.raw(login=False) as c:
        c.send(b"a " + overlong())
        tagged = only_tagged(c, "b")
        assert len(tagged) == 2 and tagged[0].startswith("a BAD"), tagged
        assert tagged[1].startswith("b OK"), tagged


def test_overlong_line_after_append_literal_dropped(imap_srv):
    with imap_srv.raw() as c:
        c.send("a APPEND INBOX {7}\r\n")
        assert c.line().startswith("+ ")
        c.send(b"hello\r\n" + overlong())
        tagged = only_tagged(c, "b")
        assert len(tagged) == 2 and tagged[0].startswith("a BAD"), tagged
        assert tagged[1].startswith("b OK"), tagged
        assert c.status("INBOX")["MESSAGES"] == 0


# --- UTF-8 user names (SMTPUTF8) ---------------------------------------------

def test_utf8_local_part_in_catch_all(server):
    port = free_port()
    s = server(args=["--catch-all", "yes", "--smtp", "%s:%d" % (HOST, port)])
    with LMTPClient(port) as c:
        ehlo = c.cmd("EHLO client.test")
        assert any("SMTPUTF8" in l for l in ehlo), ehlo
        c.cmd("MAIL FROM:<sender@remote.test> SMTPUTF8", "250")
        c.send("RCPT TO:<jürgen@example.com>\r\n".encode())
        c.expect("250")
        c.cmd("DATA", "354")
        c.send("Subject: utf8\r\n\r\nhallo\r\n.\r\n")
        c.expect("250")
    with s.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<sender@remote.test>", "250")
        c.send(b"RCPT TO:<j\xfcrgen@example.com>\r\n")   # Latin-1: not UTF-8
        c.expect("550 5.1.3")
        c.send(b"RCPT TO:<j\xc3@example.com>\r\n")       # cut sequence
        c.expect("550 5.1.3")
        c.send("RCPT TO:<jürgen@example.com>\r\n".encode())
        c.expect("250")
        c.cmd("DATA", "354")
        c.send("Subject: lmtp\r\n\r\nx\r\n.\r\n")
        c.expect("250")
    assert len(export(s.data, "jürgen")) == 2


def test_utf8_user_logs_in(server):
    s = server(imap=True)
    user_add(s.data, "jürgen")
    pw = PASSWORD
    with IMAPRaw(s.imap_port) as c:
        name = "jürgen".encode()
        c.send(b'a LOGIN {%d+}\r\n%s "%s"\r\n' % (len(name), name,
                                                   pw.encode()))
        _, done = c.read_until("a")
        assert done.startswith("OK"), done
    with IMAPRaw(s.imap_port) as c:
        c.send('a LOGIN "jürgen" "%s"\r\n'.encode() % pw.encode())
        _, done = c.read_until("a")
        assert done.startswith("OK"), done
    with IMAPRaw(s.imap_port) as c:
        ir = base64.b64encode(b"\0" + "jürgen".encode() + b"\0" +
                              pw.encode()).decode()
        _, done = c.cmd("AUTHENTICATE PLAIN " + ir)
        assert done.startswith("OK"), done
    p = run("user", "add", os.fsdecode(b"j\xfcrgen"), "--data", s.data,
            input=pw + "\n")
    assert p.returncode == 2, p


# --- exit statuses -------------------------------------------------------------

def test_no_store_is_a_setting_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (("status",), ("check",), ("user", "list"),
                 ("messages", "--user", "alice"), ("user", "del", "x"),
                 ("conflicts", "list")):
        p = run(*args, "--data", empty)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "setting 'data'" in p.stderr, (args, p.stderr)
    assert list(empty.iterdir()) == []


def test_unusable_store_is_a_setting_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory\n")
    p = run("user", "add", "alice", "--data", f, input="pw\n")
    assert p.returncode == 2 and "setting 'data'" in p.stderr, p
    p = run("serve", "--data", f, "--lmtp", "%s:%d" % (HOST, free_port()))
    assert p.returncode == 2 and "setting 'data'" in p.stderr, p


def test_bad_user_add_creates_nothing(tmp_path):
    data = tmp_path / "data"
    for name, stdin in (("alice", ""), ("alice", "\n"), ("a b", "pw\n"),
                        ("x" * 65, "pw\n")):
        p = run("user", "add", name, "--data", data, input=stdin)
        assert p.returncode == 2, (name, stdin, p.returncode, p.stderr)
        assert not data.exists(), (name, stdin)
    p = run("user", "add", "alice", "--data", data, "--password-file",
            tmp_path / "missing")
    assert p.returncode == 2 and not data.exists(), p


def test_bad_serve_settings_create_nothing(tmp_path):
    data = tmp_path / "data"
    lmtp = "%s:%d,unix:%s" % (HOST, free_port(), tmp_path / "s")
    for args in (("--unix-socket-mode", "999"),
                 ("--unix-socket-mode", "rw"),
                 ("--unix-socket-owner", "no-such-user-here"),
                 ("--unix-socket-group", "no-such-group-here"),
                 ("--run-as-user", "no-such-user-here")):
        p = run("serve", "--data", data, "--lmtp", lmtp, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert args[0][2:] in p.stderr, (args, p.stderr)
        assert not data.exists(), args
