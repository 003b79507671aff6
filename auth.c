/*
 * auth.c — password checks on one worker thread, and the cache of
 * verified credentials (see auth.h).
 *
 * A check lives in one of AUTH_QUEUE_LEN slots from auth_check() until
 * auth_results() hands its result over.  Slot numbers travel through two
 * rings under one mutex: `todo` (loop to worker) and `done` (worker to
 * loop, with a write to an eventfd the loop polls).  Whoever holds a
 * slot's number owns the slot, so its contents need no lock.  The cache
 * belongs to the loop alone.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"

struct check {
	uint64_t	 id;		/* the asker's */
	int		 known;		/* a real user's real hash */
	int		 match;		/* the worker's answer */
	uint8_t		 tag[HMAC_LEN];	/* the cache entry a match makes */
	char		 password[PASSWORD_MAX + 1];
	char		 stored[PASSWORD_HASH_MAX + 1];
};

/* Slot numbers, first in first out. */
struct ring {
	int		 slot[AUTH_QUEUE_LEN];
	unsigned	 first;
	unsigned	 count;
};

struct cached {
	uint8_t		 tag[HMAC_LEN];
	int64_t		 until;		/* now_ms it expires; 0: free */
};

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;		/* the worker's: todo or stopping */
	pthread_t	 thread;
	int		 running;
	int		 stopping;	/* under lock */
	int		 fd;		/* eventfd: results are in `done` */
	struct ring	 todo;		/* under lock */
	struct ring	 done;		/* under lock */
	int		 taken[AUTH_QUEUE_LEN];	/* the loop's: slot in use */
	struct check	 checks[AUTH_QUEUE_LEN];
	char		*dummy;		/* checked for unknown users */
	uint8_t		 key[HMAC_LEN];	/* the cache's, drawn at start */
	struct cached	 cache[AUTH_CACHE_ENTRIES];
} a = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.fd = -1,
};

static void
ring_push(struct ring *r, int slot)
{
	r->slot[(r->first + r->count++) % AUTH_QUEUE_LEN] = slot;
}

/* The oldest slot number, or -1 when the ring is empty. */
static int
ring_pop(struct ring *r)
{
	int	 slot;

	if (r->count == 0)
		return -1;
	slot = r->slot[r->first];
	r->first = (r->first + 1) % AUTH_QUEUE_LEN;
	r->count--;
	return slot;
}

/* Tells the loop that `done` has something (called under the lock). */
static void
notify_loop(void)
{
	uint64_t	 one = 1;
	ssize_t		 n = write(a.fd, &one, sizeof(one));

	(void)n;	/* only fails when 2^64 wake-ups are unread */
}

/*
 * The worker: takes the oldest check, hashes without the lock held, and
 * puts the answer on `done`.  It never sees the store or a session.
 */
static void *
worker(void *unused)
{
	struct check	*c;
	int		 slot, match;

	(void)unused;
	pthread_mutex_lock(&a.lock);
	while (!a.stopping) {
		if ((slot = ring_pop(&a.todo)) < 0) {
			pthread_cond_wait(&a.wake, &a.lock);
			continue;
		}
		pthread_mutex_unlock(&a.lock);
		c = &a.checks[slot];
		match = crypto_password_verify(c->password, c->stored) &&
		    c->known;
		explicit_bzero(c->password, sizeof(c->password));
		pthread_mutex_lock(&a.lock);
		c->match = match;
		ring_push(&a.done, slot);
		notify_loop();
	}
	pthread_mutex_unlock(&a.lock);
	return NULL;
}

/* Forgets every check, the cache and the key (the worker is stopped). */
static void
forget_all(void)
{
	free(a.dummy);
	a.dummy = NULL;
	memset(&a.todo, 0, sizeof(a.todo));
	memset(&a.done, 0, sizeof(a.done));
	memset(a.taken, 0, sizeof(a.taken));
	explicit_bzero(a.checks, sizeof(a.checks));
	explicit_bzero(a.key, sizeof(a.key));
	explicit_bzero(a.cache, sizeof(a.cache));
}

