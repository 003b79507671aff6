/*
 * store_blob.c — message bytes: blobs by GUID in BLOB_PIECE_SIZE pieces
 * (BLOB_CHUNK_SIZE chunks, some deflated, in stores before schema 24),
 * read back in pieces with bounded memory, verified against their GUID,
 * and the MIME pre-parse stored beside them.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <zlib.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "store_internal.h"

/* The row id of piece `seq` of blob blob_id (config.h BLOB_PIECE_BITS). */
int64_t
piece_rowid(int64_t blob_id, int64_t seq)
{
	return (int64_t)((uint64_t)blob_id << BLOB_PIECE_BITS) | seq;
}

/*
 * Writes the blob's bytes (b->mem, else read from b->fd a buffer at a
 * time) as rows of piece: each whole BLOB_CHUNK_SIZE as one row, what
 * is left after them in rows of BLOB_PIECE_SIZE (config.h says why),
 * from *off on (a row's start, row *seq), and moves both on.  Stops
 * at the end or, from the second row on, once `until` has passed.
 * Memory: one chunk's buffer, owned by the store.  A blob of more rows
 * than BLOB_PIECE_BITS count is refused (max-message-size keeps far
 * below).
 */
enum store_err
blob_write_rows(struct store *st, int64_t blob_id,
    const struct store_blob_in *b, uint64_t *off, int64_t *seq,
    int64_t until)
{
	sqlite3_stmt	*s;
	size_t		 want, got, at, n;
	ssize_t		 r;
	enum store_err	 err;
	const uint8_t	*raw;
	int		 first = 1;

	if (b->size / BLOB_CHUNK_SIZE >= (uint64_t)1 << (BLOB_PIECE_BITS - 1))
		return STORE_INVALID;
	while (*off < b->size && (first || until == 0 ||
	    log_clock_us() < until)) {
		first = 0;
		want = b->size - *off < BLOB_CHUNK_SIZE ? b->size - *off :
		    BLOB_CHUNK_SIZE;
		raw = b->mem != NULL ? b->mem + *off : st->raw;
		for (got = 0; b->mem == NULL && got < want; got += r) {
			r = pread(b->fd, st->raw + got, want - got,
			    *off + got);
			if (r <= 0) {
				log_error("store.blob", "msg=%s",
				    log_quote(r < 0 ? strerror(errno) :
				    "spool file shorter than its size"));
				return STORE_IO;
			}
		}
		for (at = 0; at < want; at += n) {
			n = want == BLOB_CHUNK_SIZE ? want : want - at <
			    BLOB_PIECE_SIZE ? want - at : BLOB_PIECE_SIZE;
			if ((s = stmt(st, S_PIECE_ADD)) == NULL)
				return STORE_IO;
			sqlite3_bind_int64(s, 1, piece_rowid(blob_id, *seq));
			sqlite3_bind_blob(s, 2, raw + at, (int)n,
			    SQLITE_STATIC);
			if ((err = step_done(st, s, "piece add")) != STORE_OK)
				return err;
			++*seq;
		}
		*off += want;
	}
	return STORE_OK;
}

/*
 * Where byte `off` of the reader's blob is: its row's number (*seq) and
 * its place in that row (returned).  Chunks: every row BLOB_CHUNK_SIZE.
 * Pieces: whole chunks first, then rows of BLOB_PIECE_SIZE.
 */
static size_t
blob_place(const struct store_blob_reader *r, uint64_t off, int64_t *seq)
{
	uint64_t	 whole = r->size - r->size % BLOB_CHUNK_SIZE;

	if (!r->pieces || off < whole) {
		*seq = (int64_t)(off / BLOB_CHUNK_SIZE);
		return off % BLOB_CHUNK_SIZE;
	}
	*seq = (int64_t)(whole / BLOB_CHUNK_SIZE + (off - whole) /
	    BLOB_PIECE_SIZE);
	return (off - whole) % BLOB_PIECE_SIZE;
}

/*
 * Reads where blobs keep their bytes (schema_v24): blobs from
 * piece_form.first_blob on in table piece, older ones in chunk.
 */
enum store_err
blob_form_load(struct store *st)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(st->db, "SELECT first_blob FROM "
	    "piece_form", -1, &s, NULL)) != SQLITE_OK)
		return db_error(st, rc, "piece form");
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		st->piece_first = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? STORE_OK : db_error(st, rc, "piece form");
}

