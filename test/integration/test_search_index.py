"""SEARCH's full-text index changes how fast SEARCH answers, never what:
the same searches over hostile messages (case, quoted-printable soft
breaks, base64, charsets, encoded words, comments in addresses, folded
headers, bytes that are not UTF-8, a text too long to index) answer the
same with the index off, with it built, and while it is built anew;
messages delivered after it answer too; and it is consulted (emptied
behind the server's back, it hides what it should have named)."""
import sqlite3
import time

from conftest import DOMAIN, run_ok

BIG_WORDS = b"filler text line that repeats itself many times\r\n" * 7000

MESSAGES = [
    # plain, mixed case
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
    b"Subject: Plain NeedleWord here\r\n\r\nThe NeedleWord is Here.\r\n",
    # quoted-printable: soft line breaks inside words, encoded UTF-8
    b"From: carol@example.net\r\nTo: dave@example.net\r\n"
    b"Subject: qp\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"soft=\r\nbroken wo=\r\nrd and caf=C3=A9 and =C3=89COLE end=\r\n\r\n",
    # base64 body
    b"From: erin@example.org\r\nTo: frank@example.org\r\nSubject: b64\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"VGhlIEJhc2U2NFNlY3JldCBsaWVzIGluIGhlcmUu\r\n",
    # Latin-1 body: raw bytes, and C3 A9 that read as UTF-8 "\xe9"
    b"From: gus@example.com\r\nSubject: latin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    b"caf\xe9 cr\xe8me and \xc3\xa9t\xc3\xa9 both\r\n",
    # encoded words in Subject and From, across word boundaries
    b"From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.de>\r\nTo: x@example.de\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?B?IGF1cw==?= Berlin\r\n"
    b"\r\nhallo\r\n",
    # comments in addresses, folded header fields
    b"From: hank (the boss) @ (home) example . org\r\n"
    b"To: ivy@example.com,\r\n\tjoe@example.com\r\n"
    b"Cc: kim@example.com\r\nBcc: lee@example.com\r\n"
    b"Subject: a long\r\n folded subject line\r\nX-Tag: Tagged-Value\r\n"
    b"\r\nbody of the folded one\r\n",
    # multipart: text, an attachment, an encapsulated message
    b"From: max@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"preamble preword\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
    b"first part text\r\n--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"aGlkZGVud29yZCBpbnNpZGU=\r\n--XX\r\n"
    b"Content-Type: message/rfc822\r\n\r\n"
    b"Subject: inner subject\r\nFrom: inner@example.com\r\n\r\n"
    b"inner body words\r\n--XX--\r\nepilogue epiword\r\n",
    # bytes that are not UTF-8 around words
    b"From: ned@example.com\r\nSubject: \xff\xfebroken\xc3 bytes\r\n\r\n"
    b"\xff\xfeabcdef\xc3xyz \xc3\xa9\xa9\xa9end \xe2\x82word\r\n",
    # no body at all
    b"From: olive@example.com\r\nSubject: empty\r\n\r\n",
    # a text too long for the index, a word at its end
    b"From: pat@example.com\r\nSubject: big\r\n\r\n" + BIG_WORDS +
    b"the lastword of it\r\n",
]

