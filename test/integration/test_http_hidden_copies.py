"""The API's lists while a COPY of many messages runs in steps.

A COPY in steps keeps its copies at and above the target's UIDNEXT until
its last step shows them all: no reader sees them meanwhile.  A deep
page of the API is reached by moving a position over the date index
(store_web_skip); that move once counted the hidden copies too, so a
page asked for while a COPY ran started that many messages too early:
it repeated messages of the page before and the pages after it left
some out.  Here every page asked for while the copies are hidden must
be the slice of the whole list as it was before the COPY, with the
total that list had; afterwards the whole list holds both, once each."""
import time

from conftest import HOST, free_port
from test_http import api
from test_imap_copy_steps import rows
from test_imap_steps import BIG, fill

PAGE = 1000                 # config.h WEB_MAX_LIMIT


def ids(page):
    return [m["ID"] for m in page["messages"]]


def whole_list(srv, query=""):
    """Every ID of the list, newest first, walked a page at a time."""
    got = []
    while True:
        page = ids(api(srv, "/api/v1/messages?start=%d&limit=%d%s" % (
            len(got), PAGE, query)))
        if not page:
            return got
        got += page


def test_deep_pages_skip_no_hidden_copy(server):
    port = free_port()
    srv = server(imap=True, args=["--http", "%s:%d" % (HOST, port)])
    srv.http_port = port
    with srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", BIG)
    before = whole_list(srv)
    assert len(before) == BIG and len(set(before)) == BIG
    alice = whole_list(srv, "&user=alice&mailbox=INBOX")
    assert alice == before
    asks = [(s, "") for s in (1, 999, 5000, 12345, BIG - 7)] + \
        [(s, "&user=alice") for s in (2, 7777, BIG - 3)]
    c = srv.raw()
    c.ok("SELECT INBOX")
    t = c.tag()
    c.send("%s COPY 1:* dst\r\n" % t)
    checked = 0
    end = time.monotonic() + 60
    while rows(srv.data, "dst")[1] == 0:   # the COPY's job not begun
        assert time.monotonic() < end, "no COPY job seen"
        time.sleep(0.01)
    while asks:
        hidden, jobs = rows(srv.data, "dst")
        if jobs == 0:
            break
        if hidden == 0:
            time.sleep(0.01)
            continue
        start, query = asks[0]
        page = api(srv, "/api/v1/messages?start=%d&limit=7%s" % (start,
                                                                query))
        if rows(srv.data, "dst")[1] == 0:
            break               # the copies showed meanwhile: not known
        assert page["total"] == BIG, page["total"]
        assert page["messages_count"] == BIG
        assert ids(page) == before[start:start + 7], (start, query, hidden)
        asks.pop(0)
        checked += 1
    untagged, done = c.read_until(t, timeout=300)
    c.close()
    assert done.startswith("OK"), done
    print("pages asked for while copies were hidden: %d" % checked)
    assert checked > 0, "the COPY ended before any page was asked for"
    after = whole_list(srv)
    assert len(after) == 2 * BIG and len(set(after)) == 2 * BIG
    assert set(before) <= set(after)
    srv.stop()