enum store_err
blob_find(struct store *st, const uint8_t *guid, int64_t *blob_id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_BLOB_FIND)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, guid, GUID_LEN, SQLITE_STATIC);
	if ((err = step_row(st, s, "blob find")) != STORE_OK)
		return err;
	*blob_id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
}

/*
 * Whether the message's top-level header block (m->header) is the first
 * m->header_len bytes of the blob, as it is but when the parser cut it
 * (MIME_MAX_HEADER): then blob.header keeps only its length and the
 * bytes are read from the pieces (meta_sections()).
 */
static int
header_is_prefix(struct store *st, const struct store_blob_in *b)
{
	const struct mime_result *m = b->mime;
	size_t		 n = m->header_len;

	if (m->header == NULL || n > b->size || n > BLOB_CHUNK_SIZE)
		return 0;
	if (b->mem != NULL)
		return memcmp(b->mem, m->header, n) == 0;
	return pread(b->fd, st->raw, n, 0) == (ssize_t)n &&
	    memcmp(st->raw, m->header, n) == 0;
}

/*
 * Finds the blob by GUID or stores it; *blob_id names it either way.
 * One written in steps (b->stage, every row written: store_blob_stage())
 * gets its blob row at the stage's id; the pieces are there.  On a full
 * disk (store_room.c) a new blob is refused.
 */
enum store_err
blob_put(struct store *st, const struct store_blob_in *b, int64_t *blob_id)
{
	const struct mime_result *m = b->mime;
	sqlite3_stmt	*s;
	char		*parts = NULL;
	size_t		 partslen = 0;
	enum store_err	 err;
	uint64_t	 off = 0;
	int64_t		 seq = 0;

	if ((err = blob_find(st, b->guid, blob_id)) != STORE_NOTFOUND)
		return err;	/* stored already, or a failure */
	assert(b->stage == NULL || b->stage->off == b->size);
	if (b->stage == NULL && !room_for_blob(st, b->size))
		return STORE_FULL;	/* the room left is for deletes */
	if (mime_parts_encode(m->parts, m->nparts, &parts, &partslen) < 0)
		return STORE_IO;
	if ((s = stmt(st, S_BLOB_ADD)) == NULL) {
		free(parts);
		return STORE_IO;
	}
	sqlite3_bind_blob(s, 1, b->guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)b->size);
	bind_text_or_null(s, 3, m->envelope);
	bind_text_or_null(s, 4, m->bodystructure);
	bind_text_or_null(s, 5, m->body);
	if (header_is_prefix(st, b))
		sqlite3_bind_int64(s, 6, (sqlite3_int64)m->header_len);
	else
		sqlite3_bind_blob(s, 6, m->header ? m->header : "",
		    (int)m->header_len, SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, parts, (int)partslen, SQLITE_STATIC);
	bind_text_or_null(s, 8, m->subject);
	bind_text_or_null(s, 9, m->from);
	bind_text_or_null(s, 10, m->to);
	bind_text_or_null(s, 11, m->message_id);
	if (m->date != (time_t)-1)
		sqlite3_bind_int64(s, 12, m->date);
	if (b->stage != NULL)
		sqlite3_bind_int64(s, 13, b->stage->blob_id);
	err = step_done(st, s, "blob add");
	free(parts);
	if (err != STORE_OK)
		return err;
	*blob_id = sqlite3_last_insert_rowid(st->db);
	if (b->stage != NULL)
		return stage_adopt(st, b->stage);
	return blob_write_rows(st, *blob_id, b, &off, &seq, 0);
}

/* A reader of blob blob_id, of size bytes, in the store's list. */
static enum store_err
reader_new(struct store *st, int64_t blob_id, uint64_t size,
    struct store_blob_reader **out)
{
	struct store_blob_reader	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return STORE_IO;
	r->st = st;
	r->blob_id = blob_id;
	r->pieces = blob_id >= st->piece_first;
	r->size = size;
	r->seq = r->inflated_seq = -1;
	r->next = st->readers;
	st->readers = r;
	*out = r;
	return STORE_OK;
}

enum store_err
store_blob_open(struct store *st, const uint8_t *guid,
    struct store_blob_reader **out, uint64_t *size)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 blob_id;
	uint64_t	 n;

	*out = NULL;
	if ((s = stmt(st, S_BLOB_FIND)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, guid, GUID_LEN, SQLITE_STATIC);
	if ((err = step_row(st, s, "blob open")) != STORE_OK)
		return err;
	blob_id = sqlite3_column_int64(s, 0);
	n = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	if ((err = reader_new(st, blob_id, n, out)) == STORE_OK &&
	    size != NULL)
		*size = n;
	return err;
}

