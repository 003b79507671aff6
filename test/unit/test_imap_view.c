/*
 * The compact view (imap_view.c) against a plain array of UIDs, the
 * model it replaced: sequence numbers, UIDs, \Recent and gone marks,
 * and the EXPUNGE and VANISHED responses of imap_view_drop_gone(),
 * after random appends, expunges elsewhere, and marks undone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "imap.h"
#include "imap_session.h"

#define MODEL_MAX	4000

/* The view as an array: what the old code kept. */
struct model {
	uint32_t	 uid[MODEL_MAX];
	int		 recent[MODEL_MAX];
	int		 gone[MODEL_MAX];
	uint32_t	 n;
};

struct fixture {
	struct session		 s;
	struct imap_session	 ims;
	struct imap_view	 v;
	struct model		 m;
	struct buf		 want;
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->s.ops = &imap_proto;
	f->s.fd = -1;
	buf_init(&f->s.out, IMAP_MAX_OUTPUT);
	buf_init(&f->want, IMAP_MAX_OUTPUT);
	f->s.proto = &f->ims;
	f->ims.view = &f->v;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	imap_uidset_free(&f->v.msgs);
	imap_uidset_free(&f->v.gone_uids);
	imap_uidset_free(&f->v.recent_uids);
	free(f->v.index);
	buf_free(&f->s.out);
	buf_free(&f->want);
	free(f);
	return 0;
}

/* Every question the view answers, asked of both. */
static void
check(const struct fixture *f)
{
	const struct imap_view	*v = &f->v;
	const struct model	*m = &f->m;
	uint32_t		 i, gone = 0, recent = 0, last;

	assert_int_equal(v->count, m->n);
	for (i = 0; i < m->n; i++) {
		assert_int_equal(imap_view_uid(v, i + 1), m->uid[i]);
		assert_int_equal(imap_view_seq(v, m->uid[i]), i + 1);
		assert_int_equal(imap_view_lower_bound(v, m->uid[i]), i);
		assert_int_equal(imap_view_is_gone(v, m->uid[i]), m->gone[i]);
		assert_int_equal(imap_view_is_recent(v, m->uid[i]),
		    m->recent[i]);
		gone += m->gone[i];
		recent += m->recent[i];
		/* a UID between two of the view's is not in it */
		if (i > 0 && m->uid[i] > m->uid[i - 1] + 1) {
			assert_int_equal(imap_view_seq(v, m->uid[i] - 1), 0);
			assert_int_equal(imap_view_lower_bound(v,
			    m->uid[i] - 1), i);
		}
	}
	assert_int_equal(imap_view_uid(v, m->n + 1), 0);
	assert_int_equal(v->gone, gone);
	assert_int_equal(v->recent, recent);
	last = m->n > 0 ? m->uid[m->n - 1] : 0;
	assert_int_equal(imap_view_last_uid(v), last);
	assert_int_equal(imap_view_lower_bound(v, last + 1), m->n);
}

/* Drops the gone messages from the model, writing what a client hears. */
static void
model_drop(struct fixture *f, int qresync)
{
	struct model	*m = &f->m;
	uint32_t	 i, out = 0, removed = 0, lo = 0, hi = 0;
	int		 n = 0;

	for (i = 0; qresync && i <= m->n; i++) {
		if (i < m->n && !m->gone[i])
			continue;
		if (i < m->n && lo != 0 && m->uid[i] == hi + 1) {
			hi++;
			continue;
		}
		if (lo != 0)
			buf_printf(&f->want, lo == hi ? "%s%u" : "%s%u:%u",
			    n++ ? "," : "* VANISHED ", lo, hi);
		if (i < m->n)
			lo = hi = m->uid[i];
	}
	if (n > 0)
		buf_printf(&f->want, "\r\n");
	for (i = 0; i < m->n; i++) {
		if (m->gone[i]) {
			if (!qresync)
				buf_printf(&f->want, "* %u EXPUNGE\r\n",
				    i + 1 - removed);
			removed++;
			continue;
		}
		m->uid[out] = m->uid[i];
		m->recent[out] = m->recent[i];
		m->gone[out++] = 0;
	}
	m->n = out;
}

/* Runs imap_view_drop_gone() and compares what it wrote. */
static void
drop(struct fixture *f, int qresync)
{
	buf_consume(&f->s.out, buf_used(&f->s.out));
	buf_consume(&f->want, buf_used(&f->want));
	f->ims.qresync = qresync;
	imap_view_drop_gone(&f->s, &f->v, 0);
	model_drop(f, qresync);
	assert_int_equal(buf_used(&f->s.out), buf_used(&f->want));
	assert_memory_equal(buf_ptr(&f->s.out), buf_ptr(&f->want),
	    buf_used(&f->want));
}

/* Appends uid to both (as new mail does). */
static void
append(struct fixture *f, uint32_t uid, int recent)
{
	struct model	*m = &f->m;

	assert_int_equal(imap_view_append(&f->v, uid, recent), 0);
	m->uid[m->n] = uid;
	m->recent[m->n] = recent;
	m->gone[m->n++] = 0;
}

