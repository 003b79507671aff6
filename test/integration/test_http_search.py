"""The API's search (GET /api/v1/search?query=, Mailpit's syntax) looks
for free text and "quoted phrases" in the subject, the addresses and the
body, decoded (quoted-printable, base64, UTF-8, encoded words) and
without regard to case, as IMAP SEARCH does and through the same
full-text index: substrings, strings too short for the index, messages
the index is behind on, the index off; "-" or "!" excludes a term.  A
user who logged in finds only their own mail, whatever the words."""
import json
import sqlite3
import urllib.parse

from conftest import DOMAIN, free_port, run_ok
from test_http import api, get, web
from test_http_auth import TOKEN, addr, basic, call, tls_web
from test_search_index import MESSAGES, wait_indexed

FIXTURES = (web, addr, tls_web)


def load(srv):
    """MESSAGES delivered to alice; the index in MESSAGES of each ID."""
    for m in MESSAGES:
        code, _ = srv.deliver("s@remote.test", ["alice@" + DOMAIN], m)
        assert code == 250
    ids = {}
    for m in api(srv, "/api/v1/messages?limit=100")["messages"]:
        _, _, raw = get(srv, "/api/v1/message/%s/raw" % m["ID"])
        ids[m["ID"]] = [i for i, x in enumerate(MESSAGES)
                        if raw.endswith(x)][0]
    assert sorted(ids.values()) == list(range(len(MESSAGES)))
    return ids


def found(srv, ids, query):
    """The indexes in MESSAGES of what a search finds."""
    res = api(srv, "/api/v1/search?limit=1000&query=" +
              urllib.parse.quote(query))
    assert res["count"] == len(res["messages"]) == res["messages_count"]
    return sorted(ids[m["ID"]] for m in res["messages"])


# Each a query and the messages (indexes in MESSAGES) it finds.
ANSWERS = [
    ("Base64Secret", [2]),                  # the body only, base64
    ("softbroken", [1]),                    # quoted-printable soft break
    ("\u00c9COLE", [1]),                    # =C3=89COLE, any case
    ("caf\u00e9", [1]),                     # QP
    ("\u00e9T\u00c9", [3]),                 # UTF-8 in an 8bit body
    ("hiddenword", [6]),                    # a base64 attachment
    ("needlew", [0]),                       # a substring
    ("NEEDLEWORD is here", [0]),            # three words, any order
    ('"needleword is here"', [0]),          # a phrase
    ('"here needleword"', []),
    ('"lies in"', [2]),
    ("in lies", [2]),
    ("ab", [4, 7]),                         # too short for the index
                                            # (4: "Zo=C3=AB" in From, as
                                            # IMAP's FROM reads it)
    ("gr\u00fc\u00dfe aus", [4]),           # encoded words in Subject
    ('"gr\u00fc\u00dfe aus"', [4]),
    ("zo\u00eb", [4]),                      # ... and in From
    ("hank@example.org", [5]),              # an address with comments
    ("kim@", [5]),                          # Cc
    ("lastword", [9]),                      # too long to index: read
    ("inner body", [6]),
    ("needleword -plain", []),
    ("needleword !from:alice", []),
    ("-needleword from:example.com", [3, 6, 7, 8, 9]),
    ("subject:needleword", [0]),
    ("subject:hiddenword", []),
    ("-is:read", list(range(len(MESSAGES)))),
    ("nowhere-at-all", []),
]


def answers(srv, ids):
    return [(q, found(srv, ids, q)) for q, _ in ANSWERS]


def test_free_text_reads_bodies_as_imap_search(web):
    ids = load(web)
    assert answers(web, ids) == ANSWERS


def test_index_off_behind_and_consulted(server):
    port = free_port()
    s = server(imap=True, args=["--http", "127.0.0.1:%d" % port,
                                "--search-index", "no"])
    s.http_port = port
    ids = load(s)
    assert answers(s, ids) == ANSWERS
    s.args = ["--http", "127.0.0.1:%d" % port]
    s.restart()
    wait_indexed(s)
    assert answers(s, ids) == ANSWERS
    # delivered now, the index behind it: found all the same
    s.deliver("s@remote.test", ["alice@" + DOMAIN],
              b"Subject: late\r\n\r\nlatecomer NeedleWord\r\n")
    res = api(s, "/api/v1/search?query=needleword")
    assert sorted(m["Subject"] for m in res["messages"]) == [
        "Plain NeedleWord here", "late"]
    late = [m["ID"] for m in res["messages"] if m["Subject"] == "late"]
    assert get(s, "/api/v1/messages", method="DELETE",
               body=json.dumps({"IDs": late}))[0] == 200
    # rebuilt while the server runs
    run_ok("index", "rebuild", "--data", s.data)
    wait_indexed(s)
    assert answers(s, ids) == ANSWERS
    # The index is asked: emptied behind the server's back, it hides
    # what it no longer names (subject and body alike); what it never
    # held, and short strings, are read.
    db = sqlite3.connect(str(s.data / "mailrepd.db"), timeout=10)
    with db:
        db.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
    db.close()
    assert found(s, ids, "needleword") == []
    assert found(s, ids, "Base64Secret") == []
    assert found(s, ids, "lastword") == [9]
    assert found(s, ids, "ab") == [4, 7]


def test_a_user_finds_only_their_own_mail(tls_web):
    for who, word in (("alice", "alicesecret"), ("bob", "bobsecret")):
        msg = ("From: x@remote.test\r\nSubject: for %s\r\n\r\n"
               "the word %s and a shared word\r\n" % (who, word)).encode()
        assert tls_web.deliver("s@remote.test", [who + "@" + DOMAIN],
                               msg)[0] == 250
    # the same message to both: one blob, each sees their own copy
    same = b"Subject: to both\r\n\r\nidentical twinword body\r\n"
    for who in ("alice", "bob"):
        assert tls_web.deliver("s@remote.test", [who + "@" + DOMAIN],
                               same)[0] == 250

    def search(auth, q):
        status, _, body = call(tls_web, "/api/v1/search?query=" + q, auth)
        assert status == 200
        res = json.loads(body)
        assert res["messages_count"] == len(res["messages"])
        return sorted((m["Username"], m["Subject"]) for m in res["messages"])

    alice = basic("alice")
    assert search(alice, "alicesecret") == [("alice", "for alice")]
    for q in ("bobsecret", "bobsec", "for+bob", "bs", "bobsecret&user=bob"):
        assert search(alice, q) == [], q
    assert search(alice, "twinword") == [("alice", "to both")]
    assert search(alice, "shared") == [("alice", "for alice")]
    assert search(basic("bob"), "twinword") == [("bob", "to both")]
    assert search("Bearer " + TOKEN, "twinword") == [("alice", "to both"),
                                                     ("bob", "to both")]