enum store_err
store_blob_open_id(struct store *st, int64_t blob_id, uint64_t size,
    struct store_blob_reader **out)
{
	*out = NULL;
	return reader_new(st, blob_id, size, out);
}

/*
 * Points the reader's blob handle at its row r->rowid, in piece or
 * chunk.  The handle moves from row to row; it is closed at the end of
 * each read outside a read snapshot, and by store_read_end().
 */
static int
chunk_open(struct store_blob_reader *r)
{
	struct store	*st = r->st;
	int		 rc = SQLITE_OK;

	if (r->h == NULL)
		rc = sqlite3_blob_open(st->db, "main", r->pieces ? "piece" :
		    "chunk", "data", r->rowid, 0, &r->h);
	else if (r->h_rowid != r->rowid)
		rc = sqlite3_blob_reopen(r->h, r->rowid);
	if (rc != SQLITE_OK) {
		log_error("store.blob", "msg=%s seq=%lld",
		    log_quote(sqlite3_errmsg(st->db)), (long long)r->seq);
		sqlite3_blob_close(r->h);
		r->h = NULL;
		return -1;
	}
	r->h_rowid = r->rowid;
	return 0;
}

/*
 * Finds piece or chunk `seq` of the reader's blob: its row, length and
 * form.  A piece's row id is known (piece_rowid()); a chunk's is looked
 * up by blob id and sequence.
 */
static int
chunk_locate(struct store_blob_reader *r, int64_t seq)
{
	struct store	*st = r->st;
	sqlite3_stmt	*s;
	int64_t		 len;

	r->seq = seq;
	if (r->pieces) {
		r->rowid = piece_rowid(r->blob_id, seq);
		r->zlib = 0;
		if (chunk_open(r) < 0) {
			r->seq = -1;
			return -1;
		}
		len = sqlite3_blob_bytes(r->h);
	} else {
		if ((s = stmt(st, S_CHUNK_GET)) == NULL) {
			r->seq = -1;
			return -1;
		}
		sqlite3_bind_int64(s, 1, r->blob_id);
		sqlite3_bind_int64(s, 2, seq);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			log_error("store.blob", "msg=\"chunk missing\" "
			    "seq=%lld", (long long)seq);
			r->seq = -1;
			return -1;
		}
		r->rowid = sqlite3_column_int64(s, 0);
		r->zlib = sqlite3_column_int(s, 1) != 0;
		len = sqlite3_column_int64(s, 2);
		sqlite3_reset(s);
	}
	if (len < 0 || (uint64_t)len > (r->zlib ? st->packed_cap :
	    BLOB_CHUNK_SIZE)) {
		log_error("store.blob", "msg=\"chunk corrupt\" seq=%lld",
		    (long long)seq);
		r->seq = -1;
		return -1;
	}
	r->len = (size_t)len;
	return 0;
}

/*
 * Copies [in, in + n) of the located row's stored bytes to buf, through
 * the blob handle, so that SQLite reads the pages straight into buf.
 */
static int
chunk_copy(struct store_blob_reader *r, void *buf, size_t n, size_t in)
{
	int	 rc;

	if (chunk_open(r) < 0)
		return -1;
	if ((rc = sqlite3_blob_read(r->h, buf, (int)n, (int)in)) !=
	    SQLITE_OK) {
		log_error("store.blob", "msg=%s seq=%lld",
		    log_quote(sqlite3_errstr(rc)), (long long)r->seq);
		sqlite3_blob_close(r->h);
		r->h = NULL;
		return -1;
	}
	return 0;
}

/*
 * Closes the reader's blob handle: no read lock outlives its use.  The
 * chunk is located again (by blob id, never reused, and sequence) at the
 * next read: outside a snapshot its row may be gone and its rowid given
 * to another blob's chunk.
 */
void
chunk_release(struct store_blob_reader *r)
{
	if (r->h != NULL)
		sqlite3_blob_close(r->h);
	r->h = NULL;
	r->seq = -1;
}

/*
 * Inflates the located chunk, which older versions stored as a zlib
 * stream (compress2()), into r->inflated.
 */
