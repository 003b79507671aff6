/*
 * store_restore.c — backup, restore and the identity marker: the store's
 * part of DESIGN.md's "Backups are restore-safe".
 *
 * A node that runs from an older copy of its store must not pass for the
 * node it was copied from: its replicas would trust positions in a log
 * that went on without it, and take its old state over their newer
 * expunges.  So every copy that comes back to life -- `mailrepd
 * restore`, or a raw copy of the data directory found at start -- takes
 * a new node id and epoch (a new incarnation), and its replicas
 * reconcile with it instead of streaming.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "durable.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

/* tmp becomes path for good: tmp synced, renamed, the rename synced. */
static enum store_err
install_file(const char *tmp, const char *path)
{
	if (durable_replace(tmp, path) < 0) {
		log_error("store.install", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
		return STORE_IO;
	}
	return STORE_OK;
}

/*
 * Copies database src into a new file at tmp with SQLite's online
 * backup, BACKUP_STEP_PAGES at a time with a pause between steps, and
 * reports (pages copied, pages in all) after each step.  src is read in
 * one read transaction held from the first step to the last: in WAL
 * mode that blocks no writer (the server's loop goes on committing; only
 * checkpoints stop short of our snapshot meanwhile), and the copy is the
 * store as of one commit, never a mix, and never restarts however much
 * the server writes meanwhile.
 */
static enum store_err
copy_database(sqlite3 *src, const char *tmp, store_backup_progress *cb,
    void *arg)
{
	sqlite3		*dst = NULL;
	sqlite3_backup	*b;
	int		 rc;

	(void)unlink(tmp);
	if ((rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_exec(src, "BEGIN; SELECT count(*) FROM "
	    "sqlite_schema", NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		rc = sqlite3_errcode(dst);
		goto fail;
	}
	do {
		rc = sqlite3_backup_step(b, BACKUP_STEP_PAGES);
		if (cb != NULL)
			cb(arg, sqlite3_backup_pagecount(b) -
			    sqlite3_backup_remaining(b),
			    sqlite3_backup_pagecount(b));
		if (rc == SQLITE_OK || rc == SQLITE_BUSY ||
		    rc == SQLITE_LOCKED)
			sqlite3_sleep(BACKUP_STEP_PAUSE_MS);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	if (sqlite3_backup_finish(b) != SQLITE_OK || rc != SQLITE_DONE) {
		rc = rc == SQLITE_DONE ? sqlite3_errcode(dst) : rc;
		goto fail;
	}
	(void)sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	/*
	 * One self-contained file, readable from read-only media: out of
	 * WAL mode (store_open() puts a restored store back in it).
	 */
	if ((rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL,
	    NULL, NULL)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_close(dst)) != SQLITE_OK) {
		dst = NULL;
		goto fail;
	}
	return STORE_OK;
fail:
	log_error("store.backup", "to=%s msg=%s", log_quote(tmp),
	    log_quote(sqlite3_errstr(rc)));
	(void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(dst);
	(void)unlink(tmp);
	return rc == SQLITE_FULL ? STORE_FULL : rc == SQLITE_NOTADB ?
	    STORE_INVALID : STORE_IO;
}

enum store_err
store_backup(const char *dir, const char *to, store_backup_progress *cb,
    void *arg)
{
	sqlite3		*src = NULL;
	char		 path[PATH_MAX], tmp[PATH_MAX];
	enum store_err	 err;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, DB_FILE) >=
	    sizeof(path) || (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp",
	    to) >= sizeof(tmp))
		return STORE_INVALID;
	/* Read-write only so that it can join the server's WAL index. */
	if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		log_error("store.backup", "path=%s msg=%s", log_quote(path),
		    log_quote(src ? sqlite3_errmsg(src) : "no memory"));
		sqlite3_close(src);
		return STORE_NOTFOUND;
	}
	sqlite3_busy_timeout(src, STORE_BUSY_TIMEOUT_MS);
	err = copy_database(src, tmp, cb, arg);
	sqlite3_close(src);
	if (err == STORE_OK)
		err = install_file(tmp, to);
	return err;
}

enum store_err
store_restore_file(const char *from, const char *dir)
{
	sqlite3		*src = NULL;
	struct stat	 sb;
	char		 path[PATH_MAX], tmp[PATH_MAX], side[PATH_MAX];
	enum store_err	 err;
	const char	*const leftovers[] = { "", "-wal", "-shm" };
	size_t		 i;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return STORE_IO;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, DB_FILE) >=
	    sizeof(path) || (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp",
	    path) >= sizeof(tmp))
		return STORE_INVALID;
	/* A WAL left beside would be replayed into the copy: refused too. */
	for (i = 0; i < nitems(leftovers); i++) {
		snprintf(side, sizeof(side), "%s%s", path, leftovers[i]);
		if (stat(side, &sb) == 0)
			return STORE_EXISTS;
	}
	if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(src);
		return STORE_NOTFOUND;
	}
	err = copy_database(src, tmp, NULL, NULL);
	sqlite3_close(src);
	if (err == STORE_OK)
		err = install_file(tmp, path);
	return err;
}

