"""The IMAP session outside a mailbox: greeting, CAPABILITY, LOGIN and
AUTHENTICATE PLAIN, state checks, ID, NAMESPACE, ENABLE, NOOP, LOGOUT."""
import base64
import imaplib

import pytest

from conftest import PASSWORD, user_add

# Before login a server may say less (RFC 3501 7.2.1); Dovecot does.
PRELOGIN_CAPS = {"IMAP4REV1", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID"}
REQUIRED_CAPS = {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+",
                 "NAMESPACE", "ENABLE", "ID", "UNSELECT", "SPECIAL-USE",
                 "CONDSTORE", "CHILDREN", "LIST-EXTENDED"}


def caps_of(line):
    """The capability names of '* CAPABILITY ...' or '* OK [CAPABILITY
    ...] ...', upper-cased."""
    if line.startswith("* OK [CAPABILITY "):
        line = line[len("* OK [CAPABILITY "):].split("]", 1)[0]
    else:
        assert line.startswith("* CAPABILITY "), line
        line = line[len("* CAPABILITY "):]
    return {c.upper() for c in line.split()}


def plain(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password))
                            .encode()).decode()


def test_greeting_and_capability(imap_srv):
    with imap_srv.raw(login=False) as c:
        assert c.greeting.startswith("* OK")
        untagged = c.ok("CAPABILITY")
        assert len(untagged) == 1
        caps = caps_of(untagged[0])
        assert PRELOGIN_CAPS <= caps, PRELOGIN_CAPS - caps
        # A loopback client may log in in the clear.
        assert "LOGINDISABLED" not in caps
        if c.greeting.startswith("* OK [CAPABILITY "):
            assert caps_of(c.greeting) == caps