static int
chunk_inflate(struct store_blob_reader *r)
{
	struct store	*st = r->st;
	uLongf		 len = BLOB_CHUNK_SIZE;

	if (r->inflated_seq == r->seq)
		return 0;
	if (r->inflated == NULL &&
	    (r->inflated = malloc(BLOB_CHUNK_SIZE)) == NULL)
		return -1;
	if (chunk_copy(r, st->packed, r->len, 0) < 0)
		return -1;
	if (uncompress(r->inflated, &len, st->packed, r->len) != Z_OK) {
		log_error("store.blob", "msg=\"chunk corrupt\" seq=%lld",
		    (long long)r->seq);
		return -1;
	}
	r->inflated_seq = r->seq;
	r->inflated_len = len;
	return 0;
}

/*
 * Copies up to `want` bytes from `in` into the current chunk to buf;
 * returns how many (0 when `in` is past its end), or -1.
 */
static ssize_t
chunk_read(struct store_blob_reader *r, size_t in, void *buf, size_t want)
{
	size_t	 len;

	if (r->zlib && chunk_inflate(r) < 0)
		return -1;
	len = r->zlib ? r->inflated_len : r->len;
	if (in >= len)
		return 0;
	if (want > len - in)
		want = len - in;
	if (r->zlib)
		memcpy(buf, r->inflated + in, want);
	else if (chunk_copy(r, buf, want, in) < 0)
		return -1;
	return (ssize_t)want;
}

ssize_t
store_blob_read(struct store_blob_reader *r, uint64_t off, void *buf,
    size_t len)
{
	size_t	 done = 0, in;
	ssize_t	 n = 0;
	int64_t	 seq;

	while (done < len && off < r->size) {
		in = blob_place(r, off, &seq);
		if (seq != r->seq && chunk_locate(r, seq) < 0) {
			n = -1;
			break;
		}
		n = chunk_read(r, in, (char *)buf + done, len - done);
		if (n <= 0) {
			n = -1;		/* a chunk shorter than its place */
			break;
		}
		done += (size_t)n;
		off += (uint64_t)n;
	}
	if (!r->st->in_read)
		chunk_release(r);
	return n < 0 ? -1 : (ssize_t)done;
}

void
store_blob_close(struct store_blob_reader *r)
{
	struct store_blob_reader	**rp;

	if (r == NULL)
		return;
	for (rp = &r->st->readers; *rp != r; rp = &(*rp)->next)
		assert(*rp != NULL);
	*rp = r->next;
	r->st->gc_more = 1;	/* a blob it kept may go now */
	chunk_release(r);
	free(r->inflated);
	free(r);
}

/* Re-hashes one blob; returns 1 when it matches its GUID and size. */
int
blob_verify(struct store *st, const uint8_t *guid, char *why, size_t whylen)
{
	struct store_blob_reader	*r;
	struct sha256			*h;
	uint8_t				 digest[GUID_LEN];
	uint64_t			 size, off = 0;
	ssize_t				 n;

	if (store_blob_open(st, guid, &r, &size) != STORE_OK) {
		snprintf(why, whylen, "cannot open");
		return 0;
	}
	if ((h = crypto_sha256_new()) == NULL) {
		store_blob_close(r);
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	while ((n = store_blob_read(r, off, st->raw, BLOB_CHUNK_SIZE)) > 0)
		crypto_sha256_update(h, st->raw, n), off += n;
	crypto_sha256_finish(h, digest);
	store_blob_close(r);
	if (n < 0 || off != size) {
		snprintf(why, whylen, "unreadable at byte %llu of %llu",
		    (unsigned long long)off, (unsigned long long)size);
		return 0;
	}
	if (memcmp(digest, guid, GUID_LEN) != 0) {
		snprintf(why, whylen, "content does not match its GUID");
		return 0;
	}
	return 1;
}

/* Duplicates column i as a NUL-terminated string, or NULL when NULL. */
static char *
column_dup(sqlite3_stmt *s, int i, size_t *len)
{
	const void	*p = sqlite3_column_blob(s, i);
	int		 n = sqlite3_column_bytes(s, i);
	char		*out;

	if (p == NULL && sqlite3_column_type(s, i) == SQLITE_NULL)
		return NULL;
	if ((out = malloc((size_t)n + 1)) == NULL)
		return NULL;
	if (n > 0 && p != NULL)
		memcpy(out, p, n);
	out[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return out;
}

/* The columns of each STORE_META_* group, in the order read below. */
static const char *const meta_columns[] = {
	"b.envelope, b.bodystructure, b.body",
	"b.header, b.parts, b.id, b.size",
	"b.sent_date, b.subject, b.from_addr, b.to_addr, b.message_id, b.size",
};

/*
 * The statement that loads the groups in `what` (1 to STORE_META_ALL)
 * of a blob by GUID, or with `row` of a message by (mailbox, uid) with
 * its row's MSG_ROW_COLUMNS first; prepared on first use: one per
 * combination, so that a step reads no column it does not need.
 */
static sqlite3_stmt *
meta_stmt(struct store *st, unsigned what, int row)
{
	char		 sql[640];
	size_t		 i, n;
	sqlite3_stmt	**sp = row ? &st->row_meta_stmts[what - 1] :
			    &st->meta_stmts[what - 1];

	if (*sp != NULL) {
		sqlite3_reset(*sp);
		return *sp;
	}
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT %s",
	    row ? MSG_ROW_COLUMNS : "");
	for (i = 0; i < nitems(meta_columns); i++)
		if (what & (1u << i))
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s",
			    n > 7 ? ", " : "", meta_columns[i]);
	snprintf(sql + n, sizeof(sql) - n, "%s", row ? MSG_ROW_FROM :
	    " FROM blob b WHERE b.guid = ?1");
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, sp,
	    NULL) != SQLITE_OK) {
		log_error("store.prepare", "sql=%s msg=%s", log_quote(sql),
		    log_quote(sqlite3_errmsg(st->db)));
		return NULL;
	}
	return *sp;
}

