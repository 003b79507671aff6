"""A relay (a replica that serves replicas of its own) never renumbers a
copy one of its replicas pushes: only the master numbers, and a relay
that renumbered would move the copy, in its store and on the replica,
to a UID its master never gave.  It logs, keeps its store as it was,
keeps the link, and the replica keeps its copy for the master.
"""
import hashlib

from conftest import DOMAIN, HOST, free_port
from repl_peer import PUSH, PUSH_DATA, ScriptedReplica, messages, push, \
    query, wait_log
from test_hostile_peer import BODY
from test_replication import SECRET, lmtp_one, message, secret  # noqa: F401


def test_a_relay_leaves_a_pushed_copy_to_its_master(server, secret):
    relay_port = free_port()
    relay = server(args=["--repl-listen", "%s:%d" % (HOST, relay_port),
                         "--repl-secret-file", secret])
    assert lmtp_one(relay.port, "alice@" + DOMAIN,
                    message("mine"))[0].startswith("250")
    relay.stop()
    # Now a replica of a master that is not there (yet).
    relay.args += ["--replicate-from", "%s:%d" % (HOST, free_port()),
                   "--name", "relay"]
    relay.start()
    kept = messages(relay.data)
    box, = [b for (b,) in query(
        relay.data, "SELECT m.uniqueid FROM mailbox m JOIN user u ON "
        "u.id = m.user_id WHERE u.name = 'alice' AND m.name = 'INBOX'")]
    r = ScriptedReplica(SECRET, relay_port).reconciling()
    try:
        since = len(relay.log_text())
        # Its copy at uid 1, where the relay holds another message.
        r.tls.send_frame(PUSH, push(box, 1, BODY))
        r.tls.send_frame(PUSH_DATA, BODY)
        text = wait_log(relay, "its master must renumber it", since)
        assert "uid=1 guid=%s" % hashlib.sha256(BODY).hexdigest() in text, \
            text
        # The link stays: a copy it never had is left to the master too.
        since = len(relay.log_text())
        r.tls.send_frame(PUSH, push(box, 9, b""))
        wait_log(relay, "its master must renumber it", since)
        assert "new_uid=" not in relay.log_text()
        assert messages(relay.data) == kept
    finally:
        r.close()
    assert relay.running()
