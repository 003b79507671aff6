"""mbsync (Debian's isync) against the server: a full two-way sync of
several mailboxes into a local Maildir and back, a re-run that changes
nothing, then flag changes, new messages and deletions on both sides."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import HOST, PASSWORD, parse_fetch

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(MBSYNC is None, reason="mbsync not installed")
BOXES = ["INBOX", "Archive", "Sent", "Projects/2024"]


def msg(box, n):
    return (b"From: sender@example.com\r\nTo: alice@example.com\r\n"
            b"Subject: %s %d\r\nMessage-ID: <%s.%d@test>\r\n\r\n"
            b"body of %s %d\r\n" % ((box.encode(), n) * 3))


def write_config(tmp, port):
    mail = tmp / "mail"
    mail.mkdir()
    conf = tmp / "mbsyncrc"
    conf.write_text("""\
IMAPAccount test
Host %s
Port %d
User alice
Pass "%s"
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore far
Account test

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
SyncState *
CopyArrivalDate yes
""" % (HOST, port, PASSWORD, mail, mail))
    return conf, mail


def mbsync(tmp, conf):
    env = dict(os.environ, HOME=str(tmp))
    p = subprocess.run([MBSYNC, "-c", str(conf), "-a"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "mbsync exited %d:\n%s" % (p.returncode, out)
    return out


LETTERS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R",
           "\\Draft": "D", "\\Deleted": "T"}


def local(mail, box):
    """{Message-ID: maildir flag letters} of one local folder."""
    d = mail / box
    out = {}
    for sub in ("cur", "new"):
        for f in sorted((d / sub).iterdir()):
            data = f.read_bytes()
            mid = re.search(rb"Message-ID: <([^>]+)>", data).group(1)
            flags = f.name.split(":2,", 1)[1] if ":2," in f.name else ""
            assert mid not in out, "duplicate %s in %s" % (mid, d)
            out[mid] = "".join(sorted(flags))
    return out


def remote(c, box):
    """{Message-ID: flag letters} of a mailbox on the server."""
    c.ok('EXAMINE "%s"' % box)
    out = {}
    for l in c.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
        if " FETCH " not in l:
            continue
        n, f = parse_fetch(l)
        mid = re.search(rb"<([^>]+)>",
                        f["BODY[HEADER.FIELDS (MESSAGE-ID)]"]).group(1)
        assert mid not in out
        out[mid] = "".join(sorted(LETTERS[x] for x in f["FLAGS"]
                                  if x in LETTERS))
    c.ok("UNSELECT")
    return out


def find(folder, text):
    """The one file of a Maildir folder whose bytes hold text."""
    found = [p for sub in ("cur", "new") for p in (folder / sub).iterdir()
             if text in p.read_bytes()]
    assert len(found) == 1, (folder, text, found)
    return found[0]


def server_state(c):
    """(UIDNEXT, MESSAGES, HIGHESTMODSEQ) of every mailbox."""
    return {b: c.status('"%s"' % b, "UIDNEXT MESSAGES HIGHESTMODSEQ")
            for b in BOXES}


def files(mail):
    return sorted(str(p.relative_to(mail)) for p in mail.rglob("*")
                  if p.is_file() and not p.name.startswith(".mbsync"))


@pytest.fixture
def synced(imap_srv, tmp_path):
    """Server mailboxes with messages, synced once into a Maildir."""
    c = imap_srv.raw()
    c.ok('CREATE "Projects/2024"')
    for box in BOXES:
        for n in range(1, 4):
            c.append('"%s"' % box, msg(box, n),
                     flags="\\Seen" if n == 1 else "\\Flagged" if n == 2
                     else "")
    conf, mail = write_config(tmp_path, imap_srv.imap_port)
    mbsync(tmp_path, conf)
    yield c, conf, mail, tmp_path
    c.close()


def test_full_sync_down(synced):
    c, conf, mail, tmp = synced
    for box in BOXES:
        want = {("%s.%d@test" % (box, n)).encode(): f
                for n, f in ((1, "S"), (2, "F"), (3, ""))}
        assert local(mail, box) == want, box
        assert remote(c, box) == want, box
    # The bytes arrive unchanged (but for mbsync's own LF line ends and
    # its X-TUID header).
    data = [re.sub(rb"X-TUID: \S+\n", b"", p.read_bytes())
            for p in (mail / "Archive").rglob("*")
            if p.is_file() and p.parent.name in ("cur", "new")]
    assert sorted(data) == sorted(msg("Archive", n).replace(b"\r\n", b"\n")
                                  for n in (1, 2, 3))


def test_rerun_is_a_no_op(synced):
    c, conf, mail, tmp = synced
    before_files, before = files(mail), server_state(c)
    mbsync(tmp, conf)
    assert files(mail) == before_files
    assert server_state(c) == before


def test_changes_on_both_sides_propagate(synced):
    c, conf, mail, tmp = synced
    # Server side: flags, a new message, an expunge.
    c.ok("SELECT INBOX")
    c.ok("STORE 3 +FLAGS.SILENT (\\Answered)")
    c.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("UNSELECT")
    c.append("INBOX", msg("INBOX", 4))
    # Local side: a flag, a new message, a deletion.
    arch = mail / "Archive"
    f3 = find(arch, b"Archive 3")
    base = f3.name.split(":2,", 1)[0]
    f3.rename(arch / "cur" / (base + ":2,FS"))
    find(arch, b"Archive 1").unlink()
    (arch / "new" / "1700000000.local1.host").write_bytes(msg("Archive", 5))
    mbsync(tmp, conf)

    want_inbox = {b"INBOX.1@test": "", b"INBOX.3@test": "R",
                  b"INBOX.4@test": ""}
    assert remote(c, "INBOX") == want_inbox
    assert local(mail, "INBOX") == want_inbox
    want_archive = {b"Archive.2@test": "F", b"Archive.3@test": "FS",
                    b"Archive.5@test": ""}
    assert remote(c, "Archive") == want_archive
    assert local(mail, "Archive") == want_archive
    # And once more: nothing left to do.
    before_files, before = files(mail), server_state(c)
    mbsync(tmp, conf)
    assert files(mail) == before_files
    assert server_state(c) == before


def test_local_folder_created_on_server(synced):
    c, conf, mail, tmp = synced
    d = mail / "Local"
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True)
    (d / "new" / "1700000001.x.host").write_bytes(msg("Local", 1))
    mbsync(tmp, conf)
    assert remote(c, "Local") == {b"Local.1@test": ""}
    # UIDs the sync stored match the server's.
    st = c.status("Local", "MESSAGES UIDNEXT")
    assert st == {"MESSAGES": 1, "UIDNEXT": 2}
