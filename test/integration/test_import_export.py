"""`mailrepd import` and `mailrepd export`: Maildir++ and mbox in, Maildir
out, keeping bytes, flags and internal dates."""
import calendar
import os
import re
from pathlib import Path

import pytest

from conftest import (DOMAIN, check_store, export, read_maildir, run, run_ok,
                      stored)

T0 = 1600000000


def write_maildir_file(folder, sub, name, data, mtime):
    d = Path(folder)
    for s in ("cur", "new", "tmp"):
        (d / s).mkdir(parents=True, exist_ok=True)
    p = d / sub / name
    p.write_bytes(data)
    os.utime(p, (mtime, mtime))
    return p


def crlf(data):
    """What the store keeps: every line ended with CRLF."""
    return re.sub(rb"\r?\n", b"\r\n", data)


# (folder under the root, subdir, file name, bytes, mtime, expected flags)
MAILDIR = [
    ("", "cur", "%d.M1P1.host:2,S" % T0,
     b"Subject: seen\r\nFrom: a@x.test\r\n\r\nCRLF body\r\n.dot line\r\n",
     T0, "S"),
    ("", "cur", "%d.M2P1.host:2,FRS" % (T0 + 1),
     b"Subject: lf file\nFrom: a@x.test\n\nLF body\n\nmore\n", T0 + 86400,
     "FRS"),
    ("", "cur", "%d.M3P1.host:2,DT" % (T0 + 2),
     b"Subject: draft, deleted\r\n\r\nx\r\n", T0 + 2 * 86400, "DT"),
    ("", "cur", "%d.M4P1.host:2,SF" % (T0 + 3),
     b"Subject: flags out of order\r\n\r\ny\r\n", T0 + 3 * 86400, "FS"),
    ("", "cur", "%d.M5P1.host:2," % (T0 + 4),
     b"Subject: no flags\r\n\r\nz\r\n", T0 + 4 * 86400, ""),
    ("", "new", "%d.M6P1.host" % (T0 + 5),
     b"Subject: new mail\n\nunread\n", T0 + 5 * 86400, ""),
    (".Work", "cur", "%d.M7P1.host:2,F" % (T0 + 6),
     b"Subject: work\r\n\r\n\xc3\xa9t\xc3\xa9 8-bit\r\n", T0 + 6 * 86400,
     "F"),
    (".Work", "cur", "%d.M8P1.host:2,R" % (T0 + 7),
     b"Subject: work 2\r\n\r\nreplied\r\n", T0 + 7 * 86400, "R"),
    (".Work.Projects", "cur", "%d.M9P1.host:2,DFRST" % (T0 + 8),
     b"Subject: nested\r\n\r\nall flags\r\n", T0 + 8 * 86400, "DFRST"),
    (".Sent", "cur", "%d.M10P1.host:2,S" % (T0 + 9),
     b"Subject: sent\r\n\r\nsent by me\r\n", T0 + 9 * 86400, "S"),
]

FOLDER = {"": "INBOX", ".Work": "Work", ".Work.Projects": "Work/Projects",
          ".Sent": "Sent"}


def build_maildir(root):
    for folder, sub, name, data, mtime, _ in MAILDIR:
        write_maildir_file(Path(root) / folder if folder else root, sub, name,
                           data, mtime)
    for folder in FOLDER:
        if folder:
            (Path(root) / folder / "maildirfolder").write_bytes(b"")


def as_set(msgs):
    return sorted((m.mailbox, m.flags, m.mtime, m.data) for m in msgs)


def test_maildir_round_trip(server, tmp_path):
    s = server(start=False)
    src = tmp_path / "src"
    build_maildir(src)
    p = run_ok("import", "alice", "--maildir", src, "--data", s.data)
    assert "imported 10 messages, 0 failed" in p.stdout
    out = tmp_path / "out"
    got = export(s.data, "alice", dest=out)
    want = sorted((FOLDER[f], flags, mtime, crlf(data))
                  for f, _, _, data, mtime, flags in MAILDIR)
    assert as_set(got) == want
    for m in got:
        assert re.fullmatch(r"[^/]+:2,[DFRST]*", m.name), m.name
    # Mailboxes that got nothing are exported (empty) too.
    assert (out / ".Archive" / "cur").is_dir()
    # The export imports back to the same thing, byte for byte.
    run_ok("import", "bob", "--maildir", out, "--data", s.data)
    assert as_set(export(s.data, "bob")) == want
    check_store(s.data)


def test_maildir_import_one_mailbox_and_export_one(server, tmp_path):
    s = server(start=False)
    src = tmp_path / "src"
    write_maildir_file(src, "cur", "1.M1.h:2,S", b"Subject: a\n\nA\n", T0)
    write_maildir_file(src, "cur", "2.M2.h:2,", b"Subject: b\r\n\r\nB\r\n",
                       T0 + 60)
    run_ok("import", "alice", "--maildir", src, "--mailbox", "Old/2019",
           "--data", s.data)
    assert export(s.data, "alice", "INBOX") == []
    got = export(s.data, "alice", "Old/2019")
    assert as_set(got) == sorted([
        ("Old/2019", "S", T0, b"Subject: a\r\n\r\nA\r\n"),
        ("Old/2019", "", T0 + 60, b"Subject: b\r\n\r\nB\r\n")])
    tree = {m.mailbox for m in export(s.data, "alice")}
    assert tree == {"Old/2019"}


