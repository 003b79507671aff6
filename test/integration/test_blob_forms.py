"""Both forms of a stored chunk: new chunks are stored as they came
(config.h BLOB_ZLIB_MIN_SAVE_PCT), while stores written by earlier
versions hold zlib-deflated chunks.  A message whose chunks are of
either form, or mixed, must FETCH byte for byte, and `mailrepd check`
must verify it, and find a damaged deflated chunk."""
import re
import sqlite3  # only to rewrite chunks as an earlier version stored them
import zlib

from conftest import check_store, run

CHUNK = 64 * 1024   # BLOB_CHUNK_SIZE


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


def deliver_and_stop(server, rng):
    s = server(imap=True)
    msg = big_message(rng)
    c = s.imap()
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "OK", data
    c.logout()
    s.stop()
    return s, msg


def test_new_chunks_are_stored_as_they_came(server, rng):
    s, msg = deliver_and_stop(server, rng)
    rows = chunks(s.data / "mailrepd.db")
    assert [r[1] for r in rows] == [0, 1, 2, 3]
    assert all(r[2] == 0 for r in rows)
    assert b"".join(r[3] for r in rows) == msg


def test_deflated_and_mixed_chunks_still_read(server, rng):
    s, msg = deliver_and_stop(server, rng)
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


def test_check_finds_a_damaged_deflated_chunk(server, rng):
    s, msg = deliver_and_stop(server, rng)
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