/* Random appends (runs and holes), marks and drops, checked each time. */
static void
test_against_the_array(void **state)
{
	struct fixture	*f = *state;
	uint32_t	 uid = 0, i, k;
	int		 round;

	srand(17);
	for (round = 0; round < 300; round++) {
		k = (uint32_t)(rand() % 12);
		while (k-- > 0 && f->m.n < MODEL_MAX) {
			uid += rand() % 4 == 0 ? 1 + rand() % 5 : 1;
			append(f, uid, rand() % 3 == 0);
		}
		/* an UID already there changes nothing */
		if (f->m.n > 0)
			assert_int_equal(imap_view_append(&f->v, f->m.uid[0],
			    1), 0);
		for (k = (uint32_t)(rand() % 6); k > 0 && f->m.n > 0; k--) {
			i = (uint32_t)rand() % f->m.n;
			f->m.gone[i] = rand() % 5 != 0 || f->m.gone[i] == 0;
			assert_int_equal(imap_view_mark_gone(&f->v,
			    f->m.uid[i], f->m.gone[i]), 0);
		}
		/* a UID not in the view is never marked */
		assert_int_equal(imap_view_mark_gone(&f->v, uid + 100, 1), 0);
		check(f);
		if (rand() % 4 == 0)
			drop(f, rand() % 2);
		check(f);
	}
	/* everything goes at once: one range, numbers all the first's */
	for (i = 0; i < f->m.n; i++) {
		f->m.gone[i] = 1;
		assert_int_equal(imap_view_mark_gone(&f->v, f->m.uid[i], 1), 0);
	}
	drop(f, 0);
	check(f);
	assert_int_equal(f->v.msgs.n, 0);
}

/* A million consecutive UIDs are one range: a few bytes, not 8 MB. */
static void
test_a_big_mailbox_is_small(void **state)
{
	struct fixture	*f = *state;
	uint32_t	 uid;

	for (uid = 1; uid <= 1000000; uid++)
		assert_int_equal(imap_view_append(&f->v, uid, 0), 0);
	assert_int_equal(f->v.msgs.n, 1);
	assert_int_equal(imap_view_uid(&f->v, 765432), 765432);
	/* an expunge in the middle splits it, the numbers shift */
	assert_int_equal(imap_view_mark_gone(&f->v, 500000, 1), 0);
	assert_int_equal(imap_view_uid(&f->v, 500000), 500000);
	imap_view_drop_gone(&f->s, &f->v, 1);
	assert_int_equal(buf_used(&f->s.out), 0);	/* silent: CLOSE */
	assert_int_equal(f->v.msgs.n, 2);
	assert_int_equal(f->v.count, 999999);
	assert_int_equal(imap_view_uid(&f->v, 500000), 500001);
	assert_int_equal(imap_view_seq(&f->v, 1000000), 999999);
}

/*
 * A set of sequence numbers made a set of UIDs (an updating search's
 * keys) names the same messages as the array says, ranges that run past
 * the end or lie beyond it included.
 */
static void
test_seqs_to_uids(void **state)
{
	struct fixture		*f = *state;
	struct imap_seqset	 set, seqs;
	char			 text[256];
	size_t			 len;
	uint32_t		 uid = 0, i, k, lo, seq;
	int			 round;

	srand(7);
	for (i = 0; i < 1500; i++) {
		uid += rand() % 3 == 0 ? 1 + rand() % 4 : 1;
		append(f, uid, 0);
	}
	for (round = 0; round < 200; round++) {
		/* a few random ranges, and now and then "n:*" */
		len = 0;
		for (k = 1 + (uint32_t)(rand() % 5); k > 0; k--) {
			lo = 1 + (uint32_t)(rand() % (f->m.n + 20));
			len += (size_t)snprintf(text + len, sizeof(text) - len,
			    "%s%u:%u", len ? "," : "", lo, lo +
			    (uint32_t)(rand() % 300));
		}
		if (round % 7 == 0)
			snprintf(text + len, sizeof(text) - len, ",%u:*",
			    1 + (uint32_t)(rand() % f->m.n));
		assert_int_equal(imap_seqset_parse(text, &set), 0);
		assert_int_equal(imap_seqset_parse(text, &seqs), 0);
		imap_seqset_resolve(&set, f->m.n);
		imap_seqset_resolve(&seqs, f->m.n);
		assert_int_equal(imap_view_seqs_to_uids(&f->v, &set), 0);
		for (seq = 1; seq <= f->m.n; seq++)
			assert_int_equal(imap_seqset_has(&set,
			    f->m.uid[seq - 1]), imap_seqset_has(&seqs, seq));
		/* and no UID outside the view */
		for (k = 0; k < set.n; k++)
			for (i = set.r[k].lo; i <= set.r[k].hi; i++)
				assert_int_not_equal(imap_view_seq(&f->v, i), 0);
		imap_seqset_free(&set);
		imap_seqset_free(&seqs);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_against_the_array, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_a_big_mailbox_is_small,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_seqs_to_uids, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