/*
 * Reads the header block that blob.header (column i of s) names by
 * its length (an integer: header_is_prefix()), the first bytes of the
 * blob in columns i + 2 (id) and i + 3 (size), into out.  A reader of its own, outside st->readers: nothing may drop
 * the blob while a statement reads its row.
 */
static int
meta_header_read(struct store *st, sqlite3_stmt *s, int i,
    struct store_meta *out)
{
	struct store_blob_reader r = { .st = st, .seq = -1,
	    .inflated_seq = -1 };
	int64_t		 len = sqlite3_column_int64(s, i);
	ssize_t		 n = 0;

	r.blob_id = sqlite3_column_int64(s, i + 2);
	r.size = (uint64_t)sqlite3_column_int64(s, i + 3);
	r.pieces = r.blob_id >= st->piece_first;
	if (len < 0 || len > BLOB_CHUNK_SIZE || (uint64_t)len > r.size ||
	    (out->header = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (len > 0)
		n = store_blob_read(&r, 0, out->header, (size_t)len);
	chunk_release(&r);
	free(r.inflated);
	if (n != len)
		return -1;
	out->header[len] = '\0';
	out->header_len = (size_t)len;
	return 0;
}

/*
 * Reads the STORE_META_SECTIONS group from columns i to i + 3: the
 * header block (or its length: meta_header_read()), the parts table,
 * the blob's id and size.
 */
static enum store_err
meta_sections(struct store *st, sqlite3_stmt *s, int i,
    struct store_meta *out)
{
	size_t	 plen = 0;
	char	*parts;
	int	 bad;

	if (sqlite3_column_type(s, i) == SQLITE_INTEGER) {
		if (meta_header_read(st, s, i, out) < 0) {
			log_error("store.meta", "msg=\"unreadable header\"");
			return STORE_IO;
		}
	} else
		out->header = column_dup(s, i, &out->header_len);
	parts = column_dup(s, i + 1, &plen);
	bad = parts == NULL || mime_parts_decode(parts, plen, &out->parts,
	    &out->nparts) < 0;
	free(parts);
	if (bad) {
		log_error("store.meta", "msg=\"unreadable parts table\"");
		return STORE_IO;
	}
	return STORE_OK;
}

/*
 * Reads the groups in `what` from the row of s, from column i on, into
 * out (cleared first); on failure out holds nothing.
 */
static enum store_err
meta_read(struct store *st, sqlite3_stmt *s, int i, unsigned what,
    struct store_meta *out)
{
	enum store_err	 err = STORE_OK;

	memset(out, 0, sizeof(*out));
	out->sent_date = -1;
	if (what & STORE_META_STRUCT) {
		out->envelope = column_dup(s, i++, NULL);
		out->bodystructure = column_dup(s, i++, NULL);
		out->body = column_dup(s, i++, NULL);
	}
	if (what & STORE_META_SECTIONS) {
		err = meta_sections(st, s, i, out);
		i += 4;
	}
	if (what & STORE_META_SEARCH) {
		if (sqlite3_column_type(s, i) != SQLITE_NULL)
			out->sent_date = (time_t)sqlite3_column_int64(s, i);
		out->subject = column_dup(s, i + 1, NULL);
		out->from = column_dup(s, i + 2, NULL);
		out->to = column_dup(s, i + 3, NULL);
		out->message_id = column_dup(s, i + 4, NULL);
		out->size = (uint64_t)sqlite3_column_int64(s, i + 5);
	}
	if (err != STORE_OK)
		store_meta_free(out);
	return err;
}

/* Clears out and gives meta_stmt(); NULL when it cannot be prepared. */
static sqlite3_stmt *
meta_begin(struct store *st, unsigned what, int row, struct store_meta *out)
{
	memset(out, 0, sizeof(*out));
	out->sent_date = -1;
	assert(what != 0 && what <= STORE_META_ALL);
	return meta_stmt(st, what, row);
}

enum store_err
store_message_meta(struct store *st, const uint8_t *guid, unsigned what,
    struct store_meta *out)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = meta_begin(st, what, 0, out)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, guid, GUID_LEN, SQLITE_STATIC);
	if ((err = step_row(st, s, "meta")) != STORE_OK)
		return err;
	err = meta_read(st, s, 0, what, out);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_message_get_meta(struct store *st, int64_t mailbox_id, uint32_t uid,
    unsigned what, struct store_message *row, struct store_meta *meta,
    int64_t *blob_id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = meta_begin(st, what, 1, meta)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, uid);
	if ((err = step_row(st, s, "message meta")) != STORE_OK)
		return err;
	message_columns(st, s, row, blob_id);
	err = meta_read(st, s, MSG_ROW_NCOLUMNS, what, meta);
	sqlite3_reset(s);
	return err;
}