# Each a list of search keys: bytes are strings (sent as literals).
QUERIES = [
    ["BODY", b"needleword"], ["BODY", b"NEEDLEWORD"], ["TEXT", b"needle"],
    ["BODY", b"softbroken"], ["BODY", b"broken word"], ["BODY", b"word"],
    ["BODY", b"caf\xc3\xa9"], ["BODY", b"\xc3\xa9cole"], ["BODY", b"caf"],
    ["BODY", b"\xc3\xa9t\xc3\xa9"], ["BODY", b"\xc3\xa9"],
    ["BODY", b"Base64Secret"], ["BODY", b"lies in"], ["TEXT", b"b64"],
    ["SUBJECT", b"gr\xc3\xbc\xc3\x9fe aus"], ["SUBJECT", b"e aus ber"],
    ["FROM", b"zo\xc3\xab"], ["FROM", b"hank@example.org"],
    ["FROM", b"the boss"], ["TO", b"joe@example"], ["TO", b"ivy@"],
    ["CC", b"kim@"], ["BCC", b"lee@example"], ["SUBJECT", b"long folded"],
    ["SUBJECT", b"folded subject"], ["HEADER", b"X-Tag", b"tagged-val"],
    ["HEADER", b"Subject", b"long folded"], ["TEXT", b"x-tag: tagged"],
    ["TEXT", b"long\r\n folded"], ["BODY", b"first part"],
    ["BODY", b"hiddenword"], ["BODY", b"inner subject"],
    ["TEXT", b"inner body"], ["BODY", b"preword"], ["BODY", b"epiword"],
    ["BODY", b"abcdef"], ["BODY", b"xyz"], ["BODY", b"\xc3\xa9\xa9"],
    ["BODY", b"xyz \xc3\xa9"], ["SUBJECT", b"broken"],
    ["BODY", b"end"], ["BODY", b"lastword"], ["TEXT", b"lastword"],
    ["BODY", b"no"], ["BODY", b"ab"], ["SUBJECT", b"pl"], ["TEXT", b""],
    ["NOT", "BODY", b"needleword"], ["NOT", "TEXT", b"example.com"],
    ["OR", "BODY", b"hiddenword", "SUBJECT", b"latin"],
    ["OR", "NOT", "BODY", b"word", "FROM", b"alice"],
    ["BODY", b"the", "NOT", "SUBJECT", b"big"],
    ["BODY", b"text", "BODY", b"part"], ["FROM", b"example.com"],
    ["TEXT", b"\"quoted\""], ["BODY", b"nowhere at all"],
    # ORs of keys of one string: one prefilter, the union of their rows
    ["OR", "SUBJECT", b"needleword", "BODY", b"needleword"],
    ["OR", "OR", "FROM", b"example.org", "TO", b"example.org",
     "BODY", b"example.org"],
    ["NOT", "OR", "SUBJECT", b"folded", "BODY", b"folded"],
    ["OR", "SUBJECT", b"hiddenword", "NOT", "BODY", b"hiddenword"],
    ["OR", "SUBJECT", b"latin", "BODY", b"base64secret"],
]


def command(c, keys, uid=True):
    """Sends (UID) SEARCH CHARSET UTF-8 keys (")" closes a "("); its tag."""
    t = c.tag()
    out = b"%s %sSEARCH CHARSET UTF-8" % (t.encode(), b"UID " if uid
                                          else b"")
    for k in keys:
        if k == ")":
            out += b")"
            continue
        if not out.endswith(b"("):
            out += b" "
        out += (b"{%d+}\r\n%s" % (len(k), k) if isinstance(k, bytes)
                else k.encode())
    c.send(out + b"\r\n")
    return t


def search(c, keys, uid=True):
    """The numbers SEARCH (UID SEARCH) answers, sorted."""
    t = command(c, keys, uid)
    untagged, done = c.read_until(t)
    assert done.startswith("OK"), (keys, untagged, done)
    line = [l for l in untagged if l.startswith("* SEARCH")]
    assert len(line) == 1, (keys, untagged)
    return sorted(int(n) for n in line[0][len("* SEARCH"):].split())


def answers(s):
    with s.raw() as c:
        c.ok("SELECT INBOX")
        return [search(c, q) for q in QUERIES]


def status(s):
    p = run_ok("index", "status", "--data", s.data)
    return dict(l.split(": ", 1) for l in p.stdout.splitlines())


def wait_indexed(s):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = status(s)
        if st["pending"] == "0" and st["version"] == "1":
            return st
        time.sleep(0.1)
    raise AssertionError("index not built: %r" % status(s))


def test_index_answers_as_scanning(server):
    s = server(imap=True, args=["--search-index", "no"])
    with s.raw() as c:
        for m in MESSAGES:
            c.append("INBOX", m)
    scanned = answers(s)
    # the scanner's own answers, so the comparison means something
    want = dict(zip((repr(q) for q in QUERIES), scanned))
    assert want[repr(["BODY", b"needleword"])] == [1]
    assert want[repr(["BODY", b"softbroken"])] == [2]
    assert want[repr(["BODY", b"Base64Secret"])] == [3]
    assert want[repr(["BODY", b"\xc3\xa9t\xc3\xa9"])] == [4]
    assert want[repr(["FROM", b"hank@example.org"])] == [6]
    assert want[repr(["BODY", b"hiddenword"])] == [7]
    assert want[repr(["BODY", b"lastword"])] == [10]
    assert status(s)["indexed"] == "0"

    s.args = []
    s.restart()
    st = wait_indexed(s)
    assert st["skipped"] == "1" and int(st["indexed"]) == len(MESSAGES) - 1
    assert int(st["bytes"]) > 0
    assert answers(s) == scanned

    # delivered after the index was built: found, indexed or not
    with s.raw() as c:
        c.append("INBOX", b"Subject: late\r\n\r\nlatecomer NeedleWord\r\n")
        c.ok("SELECT INBOX")
        assert search(c, ["BODY", b"needleword"]) == [1, 11]
    # rebuilt while the server runs
    run_ok("index", "rebuild", "--data", s.data)
    wait_indexed(s)
    indexed = answers(s)

    # The index is asked: emptied behind the server's back (its state
    # saying all is indexed), it hides what it no longer names.
    db = sqlite3.connect(str(s.data / "mailrepd.db"), timeout=10)
    with db:
        db.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
    db.close()
    with s.raw() as c:
        c.ok("SELECT INBOX")
        assert search(c, ["BODY", b"needleword"]) == []
        assert search(c, ["BODY", b"lastword"]) == [10]    # skipped: read
        assert search(c, ["BODY", b"ab"]) == [8]           # too short

    s.args = ["--search-index", "no"]
    s.restart()
    assert answers(s) == indexed


