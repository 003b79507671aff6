"""CATENATE (RFC 4469): APPEND puts a message together from TEXT literals
and IMAP URLs of messages (or sections of them) in the user's own
mailboxes.  What imaptest's catenate groups check, and what an attacker
would try: a URL into another user's mail, a stale UIDVALIDITY, a URL
that cannot go back in a response code, a message grown past the size
limit by repeating a URL, pieces whose edges cut a header line."""
import pytest

from conftest import parse_fetch

FIRST = b"From: foo@example.com\r\n\r\nHello world body\r\n"
SECOND = (b"From: foo2@example.com\r\n\r\nLookslike: header\r\n\r\n"
          b"Another body\r\n")


def lit(data):
    """A LITERAL+ literal of data."""
    return b"{%d+}\r\n" % len(data) + data


def append(c, tail):
    """Sends 'APPEND <tail>' (bytes) and returns the tagged reply."""
    tag = c.tag()
    c.send(tag.encode() + b" APPEND " + tail + b"\r\n")
    return c.read_until(tag)[1]


def bodies(c, mailbox):
    c.ok("SELECT %s" % mailbox)
    return [parse_fetch(l)[1]["BODY[]"]
            for l in c.ok("UID FETCH 1:* BODY.PEEK[]") if " FETCH " in l]


@pytest.fixture
def box(imap_srv):
    """alice's INBOX holds FIRST (uid 1) and SECOND (uid 2); Out is empty."""
    c = imap_srv.raw()
    c.append("INBOX", FIRST)
    c.append("INBOX", SECOND)
    c.ok("CREATE Out")
    yield c
    c.close()


def test_capability(box):
    assert "CATENATE" in " ".join(box.ok("CAPABILITY")).split()


def test_parts_of_messages_and_text(box):
    uv = [l for l in box.ok("STATUS INBOX (UIDVALIDITY)")][0].split()[-1]
    uv = uv.rstrip(")")
    cases = [
        (b'CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT ' +
         lit(b"body1\r\n") + b")", b"From: foo@example.com\r\n\r\nbody1\r\n"),
        (b'CATENATE (URL "/INBOX;UIDVALIDITY=' + uv.encode() +
         b'/;UID=1/;section=header" TEXT ' + lit(b"body2\r\n") + b")",
         b"From: foo@example.com\r\n\r\nbody2\r\n"),
        (b'CATENATE (URL "/INBOX/;UID=2/;SECTION=TEXT" TEXT ' +
         lit(b"body3\r\n") + b")",
         b"Lookslike: header\r\n\r\nAnother body\r\nbody3\r\n"),
        (b'CATENATE (TEXT ' + lit(b"From: new@example.com\r\n\r\n") +
         b' URL "/INBOX/;UID=1/;SECTION=1" TEXT ' + lit(b"suffix\r\n") +
         b")", b"From: new@example.com\r\n\r\nHello world body\r\n"
         b"suffix\r\n"),
        (b'CATENATE (URL "/INBOX/;UID=2/;PARTIAL=100000.1" TEXT ' +
         lit(b"Hdr: foo\r\n\r\nbody7\r\n") + b")",
         b"Hdr: foo\r\n\r\nbody7\r\n"),
        (b'CATENATE (URL "/INBOX/;UID=1/;PARTIAL=6.3" TEXT ' +
         lit(b": x\r\n\r\nb\r\n") + b")", b"foo: x\r\n\r\nb\r\n"),
        (b'CATENATE (URL "/INBOX/;UID=2")', SECOND),
    ]
    for tail, _ in cases:
        reply = append(box, b"Out (\\Seen) " + tail)
        assert reply.startswith("OK [APPENDUID "), (tail, reply)
    assert bodies(box, "Out") == [want for _, want in cases]


def test_pieces_are_one_stream_of_lines(box):
    """A header line cut between two TEXT parts is one line to the MIME
    pre-parse: ENVELOPE has the whole subject."""
    reply = append(box, b"Out CATENATE (TEXT " + lit(b"Subject: hal") +
                   b" TEXT " + lit(b"ves\r\nFrom: a@b.example\r\n\r\nx") +
                   b")")
    assert reply.startswith("OK"), reply
    box.ok("SELECT Out")
    env = parse_fetch([l for l in box.ok("FETCH 1 ENVELOPE")
                       if " FETCH " in l][0])[1]["ENVELOPE"]
    assert env[1] == b"halves"


