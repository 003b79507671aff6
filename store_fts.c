/*
 * store_fts.c — SEARCH's full-text index in SQLite FTS5 (schema_v19):
 * the rows imap_search_index.c writes and the blobs a string may be in.
 *
 * The table is contentless and keeps no positions (detail=none): a
 * trigram index of case-folded text costs about what the message costs
 * compressed, where positions would cost six times that.  Without
 * positions FTS5 cannot match a phrase, so a string is asked as the AND
 * of trigrams of it (match_query()): every blob that holds the string
 * is named, and some that hold those trigrams elsewhere too; the caller
 * reads them all.
 *
 * Deleting a row of a contentless table needs its exact text again,
 * which SQLite 3.40 has no other way around: a blob that no message
 * uses any more waits in blob_unused (store_blob.c) until the server's
 * index step has read its text once more and deleted its rows
 * (store_fts_forgettable(), store_fts_forget()), and marked it as
 * having none (in fts_skipped, which the blob takes with it).  A
 * server that keeps no index, or a full disk, lets blobs go with their
 * rows: a blob's id is never given again (AUTOINCREMENT), so such rows
 * name no message, and `mailrepd index rebuild` drops them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "store_internal.h"

#define KIND_BITS	4	/* a row is blob id << KIND_BITS | kind */

void
store_fts_disable(struct store *st)
{
	st->fts_off = 1;
}

int
store_fts_enabled(const struct store *st)
{
	return !st->fts_off;
}

int64_t
store_fts_changes(struct store *st)
{
	return (int64_t)sqlite3_total_changes64(st->db) + st->data_version;
}

/* Reads the fts_state row with statement s (S_FTS_STATE) into *out. */
static enum store_err
state_read(struct store *st, struct store_fts_state *out)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	memset(out, 0, sizeof(*out));
	if ((s = stmt(st, S_FTS_STATE)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "fts state")) != STORE_OK)
		return err;
	out->generation = sqlite3_column_int64(s, 0);
	out->version = (unsigned)sqlite3_column_int64(s, 1);
	out->upto = sqlite3_column_int64(s, 2);
	out->blobs = sqlite3_column_int64(s, 3);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_fts_state(struct store *st, struct store_fts_state *out)
{
	return state_read(st, out);
}

/* One number a statement run once answers (with ?1 = arg), or -1. */
static int64_t
count_of(struct store *st, const char *sql, int64_t arg)
{
	sqlite3_stmt	*s;
	int64_t		 v = -1;

	if ((s = prepare(st, sql)) == NULL)
		return -1;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, arg);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

enum store_err
store_fts_status(struct store *st, struct store_fts_state *out)
{
	enum store_err	 err;

	store_read_begin(st);
	if ((err = state_read(st, out)) == STORE_OK) {
		out->stored = count_of(st, "SELECT count(*) FROM blob", 0);
		out->pending = count_of(st, "SELECT count(*) FROM blob "
		    "WHERE id > ?1", out->upto);
		out->skipped = count_of(st, "SELECT count(*) FROM fts_skipped",
		    0);
		out->bytes = count_of(st, "SELECT coalesce(sum(length(block)), "
		    "0) FROM fts_data", 0);
		out->orphaned = count_of(st, "SELECT count(*) FROM fts_docsize "
		    "d WHERE NOT EXISTS (SELECT 1 FROM blob WHERE id = d.id / "
		    "16)", 0);
	}
	store_read_end(st);
	return err;
}

enum store_err
store_fts_reset(struct store *st, unsigned version)
{
	char		 sql[256];

	(void)snprintf(sql, sizeof(sql), "INSERT INTO fts (fts) "
	    "VALUES ('delete-all'); DELETE FROM fts_skipped; "
	    "UPDATE fts_state SET generation = generation + 1, "
	    "version = %u, upto = 0, blobs = 0;", version);
	st->gc_more = 1;	/* what waited for the index may go */
	return db_exec(st, sql);
}

/*
 * Reads up to max (id, guid) rows of statement `which` (S_FTS_PENDING,
 * S_FTS_FORGETTABLE: ?1 = arg, ?2 = max) into out.
 */
static enum store_err
blob_rows(struct store *st, enum stmt_id which, int64_t arg,
    struct store_fts_blob *out, size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, which)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, arg);
	sqlite3_bind_int64(s, 2, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
		out[*n].id = sqlite3_column_int64(s, 0);
		if (sqlite3_column_bytes(s, 1) != GUID_LEN)
			continue;
		memcpy(out[*n].guid, sqlite3_column_blob(s, 1), GUID_LEN);
		(*n)++;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, which == S_FTS_PENDING ? "fts pending" :
	    "fts forgettable");
}

enum store_err
store_fts_pending(struct store *st, int64_t after, struct store_fts_blob *out,
    size_t max, size_t *n)
{
	return blob_rows(st, S_FTS_PENDING, after, out, max, n);
}

/*
 * Sets the index's automerge (kept in fts_config with the store) to
 * FTS_AUTOMERGE where it holds another, once a store is opened: stores
 * made with FTS5's default take it too.  Inside a write transaction.
 */
