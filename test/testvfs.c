/*
 * testvfs.c — a test-only SQLite VFS that simulates power loss and
 * injects I/O faults.  Linked only into build/crash/mailrepd (make
 * crash-build); the release and ASan binaries never contain it.  It
 * registers itself as SQLite's default VFS from a constructor, so the
 * server's code is the same code the release binary runs.
 *
 * It wraps the default unix VFS and is driven by the environment:
 *
 *   MAILREPD_VFS_ARM=PATH	count events (and so crash or fail) only
 *				while PATH exists; unset: always
 *   MAILREPD_VFS_IMAGES=DIR	power-loss model on: crash images go to
 *				DIR/N/ (N = 1, 2, ...)
 *   MAILREPD_VFS_SEED=N	seed of the generator that picks crash
 *				points and what each cut keeps
 *   MAILREPD_VFS_EVERY=N	mean number of writes, syncs and truncates
 *				between two crash points (default 50)
 *   MAILREPD_VFS_MAX=N		crash images at most (default 100)
 *   MAILREPD_VFS_EXIT=1	exit hard (status 77) after the first image
 *				instead of going on to the next point
 *   MAILREPD_VFS_NOSYNC=1	weakened syncing, to prove the harness: a
 *				sync makes nothing durable in the model
 *   MAILREPD_VFS_OFF_LOOP=1	crash points only among the events of
 *				threads other than the one that loaded
 *				the program (the server's checkpointer):
 *				every cut comes in the middle of a
 *				checkpoint
 *
 * With the model on, each sync of a main database (in WAL mode: a
 * checkpoint) is logged on stderr, so a harness can tell that its cuts
 * reached checkpoints.
 *   MAILREPD_VFS_FAULTS=PATH	while PATH exists, it holds one line
 *				"GEN OP N ERR [on]": fail the Nth OP (read,
 *				write, sync, truncate) counted from when
 *				generation GEN appeared, with ERR (ioerr or
 *				full); with "on" every later OP fails too.
 *				Each injected fault is logged on stderr,
 *				and so is the count of OP when its
 *				generation ends (the file goes or a new
 *				one comes): "generation GEN counted N OP".
 *   MAILREPD_VFS_PCACHE=N	every page cache of SQLite's holds at most
 *				N pages (however large the connection
 *				asks for), so that reads of what was read
 *				before reach this VFS, and its faults,
 *				instead of coming from memory
 *
 * The power-loss model keeps, per file, a shadow of its content as of its
 * last sync and the set of 512-byte sectors written since.  A crash image
 * starts from the shadow; each dirty sector then holds its new content,
 * its old content, or (torn) a new prefix and an old rest, chosen at
 * random and independently, which also covers any reordering of the
 * writes.  A size changed since the last sync is either kept or lost.  A
 * file created by this process exists after the cut only once its
 * directory was synced: SQLite syncs it on the first sync of a journal
 * or WAL it created.  The -shm file is never in an image: it is not
 * durable and SQLite rebuilds it.  Each image holds the files and a file
 * CRASH with the CLOCK_MONOTONIC time at which the cut was taken (the
 * server is stopped in the VFS from then until the image is written), so
 * a harness knows which replies the client had received before the cut.
 *
 * The server checkpoints on a thread of its own: one mutex (recursive)
 * holds every method that reads or changes the model or the faults, so
 * that a cut sees the files as one instant left them.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define SECTOR		512
#define CRASH_STATUS	77
#define MAX_FILES	32

/* One file as the model knows it, shared by every handle on it. */
struct tfile {
	char		 path[PATH_MAX];
	int		 durable;	/* its directory entry survives a cut */
	unsigned char	*shadow;	/* content as of the last sync */
	int64_t		 shadow_size;
	unsigned char	*dirty;		/* one byte per sector written since */
	int64_t		 ndirty;	/* sectors the array covers */
};

/* One open handle: the unix VFS's file follows this header. */
struct thandle {
	sqlite3_file	 base;
	struct tfile	*tf;		/* NULL: not modelled (temp files) */
	int		 dirsync;	/* first sync also syncs the directory */
	int		 main_db;	/* in WAL mode, synced by checkpoints */
	sqlite3_file	 real[];
};

enum fault_op { OP_READ, OP_WRITE, OP_SYNC, OP_TRUNCATE, NOPS };

static const char *const op_names[NOPS] = { "read", "write", "sync",
    "truncate" };