/* --- the identity marker ----------------------------------------------- */

/*
 * Why a marker, and why this one.  Nothing inside the data directory can
 * tell a store from a copy of it, since a copy copies that too; what a
 * copy cannot copy is the physical file.  So the node keeps a small file,
 * IDENTITY_FILE, beside the database, written once per incarnation and
 * never again, and records in its node row that file's inode number and
 * birth time (or change time, ctime, where the file system keeps no
 * birth time; in nanoseconds).  Any copy -- cp, rsync -a, tar, a
 * file-level backup tool, `mailrepd backup` (which leaves the marker
 * out) -- makes a new inode born at the moment it was made: no
 * user-space tool can set a birth time or a ctime, and preserving
 * modes and times (cp -p) keeps mtime only.  So at start, a marker that
 * is missing or whose (inode, time) differ from the node row's means
 * this store is a copy: it takes a new incarnation.
 *
 * It cannot misfire on a normal start: a start that finds the marker
 * genuine writes nothing, so a restart, kill -9 or a power cut cannot
 * leave the two out of step.  Where a new marker is written (a copy, a
 * restore, the first start of a store), the file is made under a
 * temporary name, fsynced, renamed, the directory fsynced, then stat'ed
 * and only then recorded in the store's transaction (synchronous=FULL).
 * A crash before that commit leaves the old row, which does not match
 * the new marker: the next start makes another new incarnation, which it
 * was going to do anyway; a crash after it leaves both durable and in
 * step.  What it cannot see: a whole file system rolled back to a
 * snapshot keeps inode and times (the replicas' log-hash check still
 * sees the log diverge there).  Where only ctime is kept, changing the
 * marker's owner or mode counts as a copy (harmless but not free: one
 * full comparison with each replica, and on a master new UIDVALIDITYs).
 */

/*
 * The marker's identity: its inode and its birth time in nanoseconds,
 * or its ctime where the file system keeps no birth time.  A birth time
 * is as impossible to copy as a ctime and, unlike it, survives a chown
 * or chmod of the data directory (which packages and operators do).
 */
struct marker {
	int64_t	 ino;
	int64_t	 time_ns;
};

static int
marker_stat(const char *path, struct marker *m)
{
	struct statx			 sx;
	const struct statx_timestamp	*t;

	if (statx(AT_FDCWD, path, 0, STATX_INO | STATX_CTIME | STATX_BTIME,
	    &sx) < 0)
		return -1;
	t = (sx.stx_mask & STATX_BTIME) ? &sx.stx_btime : &sx.stx_ctime;
	m->ino = (int64_t)sx.stx_ino;
	m->time_ns = (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
	return 0;
}

/* Writes a new marker naming node_id, durably, and stats it. */
static enum store_err
marker_write(const char *path, const uint8_t node_id[NODE_ID_LEN],
    struct marker *m)
{
	char	 tmp[PATH_MAX], line[NODE_ID_LEN * 2 + 2];
	int	 fd, ok;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >=
	    sizeof(tmp))
		return STORE_INVALID;
	crypto_hex(node_id, NODE_ID_LEN, line);
	line[NODE_ID_LEN * 2] = '\n';
	line[NODE_ID_LEN * 2 + 1] = '\0';
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0)
		return STORE_IO;
	ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line);
	if (close(fd) < 0 || !ok || install_file(tmp, path) != STORE_OK ||
	    marker_stat(path, m) < 0) {
		log_error("store.identity", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
		return STORE_IO;
	}
	return STORE_OK;
}