def test_multiappend_with_catenate_is_all_or_none(box):
    reply = append(box, b'Out CATENATE (URL "/INBOX/;UID=1") CATENATE '
                   b'(URL "/INBOX/;UID=2/;SECTION=HEADER" TEXT ' +
                   lit(b"b\r\n") + b") (\\Answered) " + lit(b"New: m\r\n"))
    assert reply.startswith("OK [APPENDUID "), reply
    assert bodies(box, "Out") == [
        FIRST, b"From: foo2@example.com\r\n\r\nb\r\n", b"New: m\r\n"]
    reply = append(box, b'Out CATENATE (URL "/INBOX/;UID=1") CATENATE '
                   b'(URL "/INBOX;UIDVALIDITY=12345/;UID=1")')
    assert reply.startswith("NO [BADURL /INBOX;UIDVALIDITY=12345/;UID=1]")
    assert len(bodies(box, "Out")) == 3


@pytest.mark.parametrize("url", [
    "/INBOX;UIDVALIDITY=12345/;UID=1",      # stale UIDVALIDITY
    "/INBOX/;UID=9",                        # no such message
    "/Nope/;UID=1",                         # no such mailbox
    "imap://alice@localhost/INBOX/;UID=1",  # not relative to the server
    "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(From)",
    "/INBOX/;UID=1/;SECTION=7",
    "/INBOX/;UID=1/;PARTIAL=0.0",
    "/INBOX/;UID=0",
    "/INBOX/;UID=4294967296",
    "/INBOX/;UID=1/;URLAUTH=anonymous",
    "/IN%ZZBOX/;UID=1",
    "/IN%00BOX/;UID=1",
    "//;UID=1",
])
def test_bad_urls_append_nothing(box, url):
    reply = append(box, b'Out CATENATE (TEXT ' + lit(b"a: b\r\n\r\n") +
                   b' URL "' + url.encode() + b'")')
    assert reply.startswith("NO [BADURL %s]" % url), (url, reply)
    assert bodies(box, "Out") == []


def test_another_users_mail_is_out_of_reach(imap_srv):
    """bob's INBOX has uid 1 and a mailbox Secret; alice's have neither:
    every URL alice can write names only her own mailboxes."""
    bob = imap_srv.raw(user="bob")
    bob.append("INBOX", b"Subject: bob's secret\r\n\r\nsecret\r\n")
    bob.ok("CREATE Secret")
    bob.append("Secret", b"Subject: more\r\n\r\nsecret\r\n")
    bob.close()
    c = imap_srv.raw()
    for url in ("/INBOX/;UID=1", "/Secret/;UID=1", "/bob/INBOX/;UID=1",
                "/..%2Fbob%2FINBOX/;UID=1", "/%2Fbob/INBOX/;UID=1"):
        reply = append(c, b'INBOX CATENATE (URL "' + url.encode() + b'")')
        assert reply.startswith("NO [BADURL"), (url, reply)
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH ALL") == ["* SEARCH"]
    c.close()


def test_utf8_mailbox_name_in_url(box):
    box.ok("CREATE Entw&APw-rfe")
    box.append("Entw&APw-rfe", FIRST)
    reply = append(box, b'Out CATENATE (URL "/Entw%C3%BCrfe/;UID=1")')
    assert reply.startswith("OK"), reply
    assert bodies(box, "Out") == [FIRST]


@pytest.mark.parametrize("tail,code", [
    (b"Out CATENATE ()", "BAD"),
    (b"Out CATENATE (TEXT)", "BAD"),
    (b'Out CATENATE (TEXT "quoted")', "BAD"),
    (b'Out CATENATE (FILE "/etc/passwd")', "BAD"),
    (b'Out CATENATE (URL "/INBOX/;UID=1]x")', "BAD"),
    (b'Out CATENATE (URL "/IN BOX/;UID=1")', "BAD"),
    (b'Nope CATENATE (URL "/INBOX/;UID=1")', "NO [TRYCREATE]"),
    (b'Out CATENATE (TEXT {0+}\r\n)', "NO"),
])
def test_malformed_catenate(box, tail, code):
    reply = append(box, tail)
    assert reply.startswith(code), (tail, reply)
    box.ok("NOOP")


def test_repeated_url_cannot_pass_the_size_limit(server):
    srv = server(imap=True, args=["--max-message-size", "100000"])
    c = srv.raw()
    c.append("INBOX", b"Subject: big\r\n\r\n" + b"x" * 60000 + b"\r\n")
    reply = append(c, b'INBOX CATENATE (URL "/INBOX/;UID=1" '
                   b'URL "/INBOX/;UID=1")')
    assert reply.startswith("NO [TOOBIG]"), reply
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH ALL") == ["* SEARCH 1"]
    c.close()
