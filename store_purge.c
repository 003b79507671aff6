/*
 * store_purge.c — the store's bounded growth: tombstones, renumbered
 * copies, resolved conflicts and quarantine purged in small steps, the
 * WAL kept to a size, and the sizes `mailrepd status` shows.
 *
 * The statements here run once every few seconds, so each step
 * prepares them and finalizes them again instead of keeping them among
 * the store's statements for every request.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

/*
 * Each purge deletes the oldest rows of a window of at most ?3 (by age,
 * an index), of which only those every replica has (logpos at most ?1)
 * and older than ?2: a window, so that a step never scans past the rows
 * a stopped replica holds back, however many there are.  Log positions
 * grow with time, so the rows held back come first and nothing later
 * could go before them anyway.
 */
static const char sql_mailbox_gone[] =
	"DELETE FROM mailbox_gone WHERE rowid IN (SELECT rowid FROM "
	"mailbox_gone WHERE time < ?2 ORDER BY time LIMIT ?3) AND "
	"logpos <= ?1";
static const char sql_expunged[] =
	"DELETE FROM expunged WHERE rowid IN (SELECT rowid FROM expunged "
	"WHERE time < ?2 ORDER BY time LIMIT ?3) AND logpos <= ?1 "
	"RETURNING mailbox, modseq, uid";
static const char sql_renumbered[] =
	"DELETE FROM renumbered WHERE rowid IN (SELECT rowid FROM "
	"renumbered WHERE time < ?2 ORDER BY time LIMIT ?3) AND "
	"logpos <= ?1";
static const char sql_tombs_purged_set[] =
	"UPDATE mailbox SET tombs_purged = ?2 WHERE uniqueid = ?1 AND "
	"tombs_purged < ?2";
static const char sql_tombs_purged_get[] =
	"SELECT tombs_purged FROM mailbox WHERE uniqueid = ?1";
/*
 * The UIDs of a mailbox whose tombstones were purged, as ranges
 * (schema_v23): the one starting at or below ?2, the first above it,
 * how many UIDs strictly between ?2 and ?3 are held still (a message
 * or a tombstone), and the writes that keep the ranges.
 */
static const char sql_purged_below[] =
	"SELECT lo, hi FROM uid_purged WHERE mailbox = ?1 AND lo <= ?2 "
	"ORDER BY lo DESC LIMIT 1";
static const char sql_purged_above[] =
	"SELECT lo, hi FROM uid_purged WHERE mailbox = ?1 AND lo > ?2 "
	"ORDER BY lo LIMIT 1";
static const char sql_held_between[] =
	"SELECT (SELECT count(*) FROM message g JOIN mailbox m ON "
	"m.id = g.mailbox_id WHERE m.uniqueid = ?1 AND g.uid > ?2 AND "
	"g.uid < ?3) + (SELECT count(*) FROM expunged WHERE mailbox = ?1 "
	"AND uid > ?2 AND uid < ?3)";
static const char sql_purged_drop[] =
	"DELETE FROM uid_purged WHERE mailbox = ?1 AND lo = ?2";
static const char sql_purged_put[] =
	"INSERT OR REPLACE INTO uid_purged (mailbox, lo, hi) SELECT ?1, ?2, "
	"?3 WHERE EXISTS (SELECT 1 FROM mailbox WHERE uniqueid = ?1)";
/* Those of mailboxes gone for good (their tombstones purged). */
static const char sql_purged_orphans[] =
	"DELETE FROM uid_purged WHERE NOT EXISTS (SELECT 1 FROM mailbox "
	"WHERE uniqueid = uid_purged.mailbox)";
/* Resolved conflicts (?1 unused: no replica needs them). */
static const char sql_conflicts[] =
	"DELETE FROM conflict WHERE id IN (SELECT id FROM conflict WHERE "
	"resolved = 1 AND time < ?2 ORDER BY time LIMIT ?3)";
static const char sql_quarantine[] =
	"DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine "
	"WHERE time < ?1 ORDER BY time LIMIT ?2) RETURNING blob_id";

/* The tables whose rows `mailrepd status` counts (STORE_SIZE_TABLES). */
static const char *const sized_tables[STORE_SIZE_TABLES] = {
	"message", "blob", "expunged", "mailbox_gone", "renumbered",
	"conflict", "quarantine", "replog", "held",
};