static const int op_ioerr[NOPS] = { SQLITE_IOERR_READ, SQLITE_IOERR_WRITE,
    SQLITE_IOERR_FSYNC, SQLITE_IOERR_TRUNCATE };

static struct {
	sqlite3_vfs	*real;
	const char	*arm;
	const char	*images;
	uint64_t	 rng;
	long		 every, max, made;
	int		 exit_after, nosync;
	int		 off_loop;	/* cut only on other threads */
	pthread_t	 loop;		/* the thread that loaded us */
	pthread_mutex_t	 lock;		/* every method touching T */
	long		 next_crash;	/* event number of the next cut */
	long		 events;
	struct tfile	*files[MAX_FILES];
	const char	*faults;
	long		 fault_gen;
	enum fault_op	 fail_op;
	long		 fail_at, op_count[NOPS];
	int		 fail_err, fail_on;
	int		 counting;	/* a generation is counting */
	sqlite3_pcache_methods2 pcache;	/* SQLite's own page cache */
	int		 pcache_max;	/* MAILREPD_VFS_PCACHE, or 0 */
} T;

static sqlite3_vfs tvfs;
static const sqlite3_io_methods tmethods;

/* xorshift64*: small, seeded, the same sequence on every machine. */
static uint64_t
rnd(void)
{
	T.rng ^= T.rng >> 12;
	T.rng ^= T.rng << 25;
	T.rng ^= T.rng >> 27;
	return T.rng * 2685821657736338717ULL;
}

static long
rnd_below(long n)
{
	return n <= 0 ? 0 : (long)(rnd() % (uint64_t)n);
}

static long
env_long(const char *name, long dflt)
{
	const char	*v = getenv(name);

	return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : dflt;
}

static int
armed(void)
{
	if (T.off_loop && pthread_equal(pthread_self(), T.loop))
		return 0;
	return T.arm == NULL || access(T.arm, F_OK) == 0;
}

/* Reads len bytes at off of fd into buf; zeros past its end. */
static void
read_at(int fd, int64_t off, unsigned char *buf, size_t len)
{
	memset(buf, 0, len);
	if (fd >= 0 && pread(fd, buf, len, off) < 0)
		memset(buf, 0, len);
}