static enum store_err
automerge_set(struct store *st)
{
	enum store_err	 err;
	char		 sql[192];

	if (st->fts_tuned)
		return STORE_OK;
	(void)snprintf(sql, sizeof(sql), "INSERT INTO fts (fts, rank) "
	    "SELECT 'automerge', %d WHERE NOT EXISTS (SELECT 1 FROM "
	    "fts_config WHERE k = 'automerge' AND v = %d)", FTS_AUTOMERGE,
	    FTS_AUTOMERGE);
	err = db_exec(st, sql);
	st->fts_tuned = err == STORE_OK;
	return err;
}

enum store_err
store_fts_look(struct store *st, unsigned version,
    struct store_fts_state *state, struct store_fts_blob *out, size_t max,
    size_t *n, size_t *gone)
{
	enum store_err	 err;
	int		 mine = !st->in_txn && !st->in_read;

	*n = *gone = 0;
	store_read_begin(st);
	if ((err = state_read(st, state)) == STORE_OK &&
	    state->version == version &&
	    (err = blob_rows(st, S_FTS_FORGETTABLE, state->upto, out, 1,
	    gone)) == STORE_OK)
		err = blob_rows(st, S_FTS_PENDING, state->upto, out, max, n);
	if (mine)
		store_read_end(st);
	return err;
}

enum store_err
store_fts_begin(struct store *st)
{
	enum store_err	 err;

	if ((err = op_begin_lazy(st)) != STORE_OK)
		return err;
	if ((err = automerge_set(st)) != STORE_OK)
		return op_end(st, err);
	return STORE_OK;
}

/* Adds (S_FTS_ADD) or deletes (S_FTS_FORGET) a row of blob_id's text. */
static enum store_err
row_write(struct store *st, enum stmt_id which, int64_t blob_id,
    enum store_fts_kind kind, const char *text, size_t len)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, which)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	sqlite3_bind_int(s, 2, (int)kind);
	sqlite3_bind_text(s, 3, text, (int)len, SQLITE_STATIC);
	return step_done(st, s, which == S_FTS_ADD ? "fts add" : "fts forget");
}

enum store_err
store_fts_add(struct store *st, int64_t blob_id, enum store_fts_kind kind,
    const char *text, size_t len)
{
	return row_write(st, S_FTS_ADD, blob_id, kind, text, len);
}

enum store_err
store_fts_skip(struct store *st, int64_t blob_id)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_FTS_SKIP)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	return step_done(st, s, "fts skip");
}

enum store_err
store_fts_end(struct store *st, int64_t upto, int64_t blobs,
    enum store_err err)
{
	sqlite3_stmt	*s;

	if (err == STORE_OK) {
		if ((s = stmt(st, S_FTS_DONE)) == NULL)
			err = STORE_IO;
		else {
			sqlite3_bind_int64(s, 1, upto);
			sqlite3_bind_int64(s, 2, blobs);
			err = step_done(st, s, "fts done");
		}
	}
	return op_end(st, err);
}

/* The length of the UTF-8 character that starts with byte c. */
static size_t
utf8_len(unsigned char c)
{
	return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* The byte offset of character `nth` of str (len when past its end). */
static size_t
char_offset(const char *str, size_t len, size_t nth)
{
	size_t	 i = 0;

	while (nth-- > 0 && i < len)
		i += utf8_len((unsigned char)str[i]);
	return i < len ? i : len;
}

/*
 * Whether bytes [from, to) of s hold one that is no letter: a blank, a
 * digit, punctuation (a byte of a UTF-8 character counts as a letter).
 */
static int
has_nonletter(const char *s, size_t from, size_t to)
{
	unsigned char	 c;

	for (; from < to; from++) {
		c = (unsigned char)s[from];
		if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' &&
		    c <= 'Z')))
			return 1;
	}
	return 0;
}

/*
 * The FTS5 query for str: the AND of some of its trigrams, each a
 * quoted string.  Every blob that holds str holds all of its trigrams,
 * so any of them name no blob too few; each one asked costs a walk of
 * its list of blobs, and those of common letters name most of the
 * store.  So a third of them are asked, spread evenly from the first to
 * the last so that every character is in one ("needleword" is "nee"
 * AND "edl" AND "lew" AND "ord"), and each that holds a blank, a digit
 * or punctuation: where words meet, the rare trigrams of common words
 * are ("words called" asks "ds ", "s c" and " ca").  At most
 * FTS_MAX_TRIGRAMS.  Returns malloc'd text, or NULL (no memory, or
 * fewer than 3 characters).
 */