/*
 * A tombstone purged: its mailbox's tombs_purged rises to its MODSEQ,
 * and its uid joins the mailbox's purged UIDs.
 */
struct purged_tomb {
	uint8_t		 mailbox[MAILBOX_ID_LEN];
	int64_t		 modseq;
	uint32_t	 uid;
};

/* The statements that keep the purged UIDs, for one purge step. */
enum purged_stmt {
	PS_BELOW,
	PS_ABOVE,
	PS_BETWEEN,
	PS_DROP,
	PS_PUT,
	PS_COUNT
};

static const char *const purged_sql[PS_COUNT] = {
	[PS_BELOW] = sql_purged_below,
	[PS_ABOVE] = sql_purged_above,
	[PS_BETWEEN] = sql_held_between,
	[PS_DROP] = sql_purged_drop,
	[PS_PUT] = sql_purged_put,
};

sqlite3_stmt *
prepare(struct store *st, const char *sql)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) !=
	    SQLITE_OK) {
		db_error(st, rc, "prepare");
		return NULL;
	}
	return s;
}

/* Runs a DELETE bound by (acked, before, limit) to its end; *n: rows. */
static enum store_err
purge_rows(struct store *st, const char *sql, int64_t acked, int64_t before,
    int64_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = prepare(st, sql)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, acked);
	sqlite3_bind_int64(s, 2, before);
	sqlite3_bind_int(s, 3, STORE_PURGE_BATCH);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_error(st, rc, "purge");
	*n = sqlite3_changes(st->db);
	return STORE_OK;
}

/* Orders purged tombstones by mailbox, then uid. */
static int
purged_cmp(const void *a, const void *b)
{
	const struct purged_tomb	*x = a, *y = b;
	int				 c;

	if ((c = memcmp(x->mailbox, y->mailbox, MAILBOX_ID_LEN)) != 0)
		return c;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/*
 * Steps statement s, bound to (mailbox, a, b): *n the first column and
 * *m the second of its row, *found whether there was one.
 */
static enum store_err
purged_step(struct store *st, sqlite3_stmt *s, const uint8_t *mailbox,
    int64_t a, int64_t b, int64_t *n, int64_t *m, int *found)
{
	int	 rc;

	sqlite3_bind_blob(s, 1, mailbox, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, b);
	*found = 0;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*found = 1;
		*n = sqlite3_column_int64(s, 0);
		if (m != NULL)
			*m = sqlite3_column_int64(s, 1);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "purged uids");
}

/*
 * Whether every UID strictly between a and b is held in mailbox (a
 * message or a tombstone), so that the purged UIDs a and b are one
 * range: *yes.  Past STORE_PURGED_JOIN_MAX UIDs they stay two.
 */
static enum store_err
purged_joins(struct store *st, sqlite3_stmt **ps, const uint8_t *mailbox,
    int64_t a, int64_t b, int *yes)
{
	enum store_err	 err;
	int64_t		 held = 0;
	int		 found;

	*yes = b - a - 1 == 0;
	if (*yes || b - a - 1 > STORE_PURGED_JOIN_MAX)
		return STORE_OK;
	err = purged_step(st, ps[PS_BETWEEN], mailbox, a, b, &held, NULL,
	    &found);
	*yes = err == STORE_OK && held == b - a - 1;
	return err;
}

/*
 * Adds the uid of tombstone t to its mailbox's purged UIDs, joining the
 * ranges next to it when only held UIDs lie between (purged_joins()).
 * A mailbox no longer here keeps none.
 */