static int64_t
real_size(const char *path)
{
	struct stat	 sb;

	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* Grows tf's arrays to cover size bytes; aborts when memory runs out. */
static void
tfile_cover(struct tfile *tf, int64_t size)
{
	int64_t		 n = (size + SECTOR - 1) / SECTOR;
	unsigned char	*p;

	if (n <= tf->ndirty)
		return;
	if ((p = realloc(tf->dirty, (size_t)n)) == NULL)
		abort();
	memset(p + tf->ndirty, 0, (size_t)(n - tf->ndirty));
	tf->dirty = p;
	tf->ndirty = n;
}

/* The model's record of path, made on its first open. */
static struct tfile *
tfile_get(const char *path, int existed)
{
	struct tfile	*tf;
	int		 i, fd, free_slot = -1;

	for (i = 0; i < MAX_FILES; i++) {
		if (T.files[i] != NULL && strcmp(T.files[i]->path, path) == 0)
			return T.files[i];
		if (T.files[i] == NULL && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0 || (tf = calloc(1, sizeof(*tf))) == NULL)
		abort();
	snprintf(tf->path, sizeof(tf->path), "%s", path);
	tf->durable = existed;
	tf->shadow_size = real_size(path);
	if ((tf->shadow = malloc((size_t)tf->shadow_size + 1)) == NULL)
		abort();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	read_at(fd, 0, tf->shadow, (size_t)tf->shadow_size);
	if (fd >= 0)
		close(fd);
	T.files[free_slot] = tf;
	return tf;
}

static void
tfile_forget(const char *path)
{
	int	 i;

	for (i = 0; i < MAX_FILES; i++)
		if (T.files[i] != NULL && strcmp(T.files[i]->path, path) == 0) {
			free(T.files[i]->shadow);
			free(T.files[i]->dirty);
			free(T.files[i]);
			T.files[i] = NULL;
		}
}

/*
 * A sync: the file as it is now becomes the shadow.  Only the sectors
 * written since change; a size grown without writes reads as zeros.
 */
static void
tfile_synced(struct tfile *tf)
{
	int64_t		 size = real_size(tf->path), sec, end;
	unsigned char	*p;
	int		 fd = open(tf->path, O_RDONLY | O_CLOEXEC);

	if ((p = realloc(tf->shadow, (size_t)size + 1)) == NULL)
		abort();
	if (size > tf->shadow_size)
		memset(p + tf->shadow_size, 0, (size_t)(size - tf->shadow_size));
	tf->shadow = p;
	tf->shadow_size = size;
	for (sec = 0; sec < tf->ndirty && sec * SECTOR < size; sec++) {
		if (!tf->dirty[sec])
			continue;
		end = sec * SECTOR + SECTOR < size ? sec * SECTOR + SECTOR :
		    size;
		read_at(fd, sec * SECTOR, p + sec * SECTOR,
		    (size_t)(end - sec * SECTOR));
	}
	if (fd >= 0)
		close(fd);
	memset(tf->dirty, 0, (size_t)tf->ndirty);
}

/* Marks every file in dir's entry as durable (the directory was synced). */
static void
dir_synced(const char *path)
{
	const char	*slash = strrchr(path, '/');
	size_t		 dlen = slash ? (size_t)(slash - path) : 0;
	int		 i;

	for (i = 0; i < MAX_FILES; i++)
		if (T.files[i] != NULL &&
		    strncmp(T.files[i]->path, path, dlen) == 0 &&
		    strchr(T.files[i]->path + dlen + 1, '/') == NULL)
			T.files[i]->durable = 1;
}

/* What one dirty sector holds after the cut, written into img. */
static void
cut_sector(int fd, int64_t sec, unsigned char *img, int64_t img_size,
    long keep_pct)
{
	unsigned char	 now[SECTOR];
	int64_t		 off = sec * SECTOR;
	size_t		 len = (size_t)(img_size - off < SECTOR ?
			    img_size - off : SECTOR);
	long		 r = rnd_below(100);

	if (r >= keep_pct)
		return;			/* lost: the shadow's bytes stay */
	read_at(fd, off, now, sizeof(now));
	if (rnd_below(16) == 0)		/* torn: a new prefix, an old rest */
		len = (size_t)rnd_below((long)len);
	memcpy(img + off, now, len);
}

/* Writes what tf could hold after a power cut into dir. */
static void
cut_file(const struct tfile *tf, const char *dir, long keep_pct)
{
	char		 out[2 * PATH_MAX];
	const char	*base = strrchr(tf->path, '/');
	int64_t		 now_size = real_size(tf->path), img_size, sec;
	unsigned char	*img;
	FILE		*f;
	int		 fd;

	if (!tf->durable && rnd_below(2) == 0)
		return;			/* its directory entry was lost */
	img_size = rnd_below(2) ? now_size : tf->shadow_size;
	if ((img = calloc(1, (size_t)img_size + 1)) == NULL)
		abort();
	memcpy(img, tf->shadow, (size_t)(tf->shadow_size < img_size ?
	    tf->shadow_size : img_size));
	fd = open(tf->path, O_RDONLY | O_CLOEXEC);
	for (sec = 0; sec < tf->ndirty && sec * SECTOR < img_size &&
	    sec * SECTOR < now_size; sec++)
		if (tf->dirty[sec])
			cut_sector(fd, sec, img, img_size, keep_pct);
	if (fd >= 0)
		close(fd);
	snprintf(out, sizeof(out), "%s/%s", dir, base ? base + 1 : tf->path);
	if ((f = fopen(out, "w")) == NULL ||
	    fwrite(img, 1, (size_t)img_size, f) != (size_t)img_size ||
	    fclose(f) != 0)
		abort();
	free(img);
}

/*
 * A crash point: writes image number T.made + 1 (to a temporary name,
 * renamed when whole), then exits hard when asked to.
 */
static void
power_cut(void)
{
	char		 dir[2 * PATH_MAX], tmp[PATH_MAX];
	struct timespec	 ts;
	long		 keep_pct = rnd_below(101);
	FILE		*f;
	int		 i;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	T.made++;
	snprintf(dir, sizeof(dir), "%s/%ld", T.images, T.made);
	snprintf(tmp, sizeof(tmp), "%s/tmp.%ld", T.images, T.made);
	if (mkdir(tmp, 0700) < 0)
		abort();
	for (i = 0; i < MAX_FILES; i++)
		if (T.files[i] != NULL)
			cut_file(T.files[i], tmp, keep_pct);
	snprintf(dir, sizeof(dir), "%s/CRASH", tmp);
	if ((f = fopen(dir, "w")) == NULL)
		abort();
	fprintf(f, "%lld.%09ld %ld %ld\n", (long long)ts.tv_sec, ts.tv_nsec,
	    T.events, keep_pct);
	fclose(f);
	snprintf(dir, sizeof(dir), "%s/%ld", T.images, T.made);
	if (rename(tmp, dir) < 0)
		abort();
	if (T.exit_after)
		_exit(CRASH_STATUS);
	T.next_crash = T.events + 1 + rnd_below(2 * T.every);
}

/* Counts a write, sync or truncate; cuts the power when its turn comes. */
static void
event(void)
{
	if (T.images == NULL || T.made >= T.max || !armed())
		return;
	if (++T.events >= T.next_crash)
		power_cut();
}

/*
 * Reads the fault file: no file, or a line that does not parse, injects
 * nothing; a new generation starts the counts again.
 */
static void
fault_reload(void)
{
	char	 line[128], op[16], err[16], on[8] = "";
	long	 gen, at;
	FILE	*f;
	int	 i, n;

	T.fail_at = 0;
	n = 0;
	if (T.faults != NULL && (f = fopen(T.faults, "r")) != NULL) {
		n = fgets(line, sizeof(line), f) == NULL ? 0 : sscanf(line,
		    "%ld %15s %ld %15s %7s", &gen, op, &at, err, on);
		fclose(f);
	}
	for (i = 0; n >= 4 && i < NOPS && strcmp(op, op_names[i]) != 0; i++)
		;
	if (T.counting && (n < 4 || i == NOPS || gen != T.fault_gen)) {
		fprintf(stderr, "testvfs: generation %ld counted %ld %s\n",
		    T.fault_gen, T.op_count[T.fail_op], op_names[T.fail_op]);
		T.counting = 0;
	}
	if (n < 4 || i == NOPS)
		return;
	if (gen != T.fault_gen)
		memset(T.op_count, 0, sizeof(T.op_count));
	T.counting = 1;
	T.fault_gen = gen;
	T.fail_op = (enum fault_op)i;
	T.fail_at = at;
	T.fail_err = strcmp(err, "full") == 0 ? SQLITE_FULL : SQLITE_IOERR;
	T.fail_on = strcmp(on, "on") == 0;
}

/* Whether this OP is the one to fail (counting it). */
static int
fault(enum fault_op op, const struct thandle *h)
{
	fault_reload();
	if (T.fail_at <= 0 || op != T.fail_op)
		return 0;
	T.op_count[op]++;
	if (T.op_count[op] != T.fail_at && !(T.fail_on &&
	    T.op_count[op] > T.fail_at))
		return 0;
	fprintf(stderr, "testvfs: failing %s #%ld of %s with %s (gen %ld)\n",
	    op_names[op], T.op_count[op], h->tf ? h->tf->path : "a temp file",
	    T.fail_err == SQLITE_FULL ? "SQLITE_FULL" : "SQLITE_IOERR",
	    T.fault_gen);
	return 1;
}

static int
fault_rc(enum fault_op op)
{
	return T.fail_err == SQLITE_FULL ? SQLITE_FULL : op_ioerr[op];
}

static int
t_close(sqlite3_file *f)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xClose(h->real);
}

static int
t_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct thandle	*h = (struct thandle *)f;
	int		 rc;

	pthread_mutex_lock(&T.lock);
	if (fault(OP_READ, h))
		rc = fault_rc(OP_READ);
	else
		rc = h->real->pMethods->xRead(h->real, buf, amt, off);
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int
t_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct thandle	*h = (struct thandle *)f;
	int64_t		 sec;
	int		 rc;

	pthread_mutex_lock(&T.lock);
	if (fault(OP_WRITE, h)) {
		rc = fault_rc(OP_WRITE);
		pthread_mutex_unlock(&T.lock);
		return rc;
	}
	if (h->tf != NULL)
		event();
	rc = h->real->pMethods->xWrite(h->real, buf, amt, off);
	if (rc == SQLITE_OK && h->tf != NULL && amt > 0) {
		tfile_cover(h->tf, off + amt);
		for (sec = off / SECTOR; sec <= (off + amt - 1) / SECTOR; sec++)
			h->tf->dirty[sec] = 1;
	}
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int
t_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct thandle	*h = (struct thandle *)f;
	int		 rc;

	pthread_mutex_lock(&T.lock);
	if (fault(OP_TRUNCATE, h))
		rc = fault_rc(OP_TRUNCATE);
	else {
		if (h->tf != NULL)
			event();
		rc = h->real->pMethods->xTruncate(h->real, size);
	}
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int
t_sync(sqlite3_file *f, int flags)
{
	struct thandle	*h = (struct thandle *)f;
	int		 rc;

	pthread_mutex_lock(&T.lock);
	if (fault(OP_SYNC, h)) {
		rc = fault_rc(OP_SYNC);
		pthread_mutex_unlock(&T.lock);
		return rc;
	}
	if (T.images == NULL) {
		/*
		 * No power-loss model: no shadow to keep (a copy of the
		 * whole file each sync), and the loop's I/O does not wait
		 * behind the checkpointer's sync.  On a store of 20,000
		 * messages both stalled the loop past a client's timeout.
		 */
		pthread_mutex_unlock(&T.lock);
		return h->real->pMethods->xSync(h->real, flags);
	}
	if (h->tf != NULL)
		event();
	rc = h->real->pMethods->xSync(h->real, flags);
	if (rc == SQLITE_OK && h->main_db)
		fprintf(stderr, "testvfs: checkpoint synced %s\n", h->tf->path);
	if (rc == SQLITE_OK && h->tf != NULL && !T.nosync) {
		tfile_synced(h->tf);
		if (h->dirsync)
			dir_synced(h->tf->path);
		h->dirsync = 0;
	}
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int
t_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xFileSize(h->real, size);
}

static int
t_lock(sqlite3_file *f, int lock)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xLock(h->real, lock);
}