static char *
match_query(const char *str, size_t len)
{
	size_t	 nc = 0, i, k, t, cover, n, from, to, cap, o = 0;
	char	*q = NULL, *pick;

	for (i = 0; i < len; i += utf8_len((unsigned char)str[i]))
		nc++;
	if (nc < 3 || (pick = calloc(nc - 2, 1)) == NULL)
		return NULL;
	cover = (nc + 2) / 3 < FTS_MAX_TRIGRAMS ? (nc + 2) / 3 :
	    FTS_MAX_TRIGRAMS;
	for (t = 0; t < cover; t++)
		pick[cover == 1 ? 0 : t * (nc - 3) / (cover - 1)] = 1;
	n = cover;
	for (t = 0, from = 0; t < nc - 2 && n < FTS_MAX_TRIGRAMS; t++) {
		to = char_offset(str + from, len - from, 3) + from;
		if (!pick[t] && has_nonletter(str, from, to)) {
			pick[t] = 1;
			n++;
		}
		from += utf8_len((unsigned char)str[from]);
	}
	/* Each quoted trigram: 3 characters of 4 bytes, each maybe '""'. */
	cap = n * (3 * 4 * 2 + 2 + 5) + 1;
	if ((q = malloc(cap)) == NULL) {
		free(pick);
		return NULL;
	}
	for (t = 0, from = 0; t < nc - 2; t++) {
		to = char_offset(str + from, len - from, 3) + from;
		if (pick[t]) {
			if (o > 0) {
				memcpy(q + o, " AND ", 5);
				o += 5;
			}
			q[o++] = '"';
			for (k = from; k < to; k++) {
				if (str[k] == '"')
					q[o++] = '"';
				q[o++] = str[k];
			}
			q[o++] = '"';
		}
		from += utf8_len((unsigned char)str[from]);
	}
	q[o] = '\0';
	free(pick);
	return q;
}

/* Appends the blob of index row `rowid` to ids when its kind is asked. */
static void
match_row(int64_t rowid, unsigned kinds, int64_t *ids, size_t *n)
{
	int64_t	 blob = rowid >> KIND_BITS;

	if ((kinds & 1u << (rowid & ((1 << KIND_BITS) - 1))) != 0 &&
	    (*n == 0 || ids[*n - 1] != blob))
		ids[(*n)++] = blob;
}

enum store_err
store_fts_match(struct store *st, int64_t generation, unsigned kinds,
    const char *str, size_t len, int64_t *pos, int64_t *ids, size_t max,
    size_t *n, int *done)
{
	struct store_fts_state	 state;
	sqlite3_stmt		*s;
	enum store_err		 err;
	char			*q;
	int			 rc = SQLITE_DONE, mine;
	size_t			 rows = 0;

	*n = 0;
	if ((q = match_query(str, len)) == NULL)
		return STORE_INVALID;
	mine = !st->in_txn && !st->in_read;
	store_read_begin(st);
	if ((err = state_read(st, &state)) == STORE_OK &&
	    state.generation != generation)
		err = STORE_NOTFOUND;
	if (err == STORE_OK && (s = stmt(st, S_FTS_MATCH)) == NULL)
		err = STORE_IO;
	if (err == STORE_OK) {
		sqlite3_bind_text(s, 1, q, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, *pos);
		sqlite3_bind_int64(s, 3, (int64_t)max);
		while (rows < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			rows++;
			*pos = sqlite3_column_int64(s, 0);
			match_row(*pos, kinds, ids, n);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			err = db_error(st, rc, "fts match");
		*done = err == STORE_OK && rows < max;
	}
	if (mine)
		store_read_end(st);
	free(q);
	return err;
}

enum store_err
store_fts_skipped(struct store *st, int64_t after, int64_t *ids, size_t max,
    size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, S_FTS_SKIPPED)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int64(s, 2, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		ids[(*n)++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "fts skipped");
}

enum store_err
store_message_blobs(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t *uids, int64_t *blobs, size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, S_MSG_BLOBS)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
		uids[*n] = (uint32_t)sqlite3_column_int64(s, 0);
		blobs[(*n)++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "message blobs");
}

enum store_err
store_blob_messages(struct store *st, int64_t mailbox_id, int64_t blob_id,
    uint32_t *uids, size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc = SQLITE_DONE;

	*n = 0;
	if ((s = stmt(st, S_BLOB_MESSAGES)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, blob_id);
	sqlite3_bind_int64(s, 3, (int64_t)max);
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
		uids[(*n)++] = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK :
	    db_error(st, rc, "blob messages");
}

enum store_err
store_blob_last(struct store *st, int64_t *id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*id = 0;
	if ((s = stmt(st, S_BLOB_LAST)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "last blob")) == STORE_OK)
		*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_fts_forgettable(struct store *st, int64_t upto,
    struct store_fts_blob *out, size_t max, size_t *n)
{
	return blob_rows(st, S_FTS_FORGETTABLE, upto, out, max, n);
}

enum store_err
store_fts_forget(struct store *st, int64_t blob_id, enum store_fts_kind kind,
    const char *text, size_t len)
{
	return row_write(st, S_FTS_FORGET, blob_id, kind, text, len);
}

enum store_err
store_fts_forgot(struct store *st, int64_t blob_id)
{
	st->gc_more = 1;	/* the blob may go now */
	return store_fts_skip(st, blob_id);
}