static enum store_err
purged_add(struct store *st, sqlite3_stmt **ps, const struct purged_tomb *t)
{
	enum store_err	 err;
	int64_t		 lo, hi, n = 0, m = 0;
	int		 found, join;

	lo = hi = t->uid;	/* the range of t alone, until joined */
	if ((err = purged_step(st, ps[PS_BELOW], t->mailbox, t->uid, 0, &n,
	    &m, &found)) != STORE_OK || (found && m >= t->uid))
		return err;
	if (found && (err = purged_joins(st, ps, t->mailbox, m, t->uid,
	    &join)) == STORE_OK && join) {
		lo = n;
		err = purged_step(st, ps[PS_DROP], t->mailbox, n, 0, &n, NULL,
		    &found);
	}
	if (err == STORE_OK)
		err = purged_step(st, ps[PS_ABOVE], t->mailbox, t->uid, 0, &n,
		    &m, &found);
	if (err == STORE_OK && found && (err = purged_joins(st, ps,
	    t->mailbox, t->uid, n, &join)) == STORE_OK && join) {
		hi = m;
		err = purged_step(st, ps[PS_DROP], t->mailbox, n, 0, &n, NULL,
		    &found);
	}
	if (err == STORE_OK)
		err = purged_step(st, ps[PS_PUT], t->mailbox, lo, hi, &n, NULL,
		    &found);
	return err;
}

/*
 * Keeps the uids of the n tombstones just purged (gone, sorted here) in
 * their mailboxes' purged UIDs: below UIDNEXT, a UID with neither a
 * message nor a tombstone was held here once only when it is there
 * (uid_purged()).  Each mailbox's tombs_purged rises past them.
 */
static enum store_err
purged_keep(struct store *st, struct purged_tomb *gone, int64_t n)
{
	sqlite3_stmt	*ps[PS_COUNT] = { NULL }, *s = NULL;
	enum store_err	 err = STORE_OK;
	int64_t		 i, v;
	int		 k, found;

	qsort(gone, (size_t)n, sizeof(*gone), purged_cmp);
	for (k = 0; k < PS_COUNT && err == STORE_OK; k++)
		if ((ps[k] = prepare(st, purged_sql[k])) == NULL)
			err = STORE_IO;
	if (err == STORE_OK && (s = prepare(st, sql_tombs_purged_set)) ==
	    NULL)
		err = STORE_IO;
	for (i = 0; i < n && err == STORE_OK; i++) {
		if ((err = purged_add(st, ps, &gone[i])) == STORE_OK)
			err = purged_step(st, s, gone[i].mailbox,
			    gone[i].modseq, 0, &v, NULL, &found);
	}
	sqlite3_finalize(s);
	for (k = 0; k < PS_COUNT; k++)
		sqlite3_finalize(ps[k]);
	return err;
}

/*
 * Purges the message tombstones p allows and keeps what they leave
 * behind (purged_keep()).  The rows come back from the DELETE first and
 * the rest is written after, the statement done.
 */
