"""The message view's API: decoded text, sanitized HTML (as JSON and as
a framed document under its own policy), attachments and their
download, marking read and unread through the store (IMAP sees it),
users and mailboxes with per-user and per-mailbox lists, and deep pages
that equal the same slice of the whole list."""
import base64
import json
import re

import pytest

from conftest import HOST, free_port
from hostile_html import TOKEN, corpus, hostile_message
from test_http import api, deliver, get, web  # noqa: F401 (web: fixture)

PDF = bytes(range(256)) * 40        # 10 KiB that is not text


def multipart(subject="with parts"):
    """text (quoted-printable), HTML (base64) and two attachments."""
    html = base64.encodebytes(b"<p>Hi <b>there</b> <img src=cid:x>"
                              b"<a href='https://ok.test/'>ok</a></p>")
    pdf = base64.encodebytes(PDF)
    return ("From: Ann <ann@remote.test>\r\nTo: alice@example.com\r\n"
            "Subject: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
            "--o\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
            "--a\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            "caf=C3=A9 =3D 1\r\n--a\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s--a--\r\n"
            "--o\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\n"
            "Content-Disposition: attachment; "
            "filename=\"=?UTF-8?Q?r=C3=A9sum=C3=A9?=.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s"
            "--o\r\nContent-Type: text/html\r\nContent-Disposition: "
            "attachment; filename=\"../../evil\\\".html\"\r\n\r\n"
            "<script>alert(1)</script>\r\n--o--\r\n" % (
                subject, html.decode(), pdf.decode())).encode()