def test_capability_after_login(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd('LOGIN alice "%s"' % PASSWORD)
        assert done.startswith("OK")
        caps = None
        if done.startswith("OK [CAPABILITY "):
            caps = caps_of("* " + done)
        for l in untagged:
            if l.startswith("* CAPABILITY "):
                caps = caps_of(l)
        untagged = c.ok("CAPABILITY")
        assert len(untagged) == 1
        after = caps_of(untagged[0])
        assert REQUIRED_CAPS <= after, REQUIRED_CAPS - after
        assert not any(c.startswith("AUTH=") for c in after), after
        if caps is not None:
            assert caps == after


def test_imaplib_login_logout(imap_srv):
    c = imap_srv.imap(login=False)
    assert "IMAP4REV1" in c.capabilities
    typ, data = c.login("alice", PASSWORD)
    assert typ == "OK"
    assert c.state == "AUTH"
    typ, data = c.logout()
    assert typ == "BYE"


def test_login_literal_and_quoted_escapes(server):
    s = server(imap=True, start=False)
    user_add(s.data, "carol", 'q"uo\\te')
    s.start()
    with s.raw(login=False) as c:
        # The user name as a synchronizing literal.
        c.send("a1 LOGIN {5}\r\n")
        assert c.line().startswith("+")
        c.send('alice "%s"\r\n' % PASSWORD)
        untagged, done = c.read_until("a1")
        assert done.startswith("OK"), done
    with s.raw(login=False) as c:
        untagged, done = c.cmd('LOGIN carol "q\\"uo\\\\te"')
        assert done.startswith("OK"), done


def test_wrong_password(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd('LOGIN alice "wrong"')
        assert done.startswith("NO [AUTHENTICATIONFAILED]"), done
        # Still not authenticated, and the session goes on.
        untagged, done = c.cmd("SELECT INBOX")
        assert done.startswith("BAD"), done
        c.login("alice")
        c.ok("SELECT INBOX")
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd('LOGIN nobody "%s"' % PASSWORD)
        assert done.startswith("NO [AUTHENTICATIONFAILED]"), done


def test_imaplib_wrong_password(imap_srv):
    c = imap_srv.imap(login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login("alice", "not the password")
    c.login("alice", PASSWORD)
    c.logout()


def test_user_names_case_insensitive_login(imap_srv):
    with imap_srv.raw(login=False) as c:
        c.login("ALICE")
        c.ok("SELECT INBOX")


def test_authenticate_plain_sasl_ir(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("AUTHENTICATE PLAIN " + plain("alice",
                                                             PASSWORD))
        assert done.startswith("OK"), done
        c.ok("SELECT INBOX")


def test_authenticate_plain_continuation(imap_srv):
    with imap_srv.raw(login=False) as c:
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        assert c.line() == "+ "
        c.send(plain("bob", PASSWORD) + "\r\n")
        untagged, done = c.read_until("a1")
        assert done.startswith("OK"), done


def test_authenticate_plain_wrong_password(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("AUTHENTICATE PLAIN " + plain("alice", "x"))
        assert done.startswith("NO [AUTHENTICATIONFAILED]"), done


def test_authenticate_plain_cancel(imap_srv):
    with imap_srv.raw(login=False) as c:
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        assert c.line().startswith("+")
        c.send("*\r\n")
        untagged, done = c.read_until("a1")
        assert done.startswith("BAD"), done  # RFC 3501 6.2.2
        c.login("alice")


def test_authenticate_plain_authzid_must_match(imap_srv):
    with imap_srv.raw(login=False) as c:
        # alice may not act as bob; acting as herself is fine.
        untagged, done = c.cmd("AUTHENTICATE PLAIN "
                               + plain("alice", PASSWORD, "bob"))
        assert done.startswith("NO"), done
        untagged, done = c.cmd("AUTHENTICATE PLAIN "
                               + plain("alice", PASSWORD, "alice"))
        assert done.startswith("OK"), done


def test_unknown_mechanism(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("AUTHENTICATE X-NOSUCH")
        assert done.startswith("NO"), done


def test_imaplib_authenticate_plain(imap_srv):
    c = imap_srv.imap(login=False)
    typ, _ = c.authenticate(
        "PLAIN", lambda _: ("\0alice\0" + PASSWORD).encode())
    assert typ == "OK"
    c.select("INBOX")
    c.logout()


def all_bad(connect, commands):
    """Sends each command on a new session; asserts each gets BAD and
    NOOP still works (Dovecot hangs up after ten bad commands)."""
    wrong = []
    for command in commands:
        with connect() as c:
            untagged, done = c.cmd(command)
            if not done.startswith("BAD"):
                wrong.append("%s -> %s" % (command, done))
            c.ok("NOOP")
    assert not wrong, "\n".join(wrong)


def test_not_authenticated_commands_are_bad(imap_srv):
    all_bad(lambda: imap_srv.raw(login=False), [
        "SELECT INBOX", "EXAMINE INBOX", "CREATE foo", "DELETE foo",
        "RENAME foo bar", "SUBSCRIBE foo", "UNSUBSCRIBE foo",
        'LIST "" "*"', 'LSUB "" "*"', "STATUS INBOX (MESSAGES)",
        "APPEND INBOX {1+}\r\nx", "NAMESPACE", "IDLE", "FETCH 1 FLAGS"])


def test_selected_state_commands_are_bad_when_authenticated(imap_srv):
    all_bad(imap_srv.raw, [
        "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL",
        "COPY 1 Trash", "MOVE 1 Trash", "EXPUNGE", "CLOSE", "UNSELECT",
        "UID FETCH 1 FLAGS", "UID SEARCH ALL", "UID EXPUNGE 1", "CHECK"])


def test_login_twice_is_bad(imap_srv):
    with imap_srv.raw() as c:
        untagged, done = c.cmd('LOGIN alice "%s"' % PASSWORD)
        assert done.startswith("BAD"), done
        untagged, done = c.cmd("AUTHENTICATE PLAIN " + plain("alice",
                                                             PASSWORD))
        assert done.startswith("BAD"), done


def test_unknown_command_and_missing_tag(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("FROBNICATE")
        assert done.startswith("BAD"), done
        c.send("\r\n")
        l = c.line()
        assert l.startswith("* BAD"), l
        c.ok("NOOP")


def test_noop_and_check(imap_srv):
    with imap_srv.raw() as c:
        assert c.ok("NOOP") == []
        c.ok("SELECT INBOX")
        c.ok("CHECK")
        c.ok("NOOP")


def test_logout(imap_srv):
    with imap_srv.raw() as c:
        untagged, done = c.cmd("LOGOUT")
        assert untagged[0].startswith("* BYE"), untagged
        assert done.startswith("OK"), done
        assert c.wait_closed() == []
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("LOGOUT")
        assert untagged[0].startswith("* BYE") and done.startswith("OK")
        assert c.wait_closed() == []


def test_id(imap_srv):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd('ID ("name" "pytest" "version" "1")')
        assert done.startswith("OK"), done
        assert len(untagged) == 1 and untagged[0].startswith("* ID "), untagged
        rest = untagged[0][len("* ID "):]
        assert rest == "NIL" or (rest.startswith("(") and rest.endswith(")"))
        untagged, done = c.cmd("ID NIL")
        assert done.startswith("OK") and untagged[0].startswith("* ID ")


def test_namespace(imap_srv):
    with imap_srv.raw() as c:
        untagged = c.ok("NAMESPACE")
        assert untagged == ['* NAMESPACE (("" "/")) NIL NIL']


def test_enable(imap_srv):
    with imap_srv.raw() as c:
        untagged = c.ok("ENABLE CONDSTORE")
        assert untagged == ["* ENABLED CONDSTORE"]
        # Nothing newly enabled: an empty ENABLED or none (RFC 5161 3.2;
        # Dovecot and Cyrus send none).
        untagged = c.ok("ENABLE X-NO-SUCH-THING")
        assert untagged in ([], ["* ENABLED"])


def test_enable_condstore_then_select_reports_highestmodseq(imap_srv):
    with imap_srv.raw() as c:
        c.ok("ENABLE CONDSTORE")
        untagged = c.ok("SELECT INBOX")
        assert any(l.startswith("* OK [HIGHESTMODSEQ ") for l in untagged)


def test_imaplib_enable(imap_srv):
    c = imap_srv.imap()
    typ, data = c.enable("CONDSTORE")
    assert typ == "OK"
    assert c.response("ENABLED") == ("ENABLED", [b"CONDSTORE"])
    c.logout()


def test_many_sessions_at_once(imap_srv):
    clients = [imap_srv.raw(user=("alice", "bob")[i % 2]) for i in range(20)]
    for c in clients:
        c.ok("SELECT INBOX")
    for c in clients:
        c.ok("LOGOUT")
        c.close()
