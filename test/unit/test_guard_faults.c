/*
 * test_guard_faults.c — the mass-delete guard with SQLite's allocations
 * failing at every N: a count or look-up it cannot make fails the batch
 * (which is then retried), never answers for it.  One batch of client
 * expunges: half of alice's messages (not enough to pause her), all of
 * carol's (enough), and one of bob's, who is paused already.  Each run
 * either fails, or leaves alice applying, carol paused and bob's
 * record held, as a run without a failure does.  A failure once read as
 * an answer: the list of paused users unread (bob's record applied),
 * a mailbox's owner unread (carol's deletes uncounted), alice's message
 * count unread (taken as 0: alice paused).
 *
 * Each run opens the prepared store again, so that its statements are
 * prepared inside the run, and rolls its work back.
 * MAILREPD_FAULTS_LONG=1 runs every N, else about FAULT_RUNS of them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "guard.h"
#include "mime.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "unit_faults.h"

#define FAULT_RUNS	300	/* runs unless long */
#define MESSAGES	40	/* alice's and bob's; carol has half */

static const uint8_t ABOX[MAILBOX_ID_LEN] = "alice-inbox-id";
static const uint8_t BBOX[MAILBOX_ID_LEN] = "bob-inbox-idxx";
static const uint8_t CBOX[MAILBOX_ID_LEN] = "carol-inbox-id";
static const char BODY[] = "Subject: one\r\n\r\nthe body\r\n";

/* Adds user with an INBOX (uniqueid box) of n copies of BODY. */
static void
user_with_mail(struct store *st, const char *user, const uint8_t *box,
    uint32_t n)
{
	struct mime_result	 mime;
	struct store_blob_in	 b;
	enum store_apply	 what;
	uint8_t			 local[GUID_LEN];
	uint32_t		 uid;

	assert_int_equal(mime_parse_buffer(BODY, strlen(BODY), &mime), 0);
	memset(&b, 0, sizeof(b));
	b.fd = -1;
	b.mem = (const uint8_t *)BODY;
	b.size = strlen(BODY);
	b.mime = &mime;
	crypto_sha256(BODY, b.size, b.guid);
	assert_int_equal(store_apply_user_add(st, user, "$h", &what),
	    STORE_OK);
	assert_int_equal(store_apply_mailbox_create(st, user, box, "INBOX",
	    7, "", 1, &what), STORE_OK);
	for (uid = 1; uid <= n; uid++)
		assert_int_equal(store_apply_append(st, box, uid, b.guid, 0,
		    NULL, 1700000000, 1700000000, 0, &b, &what, local),
		    STORE_OK);
	mime_result_free(&mime);
}

/* The store of the runs: alice, bob (paused) and carol, with mail. */
static void
make_store(char dir[64])
{
	struct store	*st;

	strcpy(dir, "/dev/shm/mailrepd-guard-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &st), STORE_OK);
	user_with_mail(st, "alice", ABOX, MESSAGES);
	user_with_mail(st, "bob", BBOX, MESSAGES);
	user_with_mail(st, "carol", CBOX, MESSAGES / 2);
	assert_int_equal(store_pause_set(st, "bob", "many deletes"),
	    STORE_OK);
	assert_int_equal(store_commit(st), STORE_OK);
	store_close(st);
}

/* A client's expunge of uid in box, as the master sends it. */
static struct store_replog_rec
expunge(const uint8_t *box, uint32_t uid)
{
	struct store_replog_rec	 r;

	memset(&r, 0, sizeof(r));
	r.type = REC_MESSAGE_EXPUNGE;
	r.reason = REASON_CLIENT;
	r.has_mailbox = 1;
	memcpy(r.mailbox, box, MAILBOX_ID_LEN);
	r.uid = uid;
	return r;
}

/*
 * One batch on the store in dir at time now, with SQLite's allocation n
 * failing (none when n < 0), rolled back: it fails, or holds what it
 * must and only that.  Returns 1 when n was never reached; the
 * allocations made to *total.
 */
static int
batch_once(const char *dir, time_t now, long n, long *total)
{
	struct store_replog_rec	 recs[MESSAGES], r;
	const struct {
		const uint8_t	*box;
		int		 held;
	} want[] = { { ABOX, 0 }, { BBOX, 1 }, { CBOX, 1 } };
	struct settings		 set;
	struct server		 srv;
	size_t			 i, k = 0;
	int			 began, failed, held[3] = { 0, 0, 0 };
	int			 clean;

	memset(&set, 0, sizeof(set));
	set.guard_max_mailbox_deletes = DEFAULT_GUARD_MAX_MAILBOX_DELETES;
	set.guard_max_expunge_percent = DEFAULT_GUARD_MAX_EXPUNGE_PERCENT;
	set.guard_window = DEFAULT_GUARD_WINDOW;
	memset(&srv, 0, sizeof(srv));
	srv.settings = &set;
	srv.now = now;
	assert_int_equal(store_open(dir, &srv.store), STORE_OK);
	for (i = 0; i < MESSAGES / 2; i++) {
		recs[k++] = expunge(ABOX, (uint32_t)i + 1);
		recs[k++] = expunge(CBOX, (uint32_t)i + 1);
	}
	arm(n);
	guard_batch_start(&srv);
	for (i = 0; i < k; i++)
		guard_batch_add(&srv, &recs[i]);
	r = expunge(BBOX, 1);
	guard_batch_add(&srv, &r);
	began = store_batch_begin(srv.store) == STORE_OK;
	failed = !began || guard_batch_check(&srv) < 0;
	for (i = 0; i < 3 && !failed; i++) {
		r = expunge(want[i].box, MESSAGES / 2 + 1);
		failed = (held[i] = guard_hold(&srv, &r, NULL)) < 0;
	}
	clean = n < 0 || countdown >= 0;
	*total = counted;
	disarm();
	if (began)
		(void)store_batch_end(srv.store, STORE_IO);
	store_rollback(srv.store);
	store_close(srv.store);
	for (i = 0; i < 3 && !failed; i++)
		assert_int_equal(held[i], want[i].held);
	assert_true(!failed || !clean);
	return clean;
}

static void
test_guard_under_alloc_faults(void **state)
{
	char		 dir[64], cmd[128];
	const char	*env = getenv("MAILREPD_FAULTS_LONG");
	time_t		 now = time(NULL);
	long		 total, n, step, ignored;

	(void)state;
	make_store(dir);
	assert_true(batch_once(dir, now, -1, &total));
	step = env != NULL && strcmp(env, "1") == 0 ? 1 :
	    total / FAULT_RUNS + 1;
	/* Each run a window later: no run's counts carry into the next. */
	for (n = 0; n < total; n += step)
		(void)batch_once(dir, now += DEFAULT_GUARD_WINDOW + 1, n,
		    &ignored);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_guard_under_alloc_faults),
	};

	if (faults_install() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