def first(web, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    return api(web, "/api/v1/messages?" + q)["messages"][0]


def test_text_html_and_attachments(web):
    web.deliver("s@remote.test", ["alice@example.com"], multipart())
    m = api(web, "/api/v1/message/" + first(web)["ID"])
    assert m["Text"] == "café = 1"
    assert "<b>there</b>" in m["HTML"]
    assert "cid:" not in m["HTML"]          # the message's own URL for it
    assert 'href="https://ok.test/" target="_blank" rel="noopener ' \
        'noreferrer"' in m["HTML"]
    assert m["Inline"] == []
    parts = m["Attachments"]
    assert [(a["PartID"], a["ContentType"]) for a in parts] == [
        ("2", "application/pdf"), ("3", "text/html")]
    assert parts[0]["FileName"] == "résumé.pdf"
    assert "/" not in parts[1]["FileName"]
    for a in parts:
        assert set(a) >= {"PartID", "FileName", "ContentType", "Size"}
        assert a["Size"] > 0
    status, headers, body = get(web, "/api/v1/message/%s/part/2" % m["ID"])
    assert status == 200 and body == PDF
    assert headers["content-type"] == "application/pdf"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in \
        headers["content-disposition"]
    # An HTML attachment is a download, never a page of this origin.
    status, headers, body = get(web, "/api/v1/message/%s/part/3" % m["ID"])
    assert status == 200 and b"<script>" in body
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert re.match(r'attachment; filename="[^"/\\]*"; ', disposition)
    assert "default-src 'none'" in headers["content-security-policy"]
    for bad in ("9", "1.1.1", "0", "", "1/x", "..", "2/"):
        status, _, _ = get(web, "/api/v1/message/%s/part/%s" % (
            m["ID"], bad))
        assert status == 404, bad
    status, _, _ = get(web, "/api/v1/message/%s/part/2" % ("0" * 32 + "-9"))
    assert status == 404


def test_html_document_policy(web):
    web.deliver("s@remote.test", ["alice@example.com"], multipart())
    mid = first(web)["ID"]
    status, headers, body = get(web, "/api/v1/message/%s/html" % mid)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert "script-src" not in policy and "allow-scripts" not in policy
    assert "allow-same-origin" not in policy
    assert "img-src 'self';" in policy + ";"       # its cid: images only
    assert "http:" not in policy                    # nothing remote
    assert b"<b>there</b>" in body
    status, headers, _ = get(web, "/api/v1/message/%s/html?remote=1" % mid)
    assert status == 200
    policy = headers["content-security-policy"]
    assert "img-src 'self' http: https:" in policy and \
        "script-src" not in policy
    deliver(web, "alice@example.com", "plain only")
    status, _, _ = get(web, "/api/v1/message/%s/html" % first(web)["ID"])
    assert status == 404


def test_hostile_html_is_sanitized(web):
    web.deliver("s@remote.test", ["alice@example.com"],
                hostile_message("http://beacon.test/"))
    mid = first(web)["ID"]
    for remote in ("", "?remote=1"):
        _, _, body = get(web, "/api/v1/message/%s/html%s" % (mid, remote))
        html = body.decode()
        assert "end of corpus" in html
        low = html.lower()
        for bad in ("<script", "onerror", "onload", "javascript",
                    "vbscript", "data:", "<iframe", "<frame", "<object",
                    "<embed", "<meta", "<base", "<link", "<form", "<svg",
                    "<video", "srcdoc", "background=", "&colon;",
                    "<input", "poster", TOKEN + "'<"):
            assert bad not in low, (remote, bad, html)
        if remote == "":
            assert "beacon.test" not in low and "@import" not in low
        else:       # images asked for; still no script, frame or import
            assert 'src="http://beacon.test/img.png"' in html


@pytest.mark.parametrize("name", sorted(corpus()))
def test_each_hostile_piece(web, name):
    html = corpus("http://beacon.test/")[name]
    web.deliver("s@remote.test", ["alice@example.com"], (
        "Subject: %s\r\nContent-Type: text/html\r\n\r\n%s\r\n" % (
            name, html)).encode())
    _, _, body = get(web, "/api/v1/message/%s/html" % first(web)["ID"])
    low = body.decode().lower()
    assert "beacon.test" not in low, low
    assert "<script" not in low and "javascript:" not in low, low
    assert not re.search(r"<[^>]*\son[a-z]+=", low), low


def test_read_unread_through_the_store(server):
    port = free_port()
    srv = server(imap=True, args=["--http", "%s:%d" % (HOST, port)])
    srv.http_port = port
    for i in range(3):
        deliver(srv, "alice@example.com", "r%d" % i)
    ids = [m["ID"] for m in api(srv, "/api/v1/messages")["messages"]]
    c = srv.imap()
    c.select("INBOX")
    status, _, body = get(srv, "/api/v1/messages", method="PUT",
                          body=json.dumps({"IDs": ids[:2], "Read": True}))
    assert status == 200 and body == b"ok"
    page = api(srv, "/api/v1/messages")
    assert [m["Read"] for m in page["messages"]] == [True, True, False]
    assert page["unread"] == 1
    typ, data = c.uid("SEARCH", None, "SEEN")
    assert typ == "OK" and len(data[0].split()) == 2
    status, _, _ = get(srv, "/api/v1/messages", method="PUT",
                       body=json.dumps({"IDs": ids[:1], "Read": False}))
    assert status == 200
    typ, data = c.uid("SEARCH", None, "UNSEEN")
    assert len(data[0].split()) == 2
    # No IDs: every message.
    status, _, _ = get(srv, "/api/v1/messages", method="PUT",
                       body=b'{"Read": true}')
    assert status == 200 and api(srv, "/api/v1/messages")["unread"] == 0
    c.logout()
    for bad in (b"", b"{}", b'{"Read": 1}', b'{"IDs": ["x"], "Read": true}',
                b'{"IDs": [], "Read": "yes"}'):
        status, _, _ = get(srv, "/api/v1/messages", method="PUT", body=bad)
        assert status == 400, bad
    status, _, _ = get(srv, "/api/v1/messages", method="PUT",
                       body=b'{"Read": false}',
                       headers={"Origin": "http://evil.test"})
    assert status == 403
    assert api(srv, "/api/v1/messages")["unread"] == 0


def test_users_mailboxes_and_filters(web):
    for i in range(3):
        deliver(web, "alice@example.com", "a%d" % i)
    deliver(web, "bob@example.com", "b0")
    tree = api(web, "/api/v1/mailboxes")
    users = {u["Name"]: u["Mailboxes"] for u in tree["users"]}
    assert set(users) >= {"alice", "bob"}
    inbox = [b for b in users["alice"] if b["Name"] == "INBOX"][0]
    assert inbox["Total"] == 3 and inbox["Unread"] == 3
    page = api(web, "/api/v1/messages?user=bob")
    assert page["total"] == 1 and page["messages"][0]["Subject"] == "b0"
    page = api(web, "/api/v1/messages?user=alice&mailbox=INBOX&limit=2")
    assert page["total"] == 3 and [m["Subject"] for m in
                                   page["messages"]] == ["a2", "a1"]
    page = api(web, "/api/v1/search?query=a1&user=alice")
    assert [m["Subject"] for m in page["messages"]] == ["a1"]
    assert api(web, "/api/v1/search?query=a1&user=bob")["messages"] == []
    for bad, status in (("user=nobody", 404), ("mailbox=INBOX", 400),
                        ("user=alice&mailbox=Nope", 404),
                        ("user=%s" % ("x" * 300), 400)):
        got, _, _ = get(web, "/api/v1/messages?" + bad)
        assert got == status, bad


def test_deep_pages_equal_the_whole_list(web):
    import smtplib
    with smtplib.LMTP(HOST, web.port) as c:
        for i in range(2500):
            c.sendmail("s@remote.test", ["alice@example.com" if i % 3
                                         else "bob@example.com"],
                       "Subject: n%d\r\n\r\nx\r\n" % i)
    whole = [m["ID"] for m in api(web, "/api/v1/messages?limit=1000&"
                                  "start=0")["messages"]]
    whole += [m["ID"] for m in api(web, "/api/v1/messages?limit=1000&"
                                   "start=1000")["messages"]]
    whole += [m["ID"] for m in api(web, "/api/v1/messages?limit=1000&"
                                   "start=2000")["messages"]]
    assert len(whole) == 2500 and len(set(whole)) == 2500
    for start in (1, 1999, 2000, 2001, 2450, 2499):
        page = api(web, "/api/v1/messages?start=%d&limit=7" % start)
        assert [m["ID"] for m in page["messages"]] == \
            whole[start:start + 7], start
    assert api(web, "/api/v1/messages?start=2500")["messages"] == []
    assert api(web, "/api/v1/messages?start=99999")["messages"] == []
    bob = api(web, "/api/v1/messages?user=bob&start=800&limit=100")
    assert bob["total"] == 834 and len(bob["messages"]) == 34


def test_headers_as_mailpit_gives_them(web):
    """GET /api/v1/message/{ID}/headers: Go's canonical names, sorted,
    each with its values in order, unfolded, not decoded."""
    web.deliver("s@remote.test", ["alice@example.com"], (
        b"Received: from a.test\r\n\tby b.test; Mon, 7 Dec 2026\r\n"
        b"received: from c.test  \r\n"
        b"message-id: <x@y>\r\nFrom: Ann <ann@remote.test>\r\n"
        b"To: alice@example.com\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  folded\r\n"
        b"X-SPAM-score:   \r\nX-Bytes: \xe9t\xc3\xa9\r\n"
        b"not a field\r\n\r\nbody: not a header\r\n"))
    mid = first(web)["ID"]
    h = api(web, "/api/v1/message/%s/headers" % mid)
    assert list(h) == sorted(h)
    assert h["Received"] == ["from a.test by b.test; Mon, 7 Dec 2026",
                             "from c.test"]
    assert h["Message-Id"] == ["<x@y>"]
    assert h["Subject"] == ["=?utf-8?q?caf=C3=A9?= folded"]
    assert h["X-Spam-Score"] == [""]
    assert h["X-Bytes"] == ["\ufffdt\u00e9"]
    assert "Body" not in h and "Not a field" not in h
    # Every list has one or more strings; the server's own Received too.
    assert all(isinstance(v, list) and v and all(isinstance(x, str)
               for x in v) for v in h.values())
    for bad in ("0" * 32 + "-9", "x", "%00"):
        status, _, _ = get(web, "/api/v1/message/%s/headers" % bad)
        assert status == 404, bad
