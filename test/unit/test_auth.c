/*
 * test_auth.c — the password checker: results by id through the polled
 * descriptor, the cache (hit, expiry, a new stored hash misses it, never
 * a wrong password or an unknown user), a full queue answers BUSY,
 * stopping with checks queued, and checks whose askers are gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdlib.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"

struct got {
	uint64_t	 id[AUTH_QUEUE_LEN];
	int		 match[AUTH_QUEUE_LEN];
	size_t		 n;
};

static void
record(void *arg, uint64_t id, int match)
{
	struct got	*g = arg;

	assert_true(g->n < AUTH_QUEUE_LEN);
	g->id[g->n] = id;
	g->match[g->n++] = match;
}

/* Waits until `want` results have come in; now_ms goes to the cache. */
static void
collect(struct got *g, size_t want, int64_t now_ms)
{
	struct pollfd	 pfd = { .fd = auth_fd(), .events = POLLIN };

	g->n = 0;
	while (g->n < want) {
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		auth_results(record, g, now_ms);
	}
	assert_int_equal(g->n, want);
}

/* Queues one check and waits for it; returns whether it matched. */
static int
hashed(uint64_t id, const char *user, const char *password,
    const char *stored, int64_t now_ms)
{
	struct got	 g;

	assert_int_equal(auth_check(id, user, password, stored, now_ms),
	    AUTH_QUEUED);
	collect(&g, 1, now_ms);
	assert_int_equal(g.id[0], id);
	return g.match[0];
}

static char	*hash;

static int
setup(void **state)
{
	(void)state;
	hash = crypto_password_hash("pw");
	return hash != NULL && auth_start() == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	auth_stop();
	free(hash);
	return 0;
}

static void
test_right_password_then_cached(void **state)
{
	struct got	 g;

	(void)state;
	assert_true(hashed(7, "alice", "pw", hash, 0));
	assert_int_equal(auth_check(8, "alice", "pw", hash, 1000), AUTH_MATCH);
	/* Another user name or password is another credential. */
	assert_int_equal(auth_check(9, "bob", "pw", hash, 1000), AUTH_QUEUED);
	assert_int_equal(auth_check(10, "alice", "pW", hash, 1000),
	    AUTH_QUEUED);
	collect(&g, 2, 1000);
	assert_int_equal(g.id[0], 9);
	assert_int_equal(g.id[1], 10);
	assert_false(g.match[1]);
	/* A wrong password is never remembered. */
	assert_false(hashed(11, "alice", "pW", hash, 2000));
}

static void
test_cache_expires(void **state)
{
	int64_t		 later = 5000 + (int64_t)AUTH_CACHE_SECONDS * 1000;

	(void)state;
	assert_true(hashed(1, "alice", "pw", hash, 5000));
	assert_int_equal(auth_check(2, "alice", "pw", hash, later - 1),
	    AUTH_MATCH);
	assert_true(hashed(3, "alice", "pw", hash, later));
}

/* `user passwd` stores a new hash: the old entry matches nothing. */
static void
test_new_stored_hash_misses_the_cache(void **state)
{
	char		*renewed = crypto_password_hash("pw");

	(void)state;
	assert_non_null(renewed);
	assert_true(hashed(1, "alice", "pw", hash, 0));
	assert_true(hashed(2, "alice", "pw", renewed, 0));
	free(renewed);
}

/* An unknown user is hashed too (it takes the queue) and never matches. */
static void
test_unknown_user_is_hashed_and_refused(void **state)
{
	(void)state;
	assert_false(hashed(1, "nobody", "pw", NULL, 0));
	assert_false(hashed(2, "nobody", "pw", NULL, 0));
	/* Not a stored hash the checker can use: no match either. */
	assert_false(hashed(3, "alice", "pw", PASSWORD_NONE, 0));
}

/* A full queue answers at once; stopping drops what waits. */
static void
test_full_queue_is_busy_and_stop_drops(void **state)
{
	uint64_t	 id;

	(void)state;
	for (id = 0; id < AUTH_QUEUE_LEN; id++)
		assert_int_equal(auth_check(id, "alice", "wrong", hash, 0),
		    AUTH_QUEUED);
	assert_int_equal(auth_check(id, "alice", "wrong", hash, 0),
	    AUTH_BUSY);
	assert_int_equal(auth_pending(), AUTH_QUEUE_LEN);
	auth_stop();
	assert_int_equal(auth_pending(), 0);
	assert_int_equal(auth_check(id, "alice", "pw", hash, 0), AUTH_BUSY);
	assert_int_equal(auth_start(), 0);
	assert_int_equal(auth_check(id, "alice", "pw", hash, 0), AUTH_QUEUED);
}

/*
 * Checks whose askers are gone leave the queue unchecked: of eight
 * queued behind a slow one, the six cancelled never come back, and the
 * queue has room for them again at once.  (The worker is at most one
 * check past the first while the loop cancels: PBKDF2 takes far longer
 * than the cancelling.)
 */
static void
test_cancelled_checks_leave_the_queue(void **state)
{
	struct got	 g;
	uint64_t	 id;

	(void)state;
	for (id = 1; id <= 8; id++)
		assert_int_equal(auth_check(id, "alice", "wrong", hash, 0),
		    AUTH_QUEUED);
	for (id = 3; id <= 8; id++)
		auth_cancel(id);
	assert_int_equal(auth_pending(), 2);
	auth_cancel(99);			/* no such asker */
	collect(&g, 2, 0);
	assert_int_equal(g.id[0], 1);
	assert_int_equal(g.id[1], 2);
	assert_int_equal(auth_pending(), 0);
	for (id = 0; id < AUTH_QUEUE_LEN; id++)
		assert_int_equal(auth_check(id, "alice", "wrong", hash, 0),
		    AUTH_QUEUED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_right_password_then_cached, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_expires, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_new_stored_hash_misses_the_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unknown_user_is_hashed_and_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_is_busy_and_stop_drops, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_checks_leave_the_queue,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