void
store_meta_free(struct store_meta *m)
{
	free(m->envelope);
	free(m->bodystructure);
	free(m->body);
	free(m->header);
	free(m->parts);
	free(m->subject);
	free(m->from);
	free(m->to);
	free(m->message_id);
	memset(m, 0, sizeof(*m));
}

/* Whether a reader (a FETCH streaming to a client) has blob_id open. */
static int
blob_is_read(const struct store *st, int64_t blob_id)
{
	const struct store_blob_reader	*r;

	for (r = st->readers; r != NULL; r = r->next)
		if (r->blob_id == blob_id)
			return 1;
	return 0;
}

/*
 * Whether a message, the quarantine or a held record uses blob_id, and
 * the blob's size (0 when it has no row).
 */
static enum store_err
blob_used(struct store *st, int64_t blob_id, int *used, uint64_t *size)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_BLOB_USED)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	if ((err = step_row(st, s, "blob used")) == STORE_OK) {
		*used = sqlite3_column_int(s, 0);
		*size = (uint64_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return err;
}

/*
 * Whether SEARCH's index holds rows of blob_id that must go before it
 * does: a contentless FTS5 table deletes a row only given its text
 * again, which imap_search_index.c reads from the blob itself
 * (store_fts_forgettable()).  A server that keeps no index, or a full
 * disk (where deletes must free room at once), leaves them (`mailrepd
 * index rebuild` drops them).
 */
static enum store_err
blob_awaits_index(struct store *st, int64_t blob_id, int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*yes = 0;
	if (st->fts_off || store_room_tight(st))
		return STORE_OK;
	if ((s = stmt(st, S_FTS_HOLDS)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	if ((err = step_row(st, s, "blob awaits index")) == STORE_OK)
		*yes = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	return err;
}

/*
 * Whether blob_id, used by nothing any more, must wait in blob_unused
 * (*yes): a reader has it open, or the index still holds its rows.
 */
static enum store_err
blob_must_wait(struct store *st, int64_t blob_id, int *yes)
{
	*yes = blob_is_read(st, blob_id);
	return *yes ? STORE_OK : blob_awaits_index(st, blob_id, yes);
}

/*
 * Drops blob_id when no message refers to it any more: the one blob an
 * expunge may have freed, so that expunging N messages costs N look-ups
 * rather than N scans of every blob.  A blob that a reader has open (a
 * FETCH streaming it to another client), or whose rows the full-text
 * index still holds, waits in blob_unused for store_gc_step() once the
 * reader is done or the index has forgotten it, so that the reader
 * never loses its chunks and the index never keeps rows of a blob gone.
 * The pieces of a blob of BLOB_STEP_MIN bytes or more go later, a few
 * a step (loose_queue()): deleted at once, 50 MiB held the loop 320 ms.
 */
enum store_err
blob_drop_unused(struct store *st, int64_t blob_id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	uint64_t	 size = 0;
	int		 used = 1, wait;

	if ((err = blob_used(st, blob_id, &used, &size)) != STORE_OK ||
	    used || (err = blob_must_wait(st, blob_id, &wait)) != STORE_OK)
		return err;
	if (wait) {
		if ((s = stmt(st, S_GC_QUEUE_ONE)) == NULL)
			return STORE_IO;
		sqlite3_bind_int64(s, 1, blob_id);
		st->gc_more = 1;
		return step_done(st, s, "blob queue");
	}
	if (blob_id >= st->piece_first && size >= BLOB_STEP_MIN)
		err = loose_queue(st, blob_id);
	else if ((s = stmt(st, blob_id >= st->piece_first ?
	    S_BLOB_UNUSED_PIECES : S_BLOB_UNUSED_CHUNKS)) == NULL)
		return STORE_IO;
	else {
		sqlite3_bind_int64(s, 1, blob_id);
		sqlite3_bind_int64(s, 2, piece_rowid(blob_id, 0));
		sqlite3_bind_int64(s, 3, piece_rowid(blob_id,
		    ((int64_t)1 << BLOB_PIECE_BITS) - 1));
		err = step_done(st, s, "chunk drop");
	}
	if (err != STORE_OK)
		return err;
	if ((s = stmt(st, S_BLOB_UNUSED)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	if ((err = step_done(st, s, "blob drop")) != STORE_OK)
		return err;
	if ((s = stmt(st, S_FTS_UNSKIP)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	return step_done(st, s, "fts unskip");
}

enum store_err
blob_gc_queue(struct store *st, int64_t mailbox_id)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_GC_QUEUE_MAILBOX)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	st->gc_more = 1;
	return step_done(st, s, "blob queue");
}

/* Reads up to STORE_GC_BATCH queued blob ids after st->gc_after. */
static enum store_err
gc_next(struct store *st, int64_t *ids, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, S_GC_NEXT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, st->gc_after);
	sqlite3_bind_int(s, 2, STORE_GC_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < STORE_GC_BATCH)
		ids[(*n)++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "blob queue");
}

/*
 * Drops queued blobs in id order from st->gc_after (0: a pass begins)
 * until the batch or STORE_GC_STEP_USEC is used up, each through
 * blob_drop_unused() (a blob that a message, the quarantine or a held
 * record uses again stays); one a reader has open stays queued.  A pass
 * that reaches the end starts again only if something was queued, or a
 * reader closed (st->gc_more), while it ran.
 */
static int
unused_step(struct store *st)
{
	int64_t		 ids[STORE_GC_BATCH], start;
	sqlite3_stmt	*s;
	enum store_err	 err = STORE_OK;
	size_t		 n, i;
	int		 wait;

	if (st->gc_after == 0) {
		if (!st->gc_more)
			return 0;
		st->gc_more = 0;
	}
	if (gc_next(st, ids, &n) != STORE_OK || n == 0 ||
	    op_begin(st) != STORE_OK) {
		st->gc_after = 0;
		return st->gc_more;
	}
	start = log_clock_us();
	for (i = 0; i < n && err == STORE_OK &&
	    log_clock_us() - start < STORE_GC_STEP_USEC; i++) {
		st->gc_after = ids[i];
		if ((err = blob_must_wait(st, ids[i], &wait)) != STORE_OK ||
		    wait)
			continue;
		err = blob_drop_unused(st, ids[i]);
		if ((s = stmt_next(st, S_GC_DONE, &err)) != NULL) {
			sqlite3_bind_int64(s, 1, ids[i]);
			err = step_done(st, s, "blob dequeue");
		}
	}
	if (op_end(st, err) != STORE_OK) {
		st->gc_after = 0;	/* again once something is queued */
		return 0;
	}
	return 1;
}

/*
 * A step of each collection: blobs nothing uses, then the pieces of big
 * ones (store_stage.c).  Returns 1 while either has more to do.
 */
int
store_gc_step(struct store *st)
{
	return unused_step(st) | loose_step(st);
}