int
auth_start(void)
{
	sigset_t	 all, old;
	int		 rc;

	if (a.running)
		return 0;
	if (crypto_random(a.key, sizeof(a.key)) < 0 ||
	    (a.dummy = crypto_password_dummy()) == NULL ||
	    (a.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		forget_all();
		return -1;
	}
	a.stopping = 0;
	/* Signals are the loop's (ppoll), never the worker's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a.thread, NULL, worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		close(a.fd);
		a.fd = -1;
		forget_all();
		errno = rc;
		return -1;
	}
	a.running = 1;
	return 0;
}

void
auth_stop(void)
{
	if (!a.running)
		return;
	pthread_mutex_lock(&a.lock);
	a.stopping = 1;
	pthread_cond_signal(&a.wake);
	pthread_mutex_unlock(&a.lock);
	pthread_join(a.thread, NULL);
	close(a.fd);
	a.fd = -1;
	a.running = 0;
	forget_all();
}

int
auth_fd(void)
{
	return a.fd;
}

/* The cache entry for a credential: HMAC(key, user NUL password NUL stored). */
static void
credential_tag(const char *user, const char *password, const char *stored,
    uint8_t tag[HMAC_LEN])
{
	const void	*part[] = { user, "", password, "", stored };
	size_t		 len[] = { strlen(user), 1, strlen(password), 1,
			    strlen(stored) };

	crypto_hmac_sha256(a.key, sizeof(a.key), part, len, 5, tag);
}

static int
cache_find(const uint8_t tag[HMAC_LEN], int64_t now_ms)
{
	size_t	 i;

	for (i = 0; i < AUTH_CACHE_ENTRIES; i++)
		if (a.cache[i].until > now_ms &&
		    crypto_equal(a.cache[i].tag, tag, HMAC_LEN))
			return 1;
	return 0;
}

/* Remembers tag, in place of the entry that expires first. */
static void
cache_add(const uint8_t tag[HMAC_LEN], int64_t now_ms)
{
	struct cached	*e = &a.cache[0];
	size_t		 i;

	for (i = 0; i < AUTH_CACHE_ENTRIES; i++) {
		if (crypto_equal(a.cache[i].tag, tag, HMAC_LEN)) {
			e = &a.cache[i];
			break;
		}
		if (a.cache[i].until < e->until)
			e = &a.cache[i];
	}
	memcpy(e->tag, tag, HMAC_LEN);
	e->until = now_ms + (int64_t)AUTH_CACHE_SECONDS * 1000;
}

/* A free slot's number, or -1 when AUTH_QUEUE_LEN checks are out. */
static int
slot_take(void)
{
	int	 i;

	for (i = 0; i < AUTH_QUEUE_LEN; i++)
		if (!a.taken[i]) {
			a.taken[i] = 1;
			return i;
		}
	return -1;
}

enum auth_status
auth_check(uint64_t id, const char *user, const char *password,
    const char *stored, int64_t now_ms)
{
	struct check	*c;
	uint8_t		 tag[HMAC_LEN];
	int		 known, slot;

	known = stored != NULL && strlen(stored) <= PASSWORD_HASH_MAX &&
	    strlen(password) <= PASSWORD_MAX;
	if (!a.running)
		return AUTH_BUSY;
	if (!known)
		stored = a.dummy;
	/* The same work for an unknown user: the dummy is never cached. */
	credential_tag(user, password, stored, tag);
	if (cache_find(tag, now_ms))
		return AUTH_MATCH;
	if ((slot = slot_take()) < 0)
		return AUTH_BUSY;
	c = &a.checks[slot];
	c->id = id;
	c->known = known;
	c->match = 0;
	memcpy(c->tag, tag, sizeof(tag));
	/* Cut to size only when !known: then nothing can match anyway. */
	strncpy(c->password, password, PASSWORD_MAX);
	c->password[PASSWORD_MAX] = '\0';
	strncpy(c->stored, stored, PASSWORD_HASH_MAX);
	c->stored[PASSWORD_HASH_MAX] = '\0';
	pthread_mutex_lock(&a.lock);
	ring_push(&a.todo, slot);
	pthread_cond_signal(&a.wake);
	pthread_mutex_unlock(&a.lock);
	return AUTH_QUEUED;
}

void
auth_cancel(uint64_t id)
{
	struct ring	 kept = { .first = 0 };
	int		 slot;

	if (!a.running)
		return;
	pthread_mutex_lock(&a.lock);
	while ((slot = ring_pop(&a.todo)) >= 0) {
		if (a.checks[slot].id != id) {
			ring_push(&kept, slot);
			continue;
		}
		/* Off the ring, the slot is the loop's again. */
		explicit_bzero(&a.checks[slot], sizeof(a.checks[slot]));
		a.taken[slot] = 0;
	}
	a.todo = kept;
	pthread_mutex_unlock(&a.lock);
}

unsigned
auth_pending(void)
{
	unsigned	 n = 0;
	int		 i;

	for (i = 0; i < AUTH_QUEUE_LEN; i++)
		n += a.taken[i] != 0;
	return n;
}

void
auth_results(void (*done)(void *, uint64_t, int), void *arg, int64_t now_ms)
{
	struct check	*c;
	uint64_t	 wakeups, id;
	ssize_t		 n;
	int		 slot, match;

	/* Resets the counter; every result is taken below either way. */
	n = read(a.fd, &wakeups, sizeof(wakeups));
	(void)n;
	for (;;) {
		pthread_mutex_lock(&a.lock);
		slot = ring_pop(&a.done);
		pthread_mutex_unlock(&a.lock);
		if (slot < 0)
			return;
		c = &a.checks[slot];
		if (c->match)
			cache_add(c->tag, now_ms);
		id = c->id;
		match = c->match;
		explicit_bzero(c, sizeof(*c));
		a.taken[slot] = 0;
		done(arg, id, match);
	}
}
