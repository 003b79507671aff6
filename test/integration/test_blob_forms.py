"""Every form of a message's stored bytes: new messages are rows of
whole 64 KiB chunks and then pieces of 800 bytes, as they came
(config.h BLOB_PIECE_SIZE, schema 24), while
stores written by earlier versions hold 64 KiB chunks, raw or
zlib-deflated.  A message in any of them, or in mixed chunks, must
FETCH byte for byte, `mailrepd check` must verify it and find a damaged
deflated chunk or a missing piece, and a store of schema 23 upgrades
keeping its chunks, storing new messages in pieces and dropping either
form when its message goes."""
import re
import sqlite3  # only to rewrite a store as an earlier version made it
import time
import zlib

from conftest import check_store, run
from test_isolation import UNDO_V26, undo_v24

CHUNK = 64 * 1024   # BLOB_CHUNK_SIZE
PIECE = 800         # BLOB_PIECE_SIZE
PIECE_BITS = 24     # BLOB_PIECE_BITS


def big_message(rng):
    """About 3.5 chunks of compressible text, with a NUL-free body."""
    lines = [bytes(rng.choices(b"abcdefghij klmnop", k=78)) + b"\r\n"
             for _ in range(2900)]
    return b"Subject: forms\r\nFrom: a@b.example\r\n\r\n" + b"".join(lines)


def chunks(db):
    """(blob_id, seq, zlib, data) of every chunk, in order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT blob_id, seq, zlib, data FROM chunk "
                            "ORDER BY blob_id, seq").fetchall()
    conn.close()
    return rows


def pieces(db):
    """(blob_id, number, data) of every piece, in order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, data FROM piece ORDER BY id"
                            ).fetchall()
    conn.close()
    return [(i >> PIECE_BITS, i & ((1 << PIECE_BITS) - 1), d)
            for i, d in rows]