static int
t_unlock(sqlite3_file *f, int lock)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xUnlock(h->real, lock);
}

static int
t_check_lock(sqlite3_file *f, int *out)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xCheckReservedLock(h->real, out);
}

static int
t_fcntl(sqlite3_file *f, int op, void *arg)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xFileControl(h->real, op, arg);
}

static int
t_sector(sqlite3_file *f)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xSectorSize(h->real);
}

static int
t_caps(sqlite3_file *f)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xDeviceCharacteristics(h->real);
}

static int
t_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xShmMap(h->real, pg, pgsz, extend, pp);
}

static int
t_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xShmLock(h->real, off, n, flags);
}

static void
t_shm_barrier(sqlite3_file *f)
{
	struct thandle	*h = (struct thandle *)f;

	h->real->pMethods->xShmBarrier(h->real);
}

static int
t_shm_unmap(sqlite3_file *f, int del)
{
	struct thandle	*h = (struct thandle *)f;

	return h->real->pMethods->xShmUnmap(h->real, del);
}

static const sqlite3_io_methods tmethods = {
	2, t_close, t_read, t_write, t_truncate, t_sync, t_size, t_lock,
	t_unlock, t_check_lock, t_fcntl, t_sector, t_caps, t_shm_map,
	t_shm_lock, t_shm_barrier, t_shm_unmap, NULL, NULL
};

