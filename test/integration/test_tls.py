"""TLS: IMAPS, STARTTLS on IMAP and LMTP, the generated certificate and
its fingerprint, protocol versions, the plaintext-injection case, a
reload on SIGHUP, certificate errors at start-up, bad records and a
handshake flood.  Clients: Python's ssl/imaplib, openssl s_client,
swaks and mbsync."""
import hashlib
import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOST, PASSWORD, LMTPClient, free_port, run

OPENSSL = shutil.which("openssl")
SWAKS = shutil.which("swaks")
MBSYNC = shutil.which("mbsync")
TIMEOUT = 10


def client_context():
    """A client context that takes any certificate: tests pin it by
    fingerprint instead."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_server(server, args=(), **kw):
    """A server with an IMAP (STARTTLS) and an IMAPS listener; the ports
    are s.imap and s.imaps."""
    imap, imaps = free_port(), free_port()
    s = server(args=["--imap", "%s:%d" % (HOST, imap),
                     "--imaps", "%s:%d" % (HOST, imaps)] + list(args), **kw)
    s.imap, s.imaps = imap, imaps
    return s


def logged_fingerprints(s):
    return re.findall(r"tls\.(?:cert|reload) .*fingerprint=([0-9a-f]{64})",
                      s.log_text())


def peer_fingerprint(sslsock):
    return hashlib.sha256(sslsock.getpeercert(binary_form=True)).hexdigest()


def imaps(s, login=True):
    c = imaplib.IMAP4_SSL(HOST, s.imaps, ssl_context=client_context(),
                          timeout=TIMEOUT)
    if login:
        c.login("alice", PASSWORD)
    return c


class Raw:
    """Line-oriented bytes over a socket that may be upgraded to TLS."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def until(self, prefix):
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(prefix):
                return lines

    def starttls(self):
        assert self.buf == b"", "bytes before the handshake: %r" % self.buf
        self.sock = client_context().wrap_socket(self.sock)

    def close(self):
        self.sock.close()


# --- the certificate -------------------------------------------------------