def test_replica_builds_its_own_index(server, tmp_path):
    """Nothing of the index travels: a replica indexes what it applies,
    and its SEARCH answers as its master's."""
    from test_replication import SECRET, lmtp_one, make_cluster, wait_same
    secret = tmp_path / "repl.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    master, (rep,) = make_cluster(server, secret)(1)
    for i, m in enumerate(MESSAGES[:8]):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        m)[0].startswith("250"), i
    wait_same(master, rep)
    for s in (master, rep):
        st = wait_indexed(s)
        assert st["indexed"] == "8" and st["skipped"] == "0", st
    assert answers(rep) == answers(master)


def pending_ro(s):
    """Blobs above the index's high-water mark, read without the
    command-line tool (whose opening of the store the server notices
    as another process's commit)."""
    db = sqlite3.connect("file:%s?mode=ro" % (s.data / "mailrepd.db"),
                         uri=True, timeout=10)
    try:
        return db.execute("SELECT count(*) FROM blob WHERE id > "
                          "(SELECT upto FROM fts_state)").fetchone()[0]
    finally:
        db.close()


def test_index_catches_up_after_a_busy_store(server):
    """A batch the index could not begin (another process held the
    store's write lock) is tried again, though no row changed since:
    the index step skips its look only when nothing changed since a
    look that worked (else the message stayed pending until the next
    change to the store)."""
    s = server()
    wait_indexed(s)
    db = sqlite3.connect(str(s.data / "mailrepd.db"), isolation_level=None,
                         timeout=10)
    try:
        s.deliver("a@remote.test", ["alice@" + DOMAIN], MESSAGES[0])
        db.execute("BEGIN IMMEDIATE")   # before the index's 0.5 s delay
        time.sleep(2.5)                 # its batch fails to begin
        assert pending_ro(s) == 1
        db.execute("ROLLBACK")
    finally:
        db.close()
    deadline = time.monotonic() + 15
    while pending_ro(s) > 0:
        assert time.monotonic() < deadline, "the message stayed pending"
        time.sleep(0.2)
    wait_indexed(s)


def automerge(s):
    db = sqlite3.connect(str(s.data / "mailrepd.db"), timeout=10)
    try:
        row = db.execute("SELECT v FROM fts_config WHERE k = 'automerge'"
                         ).fetchone()
    finally:
        db.close()
    return row and row[0]


def test_index_merges_segments_sixteen_at_a_time(server):
    """The index's rows cost delivery a rewrite a level (bench/growth.py):
    FTS5 merges 16 segments of a level at once, not its default 4, in a
    new store and in one that held another value (an older store)."""
    s = server(imap=True)
    with s.raw() as c:
        c.append("INBOX", MESSAGES[0])
    wait_indexed(s)
    assert automerge(s) == 16
    db = sqlite3.connect(str(s.data / "mailrepd.db"), timeout=10)
    with db:
        db.execute("INSERT INTO fts (fts, rank) VALUES ('automerge', 4)")
    db.close()
    s.restart()
    with s.raw() as c:
        c.append("INBOX", MESSAGES[2])
    wait_indexed(s)
    assert automerge(s) == 16
    run_ok("index", "rebuild", "--data", s.data)
    wait_indexed(s)
    assert automerge(s) == 16
    with s.raw() as c:
        c.ok("SELECT INBOX")
        assert search(c, ["BODY", b"needleword"]) == [1]
        assert search(c, ["BODY", b"base64secret"]) == [2]
