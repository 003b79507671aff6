/*
 * store_wal.c — the WAL's checkpoints, off the event loop.
 *
 * SQLite copies the WAL back into the database (a checkpoint) on its own,
 * inside the COMMIT that takes the WAL past 1,000 pages: on the loop's
 * thread, for as long as writing and syncing those pages takes (1.46 s
 * seen during a MOVE of 20,000 on a loaded disk).  The server's
 * connection turns that off (its WAL hook takes the place of SQLite's)
 * and hands the work to one thread with its own connection, which runs
 * PASSIVE checkpoints: SQLite runs them beside a writer and readers in
 * WAL mode, and they take no lock that a writer or a reader waits for.
 *
 * What bounds the WAL:
 * - a commit that leaves STORE_CHECKPOINT_PAGES or more in the WAL wakes
 *   the thread; once the thread has copied every page, the next write
 *   starts the WAL over, and SQLite truncates it to STORE_WAL_LIMIT;
 * - a writer faster than the thread: once the WAL holds
 *   STORE_WAL_PAUSE_PAGES, store_write_try() answers STORE_BUSY (the
 *   writes wait, the loop does not) until a checkpoint begun after the
 *   last commit has ended;
 * - a reader (of another process, or a snapshot the loop keeps) keeps
 *   the pages written after its snapshot from being copied: the WAL then
 *   grows for as long as that reader lasts, as it would without this
 *   thread, each write past the pause waiting for one more pass;
 * - a trim (wal_truncate(): a WAL past STORE_WAL_LIMIT, a full disk)
 *   makes the thread truncate the WAL after a pass that copied it all.
 *   That takes the write lock, without waiting: while the loop holds it
 *   the trim waits for the next request, and while the truncate holds it
 *   the loop's writes wait for a later iteration (STORE_BUSY).
 *
 * The thread shares only `struct checkpointer`'s requests and answers
 * with the loop, under its mutex, and logs each checkpoint
 * (store.checkpoint thread=checkpointer).  Durability does not change:
 * every commit syncs the WAL on the loop's connection (synchronous=FULL)
 * before a client hears of it; a checkpoint syncs the WAL before it
 * copies pages and the database after, on the thread's connection.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

struct checkpointer {
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;		/* the thread's: a request or stop */
	pthread_t	 thread;
	sqlite3		*db;		/* the thread's own connection */
	int		 stopping;	/* under lock */
	int		 trim;		/* under lock: truncate after the pass */
	uint64_t	 asked;		/* under lock: requests made */
	uint64_t	 answered;	/* under lock: the last request that a
					   finished checkpoint began after */
};

/*
 * Asks the thread for a checkpoint (and a truncate after it when trim);
 * returns the request's number, which store_wal_answered() reaches once
 * a checkpoint begun after it has ended.  Never waits but for the
 * mutex, which the thread holds only to read and write the counters.
 */
static uint64_t
checkpoint_ask(struct checkpointer *c, int trim)
{
	uint64_t	 n;

	pthread_mutex_lock(&c->lock);
	n = ++c->asked;
	c->trim |= trim;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * One checkpoint on the thread's connection: PASSIVE, then, when a trim
 * was asked for and every page is copied, TRUNCATE (no busy handler:
 * SQLITE_BUSY when the loop writes meanwhile).  Logged either way.
 */
static void
checkpoint_run(sqlite3 *db, int trim)
{
	long long	 start = log_clock_us();
	const char	*mode = "passive";
	int		 frames = 0, copied = 0, rc;

	rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    &frames, &copied);
	if (rc == SQLITE_OK && trim && copied == frames) {
		mode = "truncate";
		rc = sqlite3_wal_checkpoint_v2(db, NULL,
		    SQLITE_CHECKPOINT_TRUNCATE, &frames, &copied);
	}
	log_event(rc == SQLITE_OK || rc == SQLITE_BUSY ? LOG_LEVEL_INFO :
	    LOG_LEVEL_ERROR, "store.checkpoint", "thread=checkpointer "
	    "mode=%s frames=%d copied=%d ms=%lld rc=%d", mode, frames, copied,
	    (log_clock_us() - start) / 1000, rc);
}

/* The thread: one checkpoint for all the requests made before it began. */
static void *
checkpointer_main(void *arg)
{
	struct checkpointer	*c = arg;
	uint64_t		 asked;
	int			 trim;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		if (c->answered == c->asked) {
			pthread_cond_wait(&c->wake, &c->lock);
			continue;
		}
		asked = c->asked;
		trim = c->trim;
		c->trim = 0;
		pthread_mutex_unlock(&c->lock);
		checkpoint_run(c->db, trim);
		pthread_mutex_lock(&c->lock);
		c->answered = asked;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* The request a finished checkpoint answered last. */
static uint64_t
store_wal_answered(struct checkpointer *c)
{
	uint64_t	 n;

	pthread_mutex_lock(&c->lock);
	n = c->answered;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * SQLite's WAL hook, called on the loop's connection after each commit
 * with the pages now in the WAL: in place of SQLite's own checkpoint
 * there, a request to the thread each time the WAL passes another
 * STORE_CHECKPOINT_PAGES, and after every commit past the pause (which
 * then waits for a checkpoint begun after it).
 */
static int
wal_committed(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store	*st = arg;
	int		 before = st->wal_pages;

	(void)db;
	(void)name;
	st->wal_pages = pages;
	if (pages >= STORE_WAL_PAUSE_PAGES || pages /
	    STORE_CHECKPOINT_PAGES > before / STORE_CHECKPOINT_PAGES)
		st->ckpt_asked = checkpoint_ask(st->ckpt, 0);
	return SQLITE_OK;
}

int
store_checkpointer_start(struct store *st)
{
	struct checkpointer	*c;
	const char		*path = sqlite3_db_filename(st->db, "main");
	sigset_t		 all, old;
	int			 rc;

	if (st->ckpt != NULL)
		return 0;
	if (path == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, "PRAGMA synchronous = FULL", NULL,
		    NULL, NULL);
	if (rc == SQLITE_OK) {
		/* Signals are the loop's (ppoll), never the thread's. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&c->thread, NULL, checkpointer_main, c);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc != 0) {
		log_error("store.checkpoint", "msg=\"cannot start the "
		    "checkpointer\" rc=%d", rc);
		sqlite3_close(c->db);
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -1;
	}
	st->ckpt = c;
	sqlite3_wal_hook(st->db, wal_committed, st);	/* SQLite's is off */
	return 0;
}

void
store_checkpointer_stop(struct store *st)
{
	struct checkpointer	*c = st->ckpt;

	if (c == NULL)
		return;
	sqlite3_wal_autocheckpoint(st->db, STORE_CHECKPOINT_PAGES);
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
	st->ckpt = NULL;
}

int
wal_writes_wait(struct store *st)
{
	return st->ckpt != NULL && st->wal_pages >= STORE_WAL_PAUSE_PAGES &&
	    store_wal_answered(st->ckpt) < st->ckpt_asked;
}

void
wal_truncate(struct store *st)
{
	/* A command-line tool's store leaves it to SQLite's own. */
	if (st->ckpt != NULL)
		(void)checkpoint_ask(st->ckpt, 1);
}
