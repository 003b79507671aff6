/*
 * auth.h — password checks off the event loop.
 *
 * Checking a password costs PBKDF2 with PBKDF2_ITERATIONS rounds (tens
 * of milliseconds): on the loop's one thread, a crowd of clients sending
 * wrong passwords would stall every session.  So the loop looks up the
 * stored hash and hands (hash, password) to ONE worker thread through a
 * bounded queue; the worker touches neither the store nor sessions.  The
 * results come back through a queue whose descriptor (auth_fd()) the
 * loop polls, named by the id the loop gave: a session that is gone by
 * then loses its result harmlessly.  A full queue answers at once, never
 * blocks.
 *
 * A cache of recently verified credentials (AUTH_CACHE_ENTRIES for
 * AUTH_CACHE_SECONDS) lets a client that reconnects every minute log in
 * in microseconds.  An entry is an HMAC, under a key drawn at each
 * start, of the user, the password and the stored hash: it holds no
 * password, and a new stored hash (`user passwd`, `user del` then `add`)
 * matches no old entry.  Only successes are cached.
 *
 * Every function but the worker's own runs on the loop's thread.
 */
#ifndef MAILREPD_AUTH_H
#define MAILREPD_AUTH_H

#include <stdint.h>

/* Starts the worker and draws the cache key; returns 0, or -1. */
int	auth_start(void);

/* Stops the worker (after the check it is in) and forgets everything. */
void	auth_stop(void);

/* Readable when results wait for auth_results(); -1 when not started. */
int	auth_fd(void);

enum auth_status {
	AUTH_MATCH,		/* the cache knew it: the password is right */
	AUTH_QUEUED,		/* the result comes through auth_results() */
	AUTH_BUSY,		/* the queue is full: a temporary failure */
};

/*
 * Asks whether password is user's, whose stored hash is stored; NULL
 * for a user that does not exist (or cannot log in with a password):
 * that check costs the same and never matches.  id names the asker in
 * the result.  now_ms is the monotonic clock, for the cache.
 */
enum auth_status auth_check(uint64_t id, const char *user,
	    const char *password, const char *stored, int64_t now_ms);

/*
 * The asker id is gone: its check, if the worker has not begun it,
 * leaves the queue unchecked (a client that sends a password and
 * hangs up costs no hash); one under way ends with no one to tell.
 */
void	auth_cancel(uint64_t id);

/* Checks asked for whose results auth_results() has not handed over. */
unsigned auth_pending(void);

/*
 * Calls done(arg, id, match) for every finished check, in the order
 * they finished; a match is remembered in the cache from now_ms on.
 */
void	auth_results(void (*done)(void *, uint64_t, int), void *arg,
	    int64_t now_ms);

#endif /* MAILREPD_AUTH_H */
