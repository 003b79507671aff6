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
	"RETURNING mailbox, modseq";
static const char sql_renumbered[] =
	"DELETE FROM renumbered WHERE rowid IN (SELECT rowid FROM "
	"renumbered WHERE time < ?2 ORDER BY time LIMIT ?3) AND "
	"logpos <= ?1";
static const char sql_tombs_purged_set[] =
	"UPDATE mailbox SET tombs_purged = ?2 WHERE uniqueid = ?1 AND "
	"tombs_purged < ?2";
static const char sql_tombs_purged_get[] =
	"SELECT tombs_purged FROM mailbox WHERE uniqueid = ?1";
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

/* A tombstone purged: its mailbox's tombs_purged rises to its MODSEQ. */
struct purged_tomb {
	uint8_t		 mailbox[MAILBOX_ID_LEN];
	int64_t		 modseq;
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

/*
 * Purges the message tombstones p allows and raises each mailbox's
 * tombs_purged past them.  The rows come back from the DELETE first and
 * the mailboxes are updated after, the statement done.
 */
static enum store_err
purge_expunged(struct store *st, const struct store_purge *p, int64_t *n)
{
	struct purged_tomb	 gone[STORE_PURGE_BATCH];
	sqlite3_stmt		*s;
	enum store_err		 err = STORE_OK;
	int64_t			 i;
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
		gone[(*n)++].modseq = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_error(st, rc, "tombstone purge");
	if (*n == 0 || (s = prepare(st, sql_tombs_purged_set)) == NULL)
		return *n == 0 ? STORE_OK : STORE_IO;
	for (i = 0; i < *n && err == STORE_OK; i++) {
		sqlite3_bind_blob(s, 1, gone[i].mailbox, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, gone[i].modseq);
		if ((rc = sqlite3_step(s)) != SQLITE_DONE)
			err = db_error(st, rc, "tombs purged");
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return err;
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

	memset(out, 0, sizeof(*out));
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if (!p->keep_tombs) {
		err = purge_rows(st, sql_mailbox_gone, p->acked,
		    p->tombs_before, &out->mailbox_gone);
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