MBOX = (
    b"From alice@example.com Mon Jan  2 15:04:05 2023\n"
    b"From: alice@example.com\n"
    b"Subject: one\n"
    b"Status: RO\n"
    b"X-Status: AF\n"
    b"\n"
    b"body line\n"
    b">From the start of a line\n"
    b">>From quoted twice\n"
    b">Fromage is not a From_ line\n"
    b"> From with a space stays\n"
    b"\n"
    b"From bob@example.com Tue Feb 14 09:30:00 2023\n"
    b"Subject: two\n"
    b"Status: O\n"
    b"X-Status: T\n"
    b"\n"
    b"second\n"
    b"with blank lines\n"
    b"\n"
    b"\n"
    b"inside\n"
    b"\n"
    b"From carol@example.com Wed Dec 31 23:59:59 2024\n"
    b"Subject: three\n"
    b"X-Status: D\n"
    b"\n"
    b"third\n"
    b"\n"
)

MBOX_WANT = [
    ("FRS", calendar.timegm((2023, 1, 2, 15, 4, 5)),
     b"From: alice@example.com\r\nSubject: one\r\nStatus: RO\r\n"
     b"X-Status: AF\r\n\r\nbody line\r\nFrom the start of a line\r\n"
     b">From quoted twice\r\n>Fromage is not a From_ line\r\n"
     b"> From with a space stays\r\n"),
    ("D", calendar.timegm((2023, 2, 14, 9, 30, 0)),
     b"Subject: two\r\nStatus: O\r\nX-Status: T\r\n\r\nsecond\r\n"
     b"with blank lines\r\n\r\n\r\ninside\r\n"),
    ("T", calendar.timegm((2024, 12, 31, 23, 59, 59)),
     b"Subject: three\r\nX-Status: D\r\n\r\nthird\r\n"),
]


def without_status(data):
    """The message without Status:/X-Status: header lines, which an mbox
    importer may keep or drop; everything else must be exact."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = [l for l in head.split(b"\r\n")
             if not re.match(rb"(?i)(x-)?status:", l)]
    return b"\r\n".join(lines) + sep + body


def test_mbox_import(server, tmp_path):
    s = server(start=False)
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(MBOX)
    p = run_ok("import", "alice", "--mbox", mbox, "--data", s.data)
    assert "imported 3 messages, 0 failed" in p.stdout
    got = export(s.data, "alice")
    assert all(m.mailbox == "INBOX" for m in got)
    assert sorted((m.flags, m.mtime, without_status(m.data)) for m in got) \
        == sorted((f, t, without_status(d)) for f, t, d in MBOX_WANT)


def test_mbox_import_into_named_mailbox(server, tmp_path):
    s = server(start=False)
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(MBOX)
    run_ok("import", "alice", "--mbox", mbox, "--mailbox", "Lists",
           "--data", s.data)
    got = export(s.data, "alice")
    assert {m.mailbox for m in got} == {"Lists"} and len(got) == 3


def test_import_while_server_runs(server, tmp_path):
    """import works beside a running server; UIDs keep growing."""
    s = server()
    with s.client() as c:
        c.lhlo()
        c.transaction("s@remote.test", ["alice@" + DOMAIN],
                      b"Subject: before\r\n\r\n1\r\n")
    src = tmp_path / "src"
    write_maildir_file(src, "cur", "1.M1.h:2,S", b"Subject: imp\n\n2\n", T0)
    run_ok("import", "alice", "--maildir", src, "--data", s.data)
    with s.client() as c:
        c.lhlo()
        _, dr = c.transaction("s@remote.test", ["alice@" + DOMAIN],
                              b"Subject: after\r\n\r\n3\r\n")
        assert dr[0].startswith("250 2.0.0") and dr[0].endswith(" UID 3"), dr
    got = export(s.data, "alice")
    assert sorted(m.data for m in got) == sorted([
        stored("s@remote.test", b"Subject: before\r\n\r\n1\r\n",
               "alice@" + DOMAIN),
        b"Subject: imp\r\n\r\n2\r\n",
        stored("s@remote.test", b"Subject: after\r\n\r\n3\r\n",
               "alice@" + DOMAIN)])
    uids = sorted(int(re.search(r"\.U(\d+)\.", m.name).group(1))
                  for m in got)
    assert uids == [1, 2, 3]


def test_export_writes_every_default_mailbox(server, tmp_path):
    s = server(start=False)
    out = tmp_path / "out"
    run_ok("export", "alice", "--maildir", out, "--data", s.data)
    dirs = sorted(d.name for d in out.iterdir())
    assert dirs == [".Archive", ".Drafts", ".Junk", ".Sent", ".Trash",
                    "cur", "new", "tmp"]
    assert read_maildir(out) == []


@pytest.mark.parametrize("args,code", [
    (["import", "carol", "--maildir", "{src}"], 1),
    (["import", "alice"], 2),
    (["import", "alice", "--maildir", "{src}", "--mbox", "{src}"], 2),
    (["import", "alice", "--mbox", "{missing}"], 1),
    (["import", "alice", "--maildir", "{missing}"], 1),
    (["export", "carol", "--maildir", "{out}"], 1),
    (["export", "alice", "NoSuchBox", "--maildir", "{out}"], 1),
    (["export", "alice"], 2),
])
def test_import_export_errors(server, tmp_path, args, code):
    s = server(start=False)
    src = tmp_path / "src"
    write_maildir_file(src, "cur", "1.M1.h:2,S", b"Subject: a\n\nA\n", T0)
    fill = {"src": str(src), "missing": str(tmp_path / "missing"),
            "out": str(tmp_path / "out")}
    p = run(*[a.format(**fill) for a in args], "--data", s.data)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert p.stderr.strip() != ""
    # Nothing was imported by a failed command.
    assert export(s.data, "alice") == []