static enum store_err
purge_expunged(struct store *st, const struct store_purge *p, int64_t *n)
{
	struct purged_tomb	 gone[STORE_PURGE_BATCH];
	sqlite3_stmt		*s;
	int			 rc;

	*n = 0;
	if ((s = prepare(st, sql_expunged)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, p->acked);
	sqlite3_bind_int64(s, 2, p->tombs_before);
	sqlite3_bind_int(s, 3, STORE_PURGE_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < STORE_PURGE_BATCH) {
		if (sqlite3_column_bytes(s, 0) != MAILBOX_ID_LEN)
			continue;
		memcpy(gone[*n].mailbox, sqlite3_column_blob(s, 0),
		    MAILBOX_ID_LEN);
		gone[*n].modseq = sqlite3_column_int64(s, 1);
		gone[(*n)++].uid = (uint32_t)sqlite3_column_int64(s, 2);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_error(st, rc, "tombstone purge");
	return *n == 0 ? STORE_OK : purged_keep(st, gone, *n);
}

/*
 * Purges quarantine entries older than p->quarantine_before, then the
 * blob of each if nothing else uses it (one look-up a blob, where a
 * whole-store blob_gc() would scan every blob).
 */
static enum store_err
purge_quarantine(struct store *st, const struct store_purge *p, int64_t *n)
{
	int64_t		 blobs[STORE_PURGE_BATCH], i;
	sqlite3_stmt	*s;
	enum store_err	 err = STORE_OK;
	int		 rc;

	*n = 0;
	if ((s = prepare(st, sql_quarantine)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, p->quarantine_before);
	sqlite3_bind_int(s, 2, STORE_PURGE_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < STORE_PURGE_BATCH)
		blobs[(*n)++] = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_error(st, rc, "quarantine purge");
	for (i = 0; i < *n && err == STORE_OK; i++)
		err = blob_drop_unused(st, blobs[i]);
	return err;
}

/*
 * What is safe to purge is the caller's to say (sync.c's housekeeping
 * works out p->acked and keep_tombs, and says why there); this step
 * keeps to it.  Mailbox tombstones go before message tombstones, so a
 * deleted mailbox's messages are never without its own tombstone while
 * they still have theirs.
 */
enum store_err
store_purge_step(struct store *st, const struct store_purge *p,
    struct store_purged *out)
{
	enum store_err	 err;
	int		 rc;

	memset(out, 0, sizeof(*out));
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if (!p->keep_tombs) {
		err = purge_rows(st, sql_mailbox_gone, p->acked,
		    p->tombs_before, &out->mailbox_gone);
		if (err == STORE_OK && out->mailbox_gone > 0 &&
		    (rc = sqlite3_exec(st->db, sql_purged_orphans, NULL, NULL,
		    NULL)) != SQLITE_OK)
			err = db_error(st, rc, "purged uids");
		if (err == STORE_OK)
			err = purge_expunged(st, p, &out->expunged);
		if (err == STORE_OK)
			err = purge_rows(st, sql_renumbered, p->acked,
			    p->tombs_before, &out->renumbered);
	}
	if (err == STORE_OK)
		err = purge_rows(st, sql_conflicts, 0, p->conflicts_before,
		    &out->conflict);
	if (err == STORE_OK)
		err = purge_quarantine(st, p, &out->quarantine);
	return op_end(st, err);
}

enum store_err
uid_purged(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 lo = 0, hi = 0;

	*yes = 0;
	if ((s = prepare(st, sql_purged_below)) == NULL)
		return STORE_IO;
	err = purged_step(st, s, uniqueid, uid, 0, &lo, &hi, yes);
	sqlite3_finalize(s);
	*yes = *yes && hi >= uid;
	return err;
}

uint64_t
store_tombs_purged(struct store *st, const uint8_t *uniqueid)
{
	sqlite3_stmt	*s;
	uint64_t	 modseq = UINT64_MAX;	/* unknown: nothing complete */
	int		 rc;

	if ((s = prepare(st, sql_tombs_purged_get)) == NULL)
		return modseq;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		modseq = (uint64_t)sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		modseq = 0;
	else
		(void)db_error(st, rc, "tombs purged");
	sqlite3_finalize(s);
	return modseq;
}

/* The size of the database file plus suffix ("" or "-wal"); 0 if none. */
static int64_t
db_file_size(struct store *st, const char *suffix)
{
	const char	*db = sqlite3_db_filename(st->db, "main");
	char		 path[PATH_MAX];
	struct stat	 sb;

	if (db == NULL || snprintf(path, sizeof(path), "%s%s", db, suffix) >=
	    (int)sizeof(path) || stat(path, &sb) != 0)
		return 0;
	return sb.st_size;
}

void
store_wal_trim(struct store *st)
{
	if (st->in_txn || db_file_size(st, "-wal") <= STORE_WAL_LIMIT)
		return;
	wal_truncate(st);
}

void
store_file_bytes(struct store *st, int64_t *db, int64_t *wal)
{
	*db = db_file_size(st, "");
	*wal = db_file_size(st, "-wal");
}

enum store_err
store_sizes(struct store *st, struct store_sizes *out)
{
	sqlite3_stmt	*s;
	char		 sql[64];
	int		 i, rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < STORE_SIZE_TABLES; i++) {
		out->tables[i].name = sized_tables[i];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		    sized_tables[i]);
		if ((s = prepare(st, sql)) == NULL)
			return STORE_IO;
		if ((rc = sqlite3_step(s)) == SQLITE_ROW)
			out->tables[i].rows = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
		if (rc != SQLITE_ROW)
			return db_error(st, rc, "table size");
	}
	out->db_bytes = db_file_size(st, "");
	out->wal_bytes = db_file_size(st, "-wal");
	return STORE_OK;
}

enum store_err
wal_size_limit(struct store *st)
{
	char	 sql[64];
	int	 rc;

	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %lld",
	    (long long)STORE_WAL_LIMIT);
	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return db_error(st, rc, "journal size limit");
	return STORE_OK;
}