/*
 * Opens through the unix VFS; a named main database, journal or WAL is
 * modelled, other files (temporary ones) only pass faults.
 */
static int
t_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out_flags)
{
	struct thandle	*h = (struct thandle *)f;
	int		 type = flags & 0xFFFFFF00, existed, rc;

	(void)vfs;
	pthread_mutex_lock(&T.lock);
	existed = name != NULL && access(name, F_OK) == 0;
	memset(h, 0, sizeof(*h));
	rc = T.real->xOpen(T.real, name, h->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		pthread_mutex_unlock(&T.lock);
		return rc;
	}
	h->base.pMethods = &tmethods;
	if (name != NULL && (type & (SQLITE_OPEN_MAIN_DB |
	    SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL |
	    SQLITE_OPEN_SUPER_JOURNAL))) {
		h->tf = tfile_get(name, existed);
		h->main_db = (type & SQLITE_OPEN_MAIN_DB) != 0;
		h->dirsync = (flags & SQLITE_OPEN_CREATE) &&
		    (type & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL |
		    SQLITE_OPEN_SUPER_JOURNAL));
	}
	pthread_mutex_unlock(&T.lock);
	return SQLITE_OK;
}

/* A deleted file is gone from the model; a synced delete syncs its dir. */
static int
t_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
	int	 rc;

	(void)vfs;
	pthread_mutex_lock(&T.lock);
	event();
	rc = T.real->xDelete(T.real, name, dirsync);
	if (rc == SQLITE_OK) {
		tfile_forget(name);
		if (dirsync && !T.nosync)
			dir_synced(name);
	}
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int
t_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return T.real->xAccess(T.real, name, flags, out);
}

