"""curl's IMAP support: a message by UID, a section, listing mailboxes,
a SEARCH, an upload (APPEND), and a refused login."""
import shutil
import subprocess

import pytest

from conftest import HOST, PASSWORD

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl not installed")
M1 = (b"From: a@example.com\r\nSubject: first\r\n\r\nHello from one.\r\n")
M2 = (b"From: b@example.com\r\nSubject: hello curl\r\n\r\n"
      b"Second body\r\nwith two lines.\r\n")


def curl(srv, path, *args, user="alice", password=PASSWORD, ok=True):
    url = "imap://%s:%d/%s" % (HOST, srv.imap_port, path)
    p = subprocess.run([CURL, "-sS", "--max-time", "30",
                        "-u", "%s:%s" % (user, password), url] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if ok:
        assert p.returncode == 0, "curl %s exited %d: %s" % (
            url, p.returncode, p.stderr.decode())
    return p


@pytest.fixture
def box(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", M1)
        c.append("INBOX", M2)
    return imap_srv


def test_fetch_by_uid(box):
    assert curl(box, "INBOX;UID=1").stdout == M1
    assert curl(box, "INBOX;UID=2").stdout == M2
    # UIDVALIDITY in the URL must match (RFC 5092).
    with box.raw() as c:
        v = c.status("INBOX", "UIDVALIDITY")["UIDVALIDITY"]
    assert curl(box, "INBOX;UIDVALIDITY=%d/;UID=2" % v).stdout == M2


def test_fetch_section(box):
    assert curl(box, "INBOX;UID=2;SECTION=TEXT").stdout == \
        b"Second body\r\nwith two lines.\r\n"
    assert curl(box, "INBOX;UID=2;SECTION=HEADER").stdout == \
        b"From: b@example.com\r\nSubject: hello curl\r\n\r\n"


def test_fetch_missing_uid_fails(box):
    p = curl(box, "INBOX;UID=99", ok=False)
    assert p.returncode != 0 and p.stdout == b""


def test_list_mailboxes(box):
    out = curl(box, "").stdout.decode()
    names = set()
    for line in out.splitlines():
        assert line.startswith("* LIST ("), line
        names.add(line.rsplit(" ", 1)[1].strip('"'))
    assert names == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}


def test_search(box):
    out = curl(box, "INBOX?SUBJECT%20curl").stdout
    assert out.strip() == b"* SEARCH 2"


def test_custom_request(box):
    out = curl(box, "", "-X", "STATUS INBOX (MESSAGES UIDNEXT)").stdout
    assert out.strip() in (b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3)",
                           b'* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3)')


def test_upload_appends(box, tmp_path):
    f = tmp_path / "up.eml"
    f.write_bytes(b"From: c@example.com\r\nSubject: uploaded\r\n\r\nup\r\n")
    curl(box, "Sent", "-T", str(f))
    assert curl(box, "Sent;UID=1").stdout == f.read_bytes()


def test_wrong_password_refused(box):
    p = curl(box, "INBOX;UID=1", password="wrong", ok=False)
    assert p.returncode == 67, (p.returncode, p.stderr)  # login denied
    assert p.stdout == b""
