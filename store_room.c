/*
 * store_room.c — room on a full disk for users to free space.
 *
 * SQLite in WAL mode writes every change to the WAL before the
 * database, a delete as much as a delivery: on a disk with no room left
 * an EXPUNGE fails like a delivery, and users cannot free the space
 * that would let mail in again.  So the store keeps a reserve of
 * reserve_bytes that new mail never takes:
 * - while there is room, as a file beside the database (allocated
 *   blocks, so that no other process takes them either).  The first
 *   write that finds the disk full (db_error() says STORE_FULL)
 *   releases the file and makes the store tight: no new message bytes
 *   are stored (blob_put() answers STORE_FULL at once: deliveries get
 *   452 4.3.1, APPEND NO [OVERQUOTA]), and the reserve's room goes to
 *   what frees space: flag changes, EXPUNGE, MOVE, DELETE.
 * - without the file, as free room on the disk: a new blob is stored
 *   only while the disk, less the reserve, and the database's free
 *   pages hold it.  Deleted mail frees pages inside the database, not
 *   on the disk, so this is how mail comes in again after users
 *   deleted some: into those pages, with the WAL's passing growth in
 *   the reserve's room (every checkpoint gives it back).
 * A write transaction does not wait for the disk to fill: one that
 * begins with less than STORE_ROOM_LOW free beside the file releases it
 * first (room_before_write()), because a write that fails is undone,
 * and an EXPUNGE's WAL pages (SQLite zeroes the pages it frees) can
 * pass the little room a full disk leaves.
 * Once a second, store_room_tick() checkpoints and truncates the WAL
 * while tight or without the file, takes the file back once the disk
 * has room for it and STORE_ROOM_LOW and STORE_ROOM_RESUME more (so
 * that the next write does not release it again), and ends the tight
 * state once there is
 * STORE_ROOM_RESUME of room besides the reserve (a new blob looks too:
 * room that came back, as an operator freed the disk, is used at once).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

#define RESERVE_FILE	"reserve"	/* beside the database */

/* The reserve file's path, beside the database; -1 when too long. */
static int
reserve_path(struct store *st, char *buf, size_t len)
{
	const char	*db = sqlite3_db_filename(st->db, "main");
	const char	*slash;

	if (db == NULL || (slash = strrchr(db, '/')) == NULL)
		return -1;
	return (size_t)snprintf(buf, len, "%.*s/%s", (int)(slash - db), db,
	    RESERVE_FILE) < len ? 0 : -1;
}

/*
 * Allocates the reserve file whole (blocks on the disk: a sparse file
 * would hold no room); a part allocated when the whole does not fit is
 * given back.  Returns 0 once it holds the reserve, -1 with errno.
 */
static int
reserve_take(struct store *st)
{
	char	 path[PATH_MAX];
	int	 fd, e;

	if (reserve_path(st, path, sizeof(path)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -1;
	if ((e = posix_fallocate(fd, 0, st->reserve_bytes)) != 0)
		(void)ftruncate(fd, 0);
	close(fd);
	if (e != 0) {
		errno = e;
		return -1;
	}
	st->reserve_held = 1;
	return 0;
}

/* Gives the reserve's room back to the disk. */
static void
reserve_release(struct store *st)
{
	char	 path[PATH_MAX];

	st->reserve_held = 0;
	if (reserve_path(st, path, sizeof(path)) == 0 &&
	    truncate(path, 0) != 0 && errno != ENOENT)
		log_error("store.reserve", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
}

int64_t
store_disk_free(struct store *st)
{
	const char	*db = sqlite3_db_filename(st->db, "main");
	struct statvfs	 sv;

	if (db == NULL || statvfs(db, &sv) != 0)
		return -1;
	return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* Bytes of the database's free pages, which new mail fills first. */
static int64_t
db_free(struct store *st)
{
	sqlite3_stmt	*s;
	int64_t		 n = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT f.freelist_count * "
	    "p.page_size FROM pragma_freelist_count f, pragma_page_size p",
	    -1, &s, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Bytes new mail may take: the disk's room less the reserve, and pages. */
static int64_t
room_left(struct store *st, int64_t disk)
{
	return disk - (st->reserve_held ? 0 : st->reserve_bytes) + db_free(st);
}

/*
 * Makes the store tight and releases the reserve file for what frees
 * space; `why` says what the disk showed.
 */
static void
room_tighten(struct store *st, const char *why)
{
	if (st->tight)
		return;
	st->tight = 1;
	if (st->reserve_bytes > 0 && st->reserve_held)
		reserve_release(st);
	log_warn("store.full", "reserve=%lld msg=\"%s: new mail is refused "
	    "until there is room, and the reserve is released so that users "
	    "can delete mail\"", (long long)st->reserve_bytes, why);
}

void
room_exhausted(struct store *st)
{
	room_tighten(st, "the disk is full");
}

void
room_before_write(struct store *st)
{
	int64_t	 disk;

	if (st->reserve_bytes == 0 || !st->reserve_held ||
	    (disk = store_disk_free(st)) < 0 || disk >= STORE_ROOM_LOW)
		return;
	room_tighten(st, "the disk is nearly full");
}

/*
 * Ends the tight state once there is STORE_ROOM_RESUME of room besides
 * the reserve; returns whether new mail is taken now.
 */
static int
room_resume(struct store *st, int64_t disk)
{
	if (room_left(st, disk) < STORE_ROOM_RESUME)
		return 0;
	st->tight = 0;
	log_info("store.room", "disk_free=%lld reserve_file=%s msg=\"room "
	    "again: new mail is taken\"", (long long)disk,
	    st->reserve_held ? "yes" : "no");
	return 1;
}

int
room_for_blob(struct store *st, uint64_t size)
{
	int64_t	 disk;

	if (store_room_tight(st))
		return 0;
	if (st->reserve_held || (disk = store_disk_free(st)) < 0 ||
	    room_left(st, disk) >= (int64_t)size)
		return 1;
	room_exhausted(st);
	return 0;
}

void
store_room_reserve(struct store *st, int64_t bytes)
{
	st->reserve_bytes = bytes;
	if (bytes == 0) {
		reserve_release(st);	/* one kept before is given back */
		st->reserve_held = 1;	/* there is nothing to hold */
		return;
	}
	if (reserve_take(st) == 0)
		return;
	st->tight = 1;
	log_warn("store.reserve", "reserve=%lld msg=\"cannot keep the "
	    "reserve on the disk (%s): new mail waits for room\"",
	    (long long)bytes, strerror(errno));
}

int
store_room_tight(struct store *st)
{
	int64_t	 disk;

	if (st->tight && (disk = store_disk_free(st)) >= 0)
		(void)room_resume(st, disk);
	return st->tight;
}

void
store_room_tick(struct store *st)
{
	int64_t	 disk;

	if (st->in_txn || (!st->tight && st->reserve_held))
		return;
	/* Near full, the WAL's growth goes back to the disk every second. */
	wal_truncate(st);
	if ((disk = store_disk_free(st)) < 0)
		return;
	if (!st->reserve_held && disk >= st->reserve_bytes +
	    STORE_ROOM_LOW + STORE_ROOM_RESUME && reserve_take(st) == 0)
		disk -= st->reserve_bytes;
	if (st->tight)
		(void)room_resume(st, disk);
}