static int
t_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return T.real->xFullPathname(T.real, name, n, out);
}

static int
t_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return T.real->xRandomness(T.real, n, out);
}

static int
t_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return T.real->xSleep(T.real, us);
}

static int
t_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return T.real->xCurrentTime(T.real, out);
}

static int
t_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return T.real->xGetLastError(T.real, n, out);
}

static int
t_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return T.real->xCurrentTimeInt64(T.real, out);
}

/*
 * MAILREPD_VFS_PCACHE: SQLite's page cache, its size capped.  Only the
 * size a cache is given changes; SQLite's own cache does the rest.
 * A new cache starts at the cap.
 */
static sqlite3_pcache *
pc_create(int page, int extra, int purgeable)
{
	sqlite3_pcache	*p = T.pcache.xCreate(page, extra, purgeable);

	if (p != NULL)
		T.pcache.xCachesize(p, T.pcache_max);
	return p;
}

/* A connection's cache_size, never above the cap. */
static void
pc_cachesize(sqlite3_pcache *p, int n)
{
	T.pcache.xCachesize(p, n < T.pcache_max ? n : T.pcache_max);
}

/* Installs the capped page cache; SQLite must not have started yet. */
static void
pcache_cap(void)
{
	sqlite3_pcache_methods2	 capped;

	if ((T.pcache_max = (int)env_long("MAILREPD_VFS_PCACHE", 0)) <= 0)
		return;
	if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &T.pcache) !=
	    SQLITE_OK) {
		fprintf(stderr, "testvfs: no page cache to cap\n");
		_exit(70);
	}
	capped = T.pcache;
	capped.xCreate = pc_create;
	capped.xCachesize = pc_cachesize;
	if (sqlite3_config(SQLITE_CONFIG_PCACHE2, &capped) != SQLITE_OK) {
		fprintf(stderr, "testvfs: SQLite started before its page "
		    "cache could be capped\n");
		_exit(70);
	}
}

/* Reads the environment and makes this VFS SQLite's default. */
__attribute__((constructor)) static void
testvfs_init(void)
{
	pthread_mutexattr_t	 attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&T.lock, &attr);
	pthread_mutexattr_destroy(&attr);
	T.loop = pthread_self();
	pcache_cap();
	T.off_loop = env_long("MAILREPD_VFS_OFF_LOOP", 0) != 0;
	T.real = sqlite3_vfs_find(NULL);
	T.arm = getenv("MAILREPD_VFS_ARM");
	T.images = getenv("MAILREPD_VFS_IMAGES");
	T.rng = (uint64_t)env_long("MAILREPD_VFS_SEED", 1) * 2 + 1;
	T.every = env_long("MAILREPD_VFS_EVERY", 50);
	T.max = env_long("MAILREPD_VFS_MAX", 100);
	T.exit_after = env_long("MAILREPD_VFS_EXIT", 0) != 0;
	T.nosync = env_long("MAILREPD_VFS_NOSYNC", 0) != 0;
	T.next_crash = 1 + rnd_below(2 * T.every);
	T.faults = getenv("MAILREPD_VFS_FAULTS");
	tvfs = *T.real;
	tvfs.iVersion = 2;
	tvfs.szOsFile = (int)sizeof(struct thandle) + T.real->szOsFile;
	tvfs.zName = "mailrepd-test";
	tvfs.pAppData = NULL;
	tvfs.xOpen = t_open;
	tvfs.xDelete = t_delete;
	tvfs.xAccess = t_access;
	tvfs.xFullPathname = t_fullpath;
	tvfs.xDlOpen = NULL;
	tvfs.xDlError = NULL;
	tvfs.xDlSym = NULL;
	tvfs.xDlClose = NULL;
	tvfs.xRandomness = t_random;
	tvfs.xSleep = t_sleep;
	tvfs.xCurrentTime = t_time;
	tvfs.xGetLastError = t_last_error;
	tvfs.xCurrentTimeInt64 = t_time64;
	sqlite3_vfs_register(&tvfs, 1);
}
