"""The command line: user management, settings from options and config
files, `check`, and help."""
import os
import re
import sqlite3  # only to fold the WAL into the file in the corruption test
import socket

import pytest

from conftest import (DOMAIN, HOST, MAILREPD, LMTPClient, Server,
                      check_store, export, free_port, run, run_ok, stored,
                      user_add)

DEFAULT_MAILBOXES = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
BODY = b"Subject: cli\r\n\r\nhello\r\n"


def users(data):
    p = run_ok("user", "list", "--data", data)
    out = {}
    for line in p.stdout.splitlines():
        name, created = line.split("\t")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), line
        out[name] = created
    return set(out)


def test_user_add_list_and_default_mailboxes(tmp_path):
    data = tmp_path / "data"
    assert not data.exists()
    user_add(data, "alice")          # creates the data dir and the store
    user_add(data, "Bob.Smith_2")
    assert users(data) == {"alice", "Bob.Smith_2"}
    out = tmp_path / "out"
    run_ok("export", "alice", "--maildir", out, "--data", data)
    got = {"INBOX"} | {d.name[1:] for d in out.iterdir()
                       if d.name.startswith(".")}
    assert got == DEFAULT_MAILBOXES
    check_store(data)


def test_user_add_refusals(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice")
    p = run("user", "add", "ALICE", "--data", data, input="pw\n")
    assert p.returncode == 1 and "ALICE" in p.stderr
    for bad in ("a@b", "a+b", "a b", "a/b", "x" * 65, ""):
        p = run("user", "add", bad, "--data", data, input="pw\n")
        assert p.returncode != 0, bad
        assert p.stderr.strip(), bad
    assert users(data) == {"alice"}


def test_empty_password_refused(tmp_path):
    data = tmp_path / "data"
    for stdin in ("", "\n", "\r\n"):
        p = run("user", "add", "alice", "--data", data, input=stdin)
        assert p.returncode == 2, stdin
        assert "empty password" in p.stderr
        assert not data.exists(), "a refused user add made the store"
    pw = tmp_path / "pw"
    pw.write_text("\nsecond line is not the password\n")
    p = run("user", "add", "alice", "--password-file", pw, "--data", data)
    assert p.returncode == 2 and "empty password" in p.stderr
    user_add(data, "bob")
    assert users(data) == {"bob"}


def test_password_file(tmp_path):
    data = tmp_path / "data"
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nignored\n")
    run_ok("user", "add", "alice", "--password-file", pw, "--data", data)
    run_ok("user", "passwd", "alice", "--password-file", pw, "--data", data)
    p = run("user", "add", "bob", "--password-file", tmp_path / "nope",
            "--data", data)
    assert p.returncode == 2 and "password-file" in p.stderr
    assert users(data) == {"alice"}


def test_password_never_stored_in_clear(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice", "Tr0ub4dor&3-unique-pw")
    for f in os.listdir(data):
        p = data / f
        if p.is_file():
            assert b"Tr0ub4dor&3-unique-pw" not in p.read_bytes(), f


def test_user_passwd(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice")
    run_ok("user", "passwd", "ALICE", "--data", data, input="new pw\n")
    p = run("user", "passwd", "carol", "--data", data, input="pw\n")
    assert p.returncode == 1 and "carol" in p.stderr
    p = run("user", "passwd", "alice", "--data", data, input="\n")
    assert p.returncode == 2


def test_user_del_removes_mail(server):
    s = server()
    with s.client() as c:
        c.lhlo()
        for rcpt in ("bob@" + DOMAIN, "bob+Archive@" + DOMAIN,
                     "alice@" + DOMAIN):
            _, dr = c.transaction("s@remote.test", [rcpt], BODY)
            assert dr[0].startswith("250 2.0.0")
    # Deleting works while the server runs.
    run_ok("user", "del", "BOB", "--data", s.data)
    assert users(s.data) == {"alice"}
    p = run("export", "bob", "--maildir", s.tmp / "x", "--data", s.data)
    assert p.returncode == 1 and "bob" in p.stderr
    with s.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test>", "250")
        c.cmd("RCPT TO:<bob@%s>" % DOMAIN, "550 5.1.1")
    # A new bob starts empty; alice keeps her mail.
    user_add(s.data, "bob")
    assert [m.data for m in export(s.data, "bob")] == []
    assert [m.data for m in export(s.data, "alice")] == [
        stored("s@remote.test", BODY, "alice@" + DOMAIN)]
    p = run("user", "del", "carol", "--data", s.data)
    assert p.returncode == 1 and "carol" in p.stderr
    s.stop()
    check_store(s.data)


def test_user_add_while_server_runs(server):
    s = server()
    user_add(s.data, "carol")
    with s.client() as c:
        c.lhlo()
        _, dr = c.transaction("s@remote.test", ["carol@" + DOMAIN], BODY)
        assert dr[0].startswith("250 2.0.0")
    assert len(export(s.data, "carol")) == 1


def test_user_commands_need_a_store(tmp_path):
    missing = tmp_path / "missing"
    for args in (["user", "list"], ["user", "del", "alice"]):
        p = run(*args, "--data", missing)
        assert p.returncode == 2, args
        assert "data" in p.stderr and str(missing) in p.stderr
    assert not missing.exists()


def test_user_usage_errors(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice")
    for args in (["user"], ["user", "frob", "alice"], ["user", "add"],
                 ["user", "list", "extra"]):
        p = run(*args, "--data", data)
        assert p.returncode == 2, args
        assert "usage" in p.stderr, args


# --- settings ---------------------------------------------------------------

def serve_fails(*args, tmp_path):
    """Runs `serve` that must refuse to start; returns its stderr."""
    p = run("serve", "--data", tmp_path / "data", *args, timeout=20)
    assert p.returncode == 2, (p.returncode, p.stderr)
    return p.stderr


def test_unknown_option_exits_2_naming_it(tmp_path):
    err = serve_fails("--lmtp", "%s:%d" % (HOST, free_port()),
                      "--no-such-thing", "1", tmp_path=tmp_path)
    assert "--no-such-thing" in err
    for args in (["user", "list", "--bogus-opt", "x"],
                 ["check", "--bogus-opt", "x"],
                 ["export", "alice", "--maildir", "o", "--bogus-opt", "x"],
                 ["import", "alice", "--mbox", "m", "--bogus-opt", "x"]):
        p = run(*args, "--data", tmp_path / "data")
        assert p.returncode == 2, args
        assert "--bogus-opt" in p.stderr, args


@pytest.mark.parametrize("setting,value", [
    ("max-message-size", "abc"),
    ("max-message-size", "12k"),
    ("max-message-size", "10"),
    ("idle-timeout", "0"),
    ("idle-timeout", "-5"),
    ("max-connections", "99999999999999999999"),
    ("log-level", "chatty"),
    ("syslog", "maybe"),
])
def test_bad_value_exits_2_naming_the_setting(tmp_path, setting, value):
    err = serve_fails("--lmtp", "%s:%d" % (HOST, free_port()),
                      "--" + setting, value, tmp_path=tmp_path)
    assert "'%s'" % setting in err and value in err


def test_option_without_value(tmp_path):
    err = serve_fails("--lmtp", "%s:%d" % (HOST, free_port()),
                      "--max-message-size", tmp_path=tmp_path)
    assert "max-message-size" in err


def test_bad_listener(tmp_path):
    err = serve_fails("--lmtp", "nonsense", tmp_path=tmp_path)
    assert "lmtp" in err and "nonsense" in err
    err = serve_fails(tmp_path=tmp_path)
    assert "--lmtp" in err


@pytest.mark.parametrize("spec", [
    "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:25x", ":2525", "[]:2525",
    "%s:2525" % ("1" * 70), "mail.example:2525", "unix:",
    "unix:/%s" % ("d" * 120)])
def test_bad_listener_address(tmp_path, spec):
    """Each listener address that is not IPv4, IPv6 in brackets,
    localhost or a unix socket path that fits is refused by name."""
    err = serve_fails("--lmtp", spec, tmp_path=tmp_path)
    assert "'lmtp'" in err and spec in err, err


def test_localhost_listens_on_the_loopback(server):
    port = free_port()
    srv = server(users=(), args=["--imap", "localhost:%d" % port])
    assert "addr=localhost:%d" % port in srv.log_text()
    with socket.create_connection((HOST, port), timeout=10) as c:
        assert c.recv(100).startswith(b"* OK")


def lhlo_size(port):
    with LMTPClient(port) as c:
        ext = c.lhlo()
    return [e for e in ext if e.startswith("SIZE ")]


def test_config_file(tmp_path):
    port = free_port()
    cfg = tmp_path / "mailrepd.conf"
    cfg.write_text("# a comment\n\n  lmtp = %s:%d   # trailing comment\n"
                   "max-message-size=20000\nname = conf.test\n"
                   "domains = example.com\n" % (HOST, port))
    user_add(tmp_path / "data", "alice")
    s = Server(tmp_path, tmp_path / "data")
    # Everything but the data dir comes from the file.
    s.command = lambda: [MAILREPD, "serve", "--config", str(cfg), "--data",
                         str(s.data)]
    try:
        s.start(port=port)
        assert lhlo_size(port) == ["SIZE 20000"]
        with LMTPClient(port) as c:
            assert c.greeting[0].startswith("220 conf.test ")
            c.lhlo()
            c.cmd("MAIL FROM:<a@b.test>", "250")
            c.cmd("RCPT TO:<alice@other.test>", "550 5.1.2")
    finally:
        s.cleanup()


@pytest.mark.parametrize("order", ["option-last", "option-first"])
def test_option_overrides_config_file(tmp_path, order):
    port = free_port()
    cfg = tmp_path / "mailrepd.conf"
    cfg.write_text("lmtp = %s:%d\nmax-message-size = 20000\n" % (HOST, port))
    user_add(tmp_path / "data", "alice")
    args = ["--config", str(cfg)]
    opt = ["--max-message-size", "30000"]
    args = args + opt if order == "option-last" else opt + args
    s = Server(tmp_path, tmp_path / "data")
    s.command = lambda: [MAILREPD, "serve"] + args + ["--data", str(s.data)]
    try:
        s.start(port=port)
        assert lhlo_size(port) == ["SIZE 30000"]
    finally:
        s.cleanup()


def test_config_file_errors(tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("# ok\nmax-message-size = 20000\nno-such-key = 1\n")
    err = serve_fails("--config", cfg, "--lmtp", "%s:%d" % (HOST, free_port()),
                      tmp_path=tmp_path)
    assert "%s:3" % cfg in err and "no-such-key" in err

    cfg.write_text("idle-timeout = soon\n")
    err = serve_fails("--config", cfg, "--lmtp", "%s:%d" % (HOST, free_port()),
                      tmp_path=tmp_path)
    assert "%s:1" % cfg in err and "'idle-timeout'" in err

    cfg.write_text("just some words\n")
    err = serve_fails("--config", cfg, tmp_path=tmp_path)
    assert "%s:1" % cfg in err

    cfg.write_text("config = /etc/other.conf\n")
    err = serve_fails("--config", cfg, tmp_path=tmp_path)
    assert "%s:1" % cfg in err and "config" in err

    err = serve_fails("--config", tmp_path / "missing.conf",
                      tmp_path=tmp_path)
    assert "'config'" in err and "missing.conf" in err


# --- check ------------------------------------------------------------------

def test_check_on_missing_data_dir_fails_clearly(tmp_path):
    missing = tmp_path / "nowhere"
    p = run("check", "--data", missing)
    assert p.returncode == 2
    assert "'data'" in p.stderr and str(missing) in p.stderr
    assert not p.stdout.startswith("ok")
    assert not missing.exists(), "check created the data dir"


def test_check_finds_a_corrupted_message(server):
    s = server()
    marker = b"CORRUPT-ME-" + os.urandom(8).hex().encode()
    # Random bytes do not compress, so they are stored as they are.
    noise = bytes(b for b in os.urandom(8000) if b not in b"\r\n.")
    body = (b"Subject: victim\r\n\r\n" + marker + b"\r\n"
            + b"\r\n".join(noise[i:i + 500] for i in range(0, len(noise),
                                                          500)) + b"\r\n")
    with s.client() as c:
        c.lhlo()
        _, dr = c.transaction("s@remote.test", ["alice@" + DOMAIN], body)
        assert dr[0].startswith("250 2.0.0")
    s.stop()
    check_store(s.data)
    # Flip one byte of the stored message in the database file.
    db = s.data / "mailrepd.db"
    with sqlite3.connect(db) as conn:     # fold the WAL into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = db.read_bytes()
    at = raw.find(marker)
    assert at >= 0, "message bytes not found in the database file"
    db.write_bytes(raw[:at] + b"X" + raw[at + 1:])
    p = run("check", "--data", s.data)
    assert p.returncode == 1, p.stdout
    assert re.search(r"(?m)^problem: ", p.stdout), p.stdout
    assert re.search(r"(?m)^FAILED: ", p.stdout), p.stdout


def test_store_of_a_newer_schema_is_refused(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice")
    with sqlite3.connect(data / "mailrepd.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    for args in (("check",), ("user", "list")):
        p = run(*args, "--data", data)
        assert p.returncode != 0, (args, p.stdout)
        assert "store schema version 999 is newer" in p.stderr, p.stderr


def test_check_finds_a_blob_with_a_malformed_guid(server):
    s = server()
    with s.client() as c:
        c.lhlo()
        _, dr = c.transaction("s@remote.test", ["alice@" + DOMAIN],
                              b"Subject: s\r\n\r\nbody\r\n")
        assert dr[0].startswith("250 2.0.0")
    s.stop()
    check_store(s.data)
    with sqlite3.connect(s.data / "mailrepd.db") as conn:
        conn.execute("UPDATE blob SET guid = x'0102'")
    conn.close()
    p = run("check", "--data", s.data)
    assert p.returncode == 1, p.stdout
    assert "problem: blob with a malformed GUID" in p.stdout, p.stdout


# --- help -------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--help"], ["help"], ["serve", "--help"], ["user", "--help"],
    ["check", "--help"], ["export", "--help"], ["import", "--help"],
])
def test_help_exits_0(args, tmp_path):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: mailrepd"), p.stdout
    assert os.listdir(tmp_path) == [], "help created files"


def test_top_level_help_lists_commands_and_settings():
    out = run_ok("--help").stdout
    for word in ("serve", "user", "check", "import", "export",
                 "--max-message-size", "--idle-timeout", "--max-connections",
                 "--domains", "--lmtp", "--data", "--config"):
        assert word in out, word


def test_unknown_command_exits_2():
    p = run("frobnicate")
    assert p.returncode == 2 and "frobnicate" in p.stderr


def test_version():
    p = run_ok("--version")
    assert re.fullmatch(r"mailrepd \d+\.\d+\.\d+\n", p.stdout)


def test_password_length_limit(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice", "p" * 1024)
    p = run("user", "add", "bob", "--data", data, input="p" * 1025 + "\n")
    assert p.returncode == 2 and "1024" in p.stderr
    assert users(data) == {"alice"}


def test_serve_is_the_default_command_and_key_equals_value(tmp_path):
    data = tmp_path / "data"
    user_add(data, "alice")
    s = Server(tmp_path, data)
    s.command = lambda: [MAILREPD, "--data=%s" % data,
                         "--lmtp=%s:%d" % (HOST, s.port),
                         "--max-message-size=25000"]
    try:
        s.start()
        assert lhlo_size(s.port) == ["SIZE 25000"]
    finally:
        s.cleanup()


def test_check_while_server_runs(server):
    s = server()
    with s.client() as c:
        c.lhlo()
        _, dr = c.transaction("s@remote.test", ["alice@" + DOMAIN], BODY)
        assert dr[0].startswith("250 2.0.0")
    p = check_store(s.data)
    assert p.stdout.startswith("ok: 1 messages re-hashed, 0 problems")


def test_listener_port_in_use(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        spec = "%s:%d" % (HOST, busy.getsockname()[1])
        err = serve_fails("--lmtp", spec, tmp_path=tmp_path)
    assert "'lmtp'" in err and spec in err and "in use" in err


def test_unix_listener_never_replaces_a_regular_file(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious\n")
    err = serve_fails("--lmtp", "unix:%s" % path, tmp_path=tmp_path)
    assert "'lmtp'" in err and str(path) in err
    assert path.read_text() == "precious\n"
