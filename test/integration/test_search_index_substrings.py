"""SEARCH asks the full-text index for only some trigrams of a string
(spread over it, every character in one), and reads a candidate's row
and header fields in one look-up: every substring of tricky texts, of
every length from 3 on, answers the same with the index on as with it
off.  The texts hold strings whose trigrams all occur apart but never
together, encoded words, folded headers, quotes, letters of two bytes
and mixed case; messages delivered since the index was built and
messages expunged are among those searched."""
from conftest import run_ok
from test_search_index import search, wait_indexed

MESSAGES = [
    # every trigram of "abcabd" and of "xyzxyq", never the strings
    b"From: one@example.com\r\nSubject: abcab zcabd\r\n\r\n"
    b"xyzxy yzxyq and abcab then cabd\r\n",
    # the strings themselves, in another case
    b"From: two@example.com\r\nSubject: ABCABD\r\n\r\nXYZXYQ here\r\n",
    # an encoded word and a folded field, quotes in the body
    b"From: =?UTF-8?Q?Cr=C3=A8me_Br=C3=BBl=C3=A9e?= <creme@example.fr>\r\n"
    b"Subject: =?UTF-8?Q?=C3=89cole_d=27=C3=A9t=C3=A9?= and\r\n"
    b" a folded tail\r\n\r\n"
    b"she said \"ecole\" twice: \"\xc3\xa9cole\" \xc3\x89COLE\r\n",
    # two-byte letters around ASCII
    b"From: tr\xc3\xa9s <tres@example.fr>\r\nSubject: d\xc3\xa9j\xc3\xa0 "
    b"vu\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e na\xc3\xafve\r\n",
]

# Texts whose every substring of 3 or more characters is asked.
TEXTS = [
    "abcabd", "zcabd", "xyzxyq", "yzxyq",
    "\u00c9cole d'\u00e9t\u00e9", "and a folded", "\"ecole\"",
    "cr\u00e8me br\u00fbl", "d\u00e9j\u00e0 vu",
]

KEYS = ["BODY", "TEXT", "SUBJECT", "FROM"]


def queries():
    out = []
    for t in TEXTS:
        for i in range(len(t)):
            for j in range(i + 3, len(t) + 1):
                out.append(t[i:j].encode())
    return sorted(set(out))


def answers(s):
    with s.raw() as c:
        c.ok("SELECT INBOX")
        return {(k, q): search(c, [k, q]) for k in KEYS for q in queries()}


def test_substrings_answer_as_scanning(server):
    s = server(imap=True, args=["--search-index", "no"])
    with s.raw() as c:
        for m in MESSAGES * 3:
            c.append("INBOX", m)
        c.ok("SELECT INBOX")
        c.ok("STORE 5:8 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
    scanned = answers(s)
    # the scanner's own answers, so that the comparison means something
    assert scanned[("SUBJECT", b"abcabd")] == [2, 10]
    assert scanned[("BODY", b"xyzxyq")] == [2, 10]
    assert scanned[("SUBJECT", b"a folded")] == [3, 11]
    assert scanned[("BODY", b"\"ecole\"")] == [3, 11]
    assert scanned[("FROM", b"cr\xc3\xa8me br")] == [3, 11]
    assert scanned[("TEXT", b"d\xc3\xa9j\xc3\xa0 vu")] == [4, 12]

    s.args = []
    s.restart()
    wait_indexed(s)
    assert answers(s) == scanned

    # delivered after the index was built: read, and found alike
    with s.raw() as c:
        for m in MESSAGES:
            c.append("INBOX", m)
    late = answers(s)
    assert late[("SUBJECT", b"abcabd")] == [2, 10, 14]
    wait_indexed(s)
    assert answers(s) == late
    run_ok("index", "rebuild", "--data", s.data)
    assert answers(s) == late
