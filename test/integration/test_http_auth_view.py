"""The message view off loopback: a user who logged in (TLS and basic
auth) reaches another user's message through none of the view's calls
(its text, HTML, attachments, marking it read or unread, deleting it by
ID) and lists neither another user's mailboxes nor, whatever `user=`
asks, their mail; the admin view (the token, or loopback) may pick any
user."""
import http.client
import json

from conftest import DOMAIN, HOST
from test_http_auth import (TOKEN, TIMEOUT, addr, basic, call,  # noqa: F401
                            tls_web)
from test_http_message import multipart

ADMIN = "Bearer " + TOKEN


def deliver_parts(srv):
    """A message with text, HTML and attachments to bob, then to alice;
    their IDs (admin view)."""
    for who in ("bob", "alice"):
        code, _ = srv.deliver("s@remote.test", [who + "@" + DOMAIN],
                              multipart("for-" + who))
        assert code == 250
    _, _, body = call(srv, "/api/v1/messages", ADMIN)
    return {m["Username"]: m["ID"] for m in json.loads(body)["messages"]}


def read_flags(srv):
    """Each user's message's Read, as the admin sees it."""
    _, _, body = call(srv, "/api/v1/messages", ADMIN)
    return {m["Username"]: m["Read"] for m in json.loads(body)["messages"]}


def test_anothers_body_html_and_attachments_are_not_found(tls_web):
    ids = deliver_parts(tls_web)
    alice = basic("alice")
    for path in ("", "/html", "/html?remote=1", "/part/2", "/part/3"):
        status, _, body = call(tls_web, "/api/v1/message/%s%s" % (
            ids["bob"], path), alice)
        assert status == 404, path
        assert b"for-bob" not in body and b"script" not in body, path
        # Her own are there through the same calls.
        status, _, _ = call(tls_web, "/api/v1/message/%s%s" % (
            ids["alice"], path), alice)
        assert status == 200, path
    # So is bob's for the admin view.
    assert call(tls_web, "/api/v1/message/%s/part/2" % ids["bob"],
                ADMIN)[0] == 200


def test_anothers_message_cannot_be_marked_or_deleted(tls_web):
    ids = deliver_parts(tls_web)
    alice = basic("alice")
    assert read_flags(tls_web) == {"alice": False, "bob": False}
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "PUT",
                        json.dumps({"IDs": [ids["bob"]], "Read": True}))
    assert status == 200
    assert read_flags(tls_web) == {"alice": False, "bob": False}
    # "Every message" is every one of hers.
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "PUT",
                        json.dumps({"Read": True}))
    assert status == 200
    assert read_flags(tls_web) == {"alice": True, "bob": False}
    call(tls_web, "/api/v1/messages", ADMIN, "PUT",
         json.dumps({"IDs": [ids["bob"]], "Read": True}))
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "PUT",
                        json.dumps({"IDs": [ids["bob"]], "Read": False}))
    assert status == 200
    assert read_flags(tls_web) == {"alice": True, "bob": True}
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "DELETE",
                        json.dumps({"IDs": [ids["bob"], ids["alice"]]}))
    assert status == 200
    assert read_flags(tls_web) == {"bob": True}


def test_a_user_lists_only_their_own_mailboxes_and_mail(tls_web):
    ids = deliver_parts(tls_web)
    alice = basic("alice")
    status, _, body = call(tls_web, "/api/v1/mailboxes", alice)
    assert status == 200
    assert [u["Name"] for u in json.loads(body)["users"]] == ["alice"]
    _, _, body = call(tls_web, "/api/v1/mailboxes", ADMIN)
    assert {u["Name"] for u in json.loads(body)["users"]} >= {"alice", "bob"}
    # user= is hers whatever it says; a mailbox is looked for among hers.
    for query in ("user=bob", "user=bob&mailbox=INBOX", "user=nobody",
                  "mailbox=INBOX"):
        status, _, body = call(tls_web, "/api/v1/messages?" + query, alice)
        page = json.loads(body)
        assert status == 200, query
        assert page["total"] == 1, query
        assert [m["ID"] for m in page["messages"]] == [ids["alice"]], query
        _, _, body = call(tls_web, "/api/v1/search?query=for&" + query,
                          alice)
        assert [m["ID"] for m in json.loads(body)["messages"]] == [
            ids["alice"]], query


def test_the_admin_view_picks_any_user(tls_web):
    ids = deliver_parts(tls_web)
    _, _, body = call(tls_web, "/api/v1/messages?user=bob", ADMIN)
    assert [m["ID"] for m in json.loads(body)["messages"]] == [ids["bob"]]
    c = http.client.HTTPConnection(HOST, tls_web.http_port, timeout=TIMEOUT)
    try:
        c.request("GET", "/api/v1/messages?user=bob&mailbox=INBOX")
        r = c.getresponse()
        assert [m["ID"] for m in json.loads(r.read())["messages"]] == [
            ids["bob"]]
        c.request("GET", "/api/v1/mailboxes")
        r = c.getresponse()
        assert {u["Name"] for u in json.loads(r.read())["users"]} >= {
            "alice", "bob"}
    finally:
        c.close()