def test_imaps_serves_the_generated_certificate(server):
    s = tls_server(server)
    data = s.data
    assert (data / "tls-cert.pem").exists()
    assert (data / "tls-key.pem").stat().st_mode & 0o077 == 0
    fps = logged_fingerprints(s)
    assert len(fps) == 1, s.log_text()
    c = imaps(s)
    assert peer_fingerprint(c.sock) == fps[0]
    assert c.sock.version() == "TLSv1.2"
    typ, dat = c.select("INBOX")
    assert typ == "OK"
    c.logout()
    # The certificate survives a restart: same fingerprint, not regenerated.
    s.restart()
    assert logged_fingerprints(s) == [fps[0], fps[0]]
    assert s.log_text().count("tls.generate") == 1
    c = imaps(s)
    assert peer_fingerprint(c.sock) == fps[0]
    c.logout()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_generated_certificate_subject_and_names(server):
    s = tls_server(server)
    out = subprocess.run([OPENSSL, "x509", "-in", str(s.data / "tls-cert.pem"),
                          "-noout", "-text", "-fingerprint", "-sha256"],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "Subject: CN = mx.test" in out
    assert "prime256v1" in out and "ecdsa-with-SHA256" in out
    assert "DNS:mx.test" in out and "IP Address:127.0.0.1" in out
    fp = re.search(r"Fingerprint=([0-9A-F:]+)", out).group(1)
    assert fp.replace(":", "").lower() == logged_fingerprints(s)[0]


# --- protocol versions -----------------------------------------------------

def s_client(port, *args, data=b"", starttls=None):
    cmd = [OPENSSL, "s_client", "-connect", "%s:%d" % (HOST, port)]
    if starttls:
        cmd += ["-starttls", starttls]
    if data:
        cmd.append("-ign_eof")      # read until the server closes
    p = subprocess.run(cmd + list(args), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.stdout.decode("utf-8", "replace")


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_versions_tls12_only(server):
    """TLS 1.0 and 1.1 are refused; 1.2 works.  TLS 1.3 is refused too:
    Debian's mbedTLS 2.28 has no TLS 1.3 server."""
    s = tls_server(server)
    for old in ("-tls1", "-tls1_1"):
        out = s_client(s.imaps, old, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert "Cipher is (NONE)" in out, out
    out = s_client(s.imaps, "-tls1_2", data=b"a LOGOUT\r\n")
    assert "Protocol  : TLSv1.2" in out, out
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out or \
        "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out or \
        "Cipher is ECDHE-ECDSA-AES256-GCM-SHA384" in out, out
    assert "* OK [CAPABILITY" in out and "* BYE" in out, out
    out = s_client(s.imaps, "-tls1_3")
    assert "Cipher is (NONE)" in out, out
    # No weak suites: a CBC or static-RSA only client is refused.
    out = s_client(s.imaps, "-tls1_2", "-cipher", "AES128-SHA")
    assert "Cipher is (NONE)" in out, out
    # STARTTLS with openssl's own IMAP and LMTP dialogue.
    out = s_client(s.imap, data=b"a CAPABILITY\r\na LOGOUT\r\n",
                   starttls="imap")
    assert "Protocol  : TLSv1.2" in out and "a OK CAPABILITY" in out, out
    out = s_client(s.port, data=b"QUIT\r\n", starttls="lmtp")
    assert "Protocol  : TLSv1.2" in out and "221 " in out, out


# --- STARTTLS ----------------------------------------------------------------

def test_imap_starttls_with_imaplib(server):
    s = tls_server(server)
    c = imaplib.IMAP4(HOST, s.imap, timeout=TIMEOUT)
    caps = c.capabilities
    assert "STARTTLS" in caps
    # Loopback may log in in the clear: AUTH=PLAIN, no LOGINDISABLED.
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
    assert "COMPRESS=DEFLATE" not in caps
    c.starttls(ssl_context=client_context())
    assert "STARTTLS" not in c.capabilities
    assert peer_fingerprint(c.sock) == logged_fingerprints(s)[0]
    typ, dat = c.login("alice", PASSWORD)
    assert typ == "OK"
    typ, dat = c.capability()
    assert b"COMPRESS=DEFLATE" in dat[0] and b"STARTTLS" not in dat[0]
    c.select("INBOX")
    c.logout()


def test_imap_starttls_refused_when_not_possible(server):
    s = tls_server(server)
    c = Raw(s.imaps)
    c.starttls()
    c.line()                                        # greeting
    c.send("a STARTTLS\r\n")
    assert c.line().startswith("a BAD"), "STARTTLS inside TLS"
    c.send("b LOGIN alice \"%s\"\r\nc STARTTLS\r\n" % PASSWORD)
    c.until("b OK")
    assert c.line().startswith("c BAD"), "STARTTLS after login"
    c.close()


def test_imap_starttls_injection_is_dropped(server):
    """Bytes pipelined after STARTTLS, before the handshake, are never
    run: not as plaintext, not as if they came over TLS."""
    s = tls_server(server)
    c = Raw(s.imap)
    c.line()
    c.send('a STARTTLS\r\nb LOGIN alice "%s"\r\nc SELECT INBOX\r\n'
           % PASSWORD)
    assert c.line() == "a OK Begin TLS negotiation now"
    c.starttls()
    c.send("d SELECT INBOX\r\n")
    lines = c.until("d ")
    assert lines == ["d BAD Log in first"], lines
    c.send("e LOGOUT\r\n")
    lines = c.until("e ")
    assert not any(l.startswith(("b ", "c ")) for l in lines), lines
    c.close()
    assert "tls.injection" in s.log_text()


def test_lmtp_starttls_injection_is_dropped(server):
    s = tls_server(server)
    c = Raw(s.port)
    c.until("220 ")
    c.send("LHLO client.test\r\n")
    ehlo = c.until("250 ")
    assert "250-STARTTLS" in ehlo, ehlo
    c.send("STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n")
    assert c.line().startswith("220 2.0.0")
    c.starttls()
    # The session started over: MAIL needs a new LHLO; no stray replies.
    c.send("MAIL FROM:<a@example.com>\r\n")
    assert c.line() == "503 5.5.1 Send LHLO first"
    c.send("LHLO client.test\r\n")
    ehlo = c.until("250 ")
    assert "250-STARTTLS" not in ehlo, ehlo
    c.send("STARTTLS\r\n")
    assert c.line().startswith("503 "), "STARTTLS twice"
    c.send("QUIT\r\n")
    assert c.line().startswith("221 ")
    c.close()


@pytest.mark.skipif(SWAKS is None, reason="swaks not installed")
def test_lmtp_starttls_with_swaks(server):
    s = tls_server(server)
    p = subprocess.run([SWAKS, "--protocol", "LMTP", "--server", HOST,
                        "--port", str(s.port), "--tls", "--to",
                        "alice@example.com", "--from", "s@example.com",
                        "--header", "Subject: over tls", "--body", "hello",
                        "--helo", "client.test"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "TLS started" in out, out
    assert re.search(r"<~ *250 2\.0\.0 <alice@example.com> Saved", out), out
    c = imaps(s)
    typ, dat = c.select("INBOX")
    assert dat == [b"1"]
    typ, dat = c.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
    assert b"over tls" in dat[0][1]
    c.logout()


@pytest.mark.skipif(MBSYNC is None, reason="mbsync not installed")
@pytest.mark.parametrize("mode", ["IMAPS", "STARTTLS"])
def test_mbsync_with_pinned_certificate(server, tmp_path, mode):
    """mbsync trusts exactly the generated certificate (CertificateFile),
    over IMAPS and over STARTTLS."""
    s = tls_server(server)
    for n in range(3):
        s.deliver("s@example.com", ["alice@example.com"],
                  b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n))
    mail = tmp_path / "mail"
    mail.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text("""\
IMAPAccount test
Host %s
Port %d
User alice
Pass "%s"
SSLType %s
SSLVersions TLSv1.2
CertificateFile %s
AuthMechs PLAIN

IMAPStore far
Account test

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel inbox
Far :far:INBOX
Near :near:INBOX
Create Near
SyncState *
""" % (HOST, s.imaps if mode == "IMAPS" else s.imap, PASSWORD, mode,
        s.data / "tls-cert.pem", mail, mail))
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.run([MBSYNC, "-c", str(conf), "-a"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    got = sorted(os.listdir(mail / "INBOX" / "new")) + \
        sorted(os.listdir(mail / "INBOX" / "cur"))
    assert len(got) == 3, (got, out)


@pytest.mark.skipif(MBSYNC is None, reason="mbsync not installed")
def test_mbsync_refuses_another_certificate(server, tmp_path):
    """The pin means something: a certificate that is not the server's
    makes mbsync fail."""
    s = tls_server(server)
    other = server(start=False)     # a data dir with its own certificate
    other.start()
    conf = tmp_path / "mbsyncrc"
    (tmp_path / "mail").mkdir()
    conf.write_text("""\
IMAPAccount test
Host %s
Port %d
User alice
Pass "%s"
SSLType IMAPS
CertificateFile %s

IMAPStore far
Account test

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel inbox
Far :far:INBOX
Near :near:INBOX
Create Near
""" % (HOST, s.imaps, PASSWORD, other.data / "tls-cert.pem",
        tmp_path / "mail", tmp_path / "mail"))
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.run([MBSYNC, "-c", str(conf), "-a"], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert p.returncode != 0, p.stdout


# --- configured certificates, errors, reload -------------------------------

def make_cert(path, cn, days=30, key="ec"):
    """A self-signed certificate and key (PEM) with openssl."""
    cert, keyf = path / (cn + ".crt"), path / (cn + ".key")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] \
        if key == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run([OPENSSL, "req", "-x509"] + newkey +
                   ["-nodes", "-keyout", str(keyf), "-out", str(cert),
                    "-days", str(days), "-subj", "/CN=" + cn],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, keyf


def fingerprint_of(cert):
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_configured_rsa_certificate_and_sighup_reload(server, tmp_path):
    cert, key = make_cert(tmp_path, "one", key="rsa")
    s = tls_server(server, args=["--tls-cert", cert, "--tls-key", key])
    assert not (s.data / "tls-cert.pem").exists()
    old = imaps(s)
    assert peer_fingerprint(old.sock) == fingerprint_of(cert)
    # Replace the files and reload: new sessions get the new certificate,
    # the open one goes on.
    cert2, key2 = make_cert(tmp_path, "two")
    shutil.copy(cert2, cert)
    shutil.copy(key2, key)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while len(logged_fingerprints(s)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged_fingerprints(s)[-1] == fingerprint_of(cert2)
    new = imaps(s)
    assert peer_fingerprint(new.sock) == fingerprint_of(cert2)
    assert old.select("INBOX")[0] == "OK"
    assert new.select("INBOX")[0] == "OK"
    old.logout()
    new.logout()
    # A reload that fails keeps the certificate in use.
    cert.write_text("not a certificate\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "error tls.reload" not in s.log_text() and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert "error tls.reload" in s.log_text()
    c = imaps(s)
    assert peer_fingerprint(c.sock) == fingerprint_of(cert2)
    c.logout()


def serve_error(tmp_path, *args):
    data = tmp_path / "d"
    p = run("serve", "--data", data, "--lmtp", "%s:%d" % (HOST, free_port()),
            *args, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    return p.stderr


def test_missing_certificate_is_a_clear_startup_error(tmp_path):
    err = serve_error(tmp_path, "--tls-cert", tmp_path / "nope.crt",
                      "--tls-key", tmp_path / "nope.key")
    assert "setting 'tls-cert'" in err and "nope.crt" in err and \
        "No such file or directory" in err, err
    err = serve_error(tmp_path, "--tls-cert", tmp_path / "nope.crt")
    assert "tls-key" in err, err


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_bad_key_or_garbage_is_a_clear_startup_error(tmp_path):
    cert, key = make_cert(tmp_path, "a")
    cert2, key2 = make_cert(tmp_path, "b")
    err = serve_error(tmp_path, "--tls-cert", cert, "--tls-key", key2)
    assert "setting 'tls-key'" in err and "does not belong" in err, err
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    err = serve_error(tmp_path, "--tls-cert", junk, "--tls-key", key)
    assert "setting 'tls-cert'" in err and "junk.pem" in err, err
    err = serve_error(tmp_path, "--tls-cert", cert, "--tls-key", junk)
    assert "setting 'tls-key'" in err and "not a PEM private key" in err, err
    err = serve_error(tmp_path, "--tls-cert", cert, "--tls-key",
                      tmp_path / "nope.key")
    assert "setting 'tls-key'" in err and "cannot read the key" in err and \
        "nope.key" in err, err


@pytest.mark.parametrize("when,said", [
    ((2020, 1, 1), "expired on 2020-01-31"),
    ((2100, 1, 1), "is not valid before 2100-01-01")],
    ids=["expired", "not-yet-valid"])
def test_certificate_out_of_date_is_a_clear_startup_error(tmp_path, when,
                                                          said):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = datetime.datetime(*when)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(
                days=30)).sign(key, hashes.SHA256()))
    cf, kf = tmp_path / "old.crt", tmp_path / "old.key"
    cf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kf.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    err = serve_error(tmp_path, "--tls-cert", cf, "--tls-key", kf)
    assert "setting 'tls-cert'" in err and said in err, err


# --- bad input and floods --------------------------------------------------

def test_bad_tls_records_never_hurt(server, rng):
    """Garbage, truncated and corrupted records on IMAPS and after
    STARTTLS: the session ends, the server goes on."""
    s = tls_server(server)
    payloads = [b"\x00" * 50, b"GET / HTTP/1.0\r\n\r\n",
                b"\x16\x03\x01\xff\xff" + b"\x01" * 300,
                b"\x16\x03\x03\x00\x05\x01\x00\x00\x01\x00",
                b"\x17\x03\x03\x40\x00" + b"A" * 100,
                b"\x15\x03\x03\x00\x02\x02\x28"]
    payloads += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
                 for _ in range(30)]
    for data in payloads:
        for port, pre in ((s.imaps, b""), (s.imap, b"a STARTTLS\r\n")):
            with socket.create_connection((HOST, port), timeout=5) as c:
                if pre:
                    c.recv(4096)
                    c.sendall(pre)
                try:
                    c.sendall(data)
                    c.shutdown(socket.SHUT_WR)
                    while c.recv(4096):
                        pass
                except OSError:
                    pass
    # A real session whose records are corrupted after the handshake.
    raw = socket.create_connection((HOST, s.imaps), timeout=5)
    c = client_context().wrap_socket(raw)
    c.recv(4096)
    raw2 = socket.socket(fileno=os.dup(c.fileno()))
    raw2.sendall(b"\x17\x03\x03\x00\x20" + b"\x99" * 32)
    raw2.settimeout(5)
    try:
        while raw2.recv(4096):
            pass
    except OSError:
        pass
    raw2.close()
    c.close()
    cl = imaps(s)
    assert cl.select("INBOX")[0] == "OK"
    cl.logout()
    assert s.running()


@pytest.mark.serial
def test_handshake_flood_does_not_block_other_clients(server):
    """Connections that never finish a handshake take no more than
    max-tls-handshakes slots and tls-handshake-timeout seconds; plain
    IMAP and LMTP clients are served meanwhile, and TLS clients at once
    (the oldest half-done handshake gives its slot up)."""
    s = tls_server(server, args=["--max-tls-handshakes", "20",
                                 "--tls-handshake-timeout", "2"])
    flood = []
    for i in range(120):
        c = socket.create_connection((HOST, s.imaps), timeout=5)
        if i % 2:
            c.sendall(b"\x16\x03\x01\x00")      # a record header, stuck
        flood.append(c)
    t0 = time.monotonic()
    c = imaplib.IMAP4(HOST, s.imap, timeout=TIMEOUT)
    c.login("alice", PASSWORD)
    c.select("INBOX")
    c.logout()
    with LMTPClient(s.port) as l:
        l.lhlo()
        l.cmd("QUIT", "221 ")
    assert time.monotonic() - t0 < 2, "plain clients waited for the flood"
    # Past the slots, the oldest half-done handshake gives its slot up:
    # a TLS client gets in at once, not after the flood has timed out...
    deadline = time.monotonic() + 5
    while "tls.evicted" not in s.log_text():
        assert time.monotonic() < deadline, s.log_text()[-2000:]
        time.sleep(0.05)
    cl = imaps(s)
    assert cl.select("INBOX")[0] == "OK"
    cl.logout()
    assert "reason=max-tls-handshakes" not in s.log_text()
    # ...and the handshakes left in the slots time out.
    deadline = time.monotonic() + 10
    while s.log_text().count("tls.timeout") < 19:
        assert time.monotonic() < deadline, s.log_text()[-2000:]
        time.sleep(0.1)
    for f in flood:
        f.close()


def test_many_parallel_handshakes(server):
    """Handshakes interleave in the one event loop: 40 clients at once
    all get through."""
    import concurrent.futures
    s = tls_server(server)

    def one(_):
        c = imaps(s, login=False)
        c.noop()
        c.logout()
        return True

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        assert all(pool.map(one, range(40)))