def header_column(db):
    """(type, length) of each blob's header column: the block itself, or
    (schema 24) its length when it is the message's first bytes."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT typeof(header), CASE typeof(header) "
                            "WHEN 'integer' THEN header ELSE "
                            "length(header) END FROM blob ORDER BY id"
                            ).fetchall()
    conn.close()
    return rows


def downgrade_to_v23(db):
    """Turns a store into what schema 23 made: every blob's bytes in
    64 KiB chunks stored as they came, no piece tables."""
    with sqlite3.connect(db) as conn:
        for sql in UNDO_V26:
            conn.execute(sql)
        undo_v24(conn)
        conn.execute("PRAGMA user_version = 23")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def deflate_chunks(db, which):
    """Rewrites the chunks whose seq is in `which` deflated, as
    compress2() stored them before, and folds the WAL into the file."""
    with sqlite3.connect(db) as conn:
        for blob_id, seq, z, data in conn.execute(
                "SELECT blob_id, seq, zlib, data FROM chunk").fetchall():
            if seq in which and not z:
                conn.execute("UPDATE chunk SET zlib = 1, data = ? "
                             "WHERE blob_id = ? AND seq = ?",
                             (zlib.compress(data, 1), blob_id, seq))
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def fetch_all_ways(s, msg):
    """BODY[], TEXT and partials that start and end inside chunks and
    cross their boundaries all give the stored bytes."""
    c = s.imap()
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == msg
    typ, data = c.fetch("1", "(BODY.PEEK[TEXT])")
    assert data[0][1] == msg[msg.index(b"\r\n\r\n") + 4:]
    for start, n in ((0, 10), (CHUNK - 5, 10), (CHUNK, CHUNK),
                     (2 * CHUNK - 1, CHUNK + 2), (len(msg) - 7, 100)):
        typ, data = c.fetch("1", "(BODY.PEEK[]<%d.%d>)" % (start, n))
        assert data[0][1] == msg[start:start + n], (start, n)
    c.logout()


def deliver_and_stop(server, rng, old=False):
    """One big message appended; with `old`, the store made schema 23's
    (its bytes in chunks) and left for this binary to upgrade."""
    s = server(imap=True)
    msg = big_message(rng)
    c = s.imap()
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "OK", data
    c.logout()
    s.stop()
    if old:
        downgrade_to_v23(s.data / "mailrepd.db")
    return s, msg


def test_new_messages_are_pieces_as_they_came(server, rng):
    s, msg = deliver_and_stop(server, rng)
    db = s.data / "mailrepd.db"
    rows = pieces(db)
    assert chunks(db) == []
    whole = len(msg) // CHUNK
    assert whole == 3
    assert [r[1] for r in rows] == list(range(len(rows)))
    assert len(rows) == whole + (len(msg) % CHUNK + PIECE - 1) // PIECE
    assert all(len(r[2]) == CHUNK for r in rows[:whole])
    assert all(len(r[2]) == PIECE for r in rows[whole:-1])
    assert b"".join(r[2] for r in rows) == msg
    head = msg[:msg.index(b"\r\n\r\n") + 4]
    assert header_column(db) == [("integer", len(head))]
    s.start()
    fetch_all_ways(s, msg)
    c = s.imap()
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS "
                        "(FROM)])")
    assert data[0][1] == head and data[1][1] == b"From: a@b.example\r\n\r\n"
    assert c.search(None, "HEADER", "From", "b.example")[1] == [b"1"]
    assert c.search(None, "HEADER", "From", "c.example")[1] == [b""]
    c.logout()
    tail = whole * CHUNK
    for start, n in ((tail - 1, 2), (tail + PIECE - 1, 2),
                     (tail + 3 * PIECE, PIECE), (tail + PIECE, 1)):
        c = s.imap()
        c.select("INBOX")
        typ, data = c.fetch("1", "(BODY.PEEK[]<%d.%d>)" % (start, n))
        assert data[0][1] == msg[start:start + n], (start, n)
        c.logout()


def wait_gone(db, sql, timeout=30):
    """Waits until `sql` counts nothing (the server drops unused blobs
    between its other work); returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(db)
        (n,) = conn.execute(sql).fetchone()
        conn.close()
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def test_schema_23_store_upgrades_keeping_its_chunks(server, rng):
    s, msg = deliver_and_stop(server, rng, old=True)
    db = s.data / "mailrepd.db"
    old_rows = chunks(db)
    assert len(old_rows) == 4
    s.start()
    fetch_all_ways(s, msg)
    c = s.imap()
    new = b"Subject: new\r\n\r\n" + b"x" * 2000 + b"\r\n"
    typ, data = c.append("INBOX", None, None, new)
    assert typ == "OK", data
    c.logout()
    s.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 26
        (first,) = conn.execute("SELECT first_blob FROM piece_form"
                                ).fetchone()
    conn.close()
    assert first > old_rows[0][0]
    assert chunks(db) == old_rows
    assert [r[0] for r in header_column(db)] == ["blob", "integer"]
    assert [r[0] for r in pieces(db)] == [first] * 3
    check_store(s.data)
    s.start()
    c = s.imap()
    c.select("INBOX")
    typ, data = c.fetch("1:2", "(BODY.PEEK[] BODY.PEEK[HEADER])")
    assert data[0][1] == msg and data[1][1] == msg[:msg.index(b"\r\n\r\n") + 4]
    assert data[3][1] == new and data[4][1] == b"Subject: new\r\n\r\n"
    c.store("1:2", "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    c.logout()
    assert wait_gone(db, "SELECT count(*) FROM chunk") == 0
    assert wait_gone(db, "SELECT count(*) FROM piece") == 0
    s.stop()
    check_store(s.data)


def test_deflated_and_mixed_chunks_still_read(server, rng):
    s, msg = deliver_and_stop(server, rng, old=True)
    db = s.data / "mailrepd.db"
    deflate_chunks(db, {1, 3})          # mixed: 0 and 2 stay raw
    assert [r[2] for r in chunks(db)] == [0, 1, 0, 1]
    check_store(s.data)
    s.start()
    fetch_all_ways(s, msg)
    s.stop()
    deflate_chunks(db, {0, 2})          # all deflated, as before
    assert [r[2] for r in chunks(db)] == [1, 1, 1, 1]
    check_store(s.data)
    s.start()
    fetch_all_ways(s, msg)


def test_check_finds_a_missing_piece(server, rng):
    s, msg = deliver_and_stop(server, rng)
    db = s.data / "mailrepd.db"
    blob_id, n, _ = pieces(db)[5]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM piece WHERE id = ?",
                     ((blob_id << PIECE_BITS) | n,))
        conn.commit()
    conn.close()
    p = run("check", "--data", s.data)
    assert p.returncode == 1, p.stdout
    assert re.search(r"(?m)^problem: .*blob [0-9A-Fa-f]+ has \d+ rows",
                     p.stdout), p.stdout


def test_check_finds_a_damaged_deflated_chunk(server, rng):
    s, msg = deliver_and_stop(server, rng, old=True)
    db = s.data / "mailrepd.db"
    deflate_chunks(db, {0, 1, 2, 3})
    blob_id, seq, _, data = chunks(db)[2]
    bad = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x55]) + \
        data[len(data) // 2 + 1:]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE chunk SET data = ? WHERE blob_id = ? AND "
                     "seq = ?", (bad, blob_id, seq))
        conn.commit()
    conn.close()
    p = run("check", "--data", s.data)
    assert p.returncode == 1, p.stdout
    assert re.search(r"(?m)^problem: blob [0-9A-Fa-f]+: ", p.stdout), \
        p.stdout