/*
 * The node row's record of its marker: 1 when recorded, 0 when none
 * (a new store, or one made before markers), -1 on error.
 */
static int
marker_recorded(struct store *st, struct marker *m)
{
	sqlite3_stmt	*s;
	int		 have;

	if ((s = stmt(st, S_NODE_MARKER_GET)) == NULL ||
	    step_row(st, s, "node marker") != STORE_OK)
		return -1;
	have = sqlite3_column_type(s, 0) != SQLITE_NULL;
	m->ino = sqlite3_column_int64(s, 0);
	m->time_ns = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return have;
}

/* Runs statement id, bound to v when v is not 0. */
static enum store_err
run_stmt(struct store *st, enum stmt_id id, uint32_t v)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	if (v != 0)
		sqlite3_bind_int64(s, 1, v);
	return step_done(st, s, "incarnation");
}

/*
 * Which mailboxes a new incarnation gives a new UIDVALIDITY, and why.
 * A copy taken from a master gives every mailbox a new one: after the
 * copy was made, that master may have given out UIDs in any of its
 * mailboxes, to messages the copy never saw, and clients may have
 * cached them; the copy would give the same UIDs to other messages.
 * It cannot know which UIDs went out, nor whether any did, so each
 * mailbox starts a new UID space (clients resynchronise it once;
 * replicas take the new value when they reconcile, as the master's
 * word).  A copy taken from a replica keeps them: a replica gives out
 * no UIDs, it places its master's, and it follows that master again,
 * so a UID it shows names what the master named.
 */
static enum store_err
revalidate_mailboxes(struct store *st)
{
	enum store_err	 err;
	uint32_t	 v;

	if ((err = next_uidvalidity(st, &v)) != STORE_OK)
		return err;
	return run_stmt(st, S_MBOX_REVALIDATE, v);
}

/*
 * One transaction: the node row takes the marker, and with renew a new
 * node id and epoch (a new incarnation); the replicas it knew are then
 * reset to "behind, reconciling" (their positions were in the log of
 * the node this copy was taken from, which went on without it), and a
 * master's mailboxes get a new UIDVALIDITY (above).
 */
static enum store_err
incarnation_commit(struct store *st, const uint8_t node_id[NODE_ID_LEN],
    int renew, int master, const struct marker *m)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	uint8_t		 epoch[EPOCH_LEN];

	if (crypto_random(epoch, sizeof(epoch)) < 0)
		return STORE_IO;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, renew ? S_NODE_RENEW : S_NODE_MARKER_SET)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, m->ino);
	sqlite3_bind_int64(s, 2, m->time_ns);
	if (renew) {
		sqlite3_bind_blob(s, 3, node_id, NODE_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, epoch, EPOCH_LEN, SQLITE_STATIC);
	}
	err = step_done(st, s, "node incarnation");
	if (err == STORE_OK && renew)
		err = run_stmt(st, S_REPLICA_RESET, 0);
	if (err == STORE_OK && renew && master)
		err = revalidate_mailboxes(st);
	if ((err = op_end(st, err)) != STORE_OK)
		return err;
	return store_commit(st);
}

enum store_err
store_incarnation(struct store *st, const char *dir, int renew,
    int *renewed)
{
	struct store_node	 me;
	struct marker		 rec, now;
	char			 path[PATH_MAX];
	uint8_t			 node_id[NODE_ID_LEN];
	enum store_err		 err;
	int			 have;

	*renewed = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
	    IDENTITY_FILE) >= sizeof(path))
		return STORE_INVALID;
	if ((have = marker_recorded(st, &rec)) < 0 ||
	    store_node_get(st, &me) != STORE_OK)
		return STORE_IO;
	if (have && !renew && (marker_stat(path, &now) < 0 ||
	    now.ino != rec.ino || now.time_ns != rec.time_ns))
		renew = 1;		/* a copy */
	else if (have && !renew)
		return STORE_OK;	/* the very store: nothing to write */
	memcpy(node_id, me.node_id, NODE_ID_LEN);
	if (renew && crypto_random(node_id, sizeof(node_id)) < 0)
		return STORE_IO;
	if ((err = marker_write(path, node_id, &now)) != STORE_OK ||
	    (err = incarnation_commit(st, node_id, renew,
	    strcmp(me.role, "master") == 0, &now)) != STORE_OK)
		return err;
	*renewed = renew;
	return STORE_OK;
}
