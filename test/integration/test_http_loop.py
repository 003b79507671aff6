"""A long API reply leaves the event loop free between its steps.

A search reads every message's fields and sends only the matches, and a
deep page first moves its position over the index: neither fills the
output, so their steps once ran back to back in one loop iteration (a
search of 10,000 held it for 150 ms).  Now a reply in steps runs for a
bounded time an iteration.  The server logs its slowest iteration
(loop.slow, with the CPU it took, when it took 100 ms or more of wall
time); no iteration may have taken more than a step's CPU while these
replies ran.  CPU, not wall time: a busy machine stretches wall time."""
import re
import time

from conftest import HOST, free_port
from test_http import api
from test_imap_steps import BIG, fill

STEP_CPU_MS = 150       # HTTP_STEP_USEC (5 ms) and one batch, under ASan


def slow_cpu(srv):
    """CPU milliseconds of every loop.slow iteration logged so far."""
    return [int(m) for m in re.findall(r"loop\.slow.*cpu_ms=(\d+)",
                                       srv.log_text())]


def test_search_and_deep_page_do_not_hold_the_loop(server):
    port = free_port()
    web = server(imap=True, args=["--http", "%s:%d" % (HOST, port)])
    web.http_port = port
    with web.raw() as c:
        fill(c, "INBOX", BIG)
    time.sleep(1.5)             # the filling's slow iterations logged
    before = len(slow_cpu(web))
    for _ in range(3):
        t0 = time.monotonic()
        got = api(web, "/api/v1/search?query=nowhere-to-be-found")
        assert got["messages"] == [] and got["messages_count"] == 0
        got = api(web, "/api/v1/messages?start=%d&limit=1" % (BIG - 1))
        assert len(got["messages"]) == 1
        print("search and deep page: %.0f ms" % (
            (time.monotonic() - t0) * 1000))
    time.sleep(1.5)             # loop.slow is logged once a second
    held = slow_cpu(web)[before:]
    print("loop.slow before: %s, since: %s" % (slow_cpu(web)[:before], held))
    assert all(ms < STEP_CPU_MS for ms in held), held
