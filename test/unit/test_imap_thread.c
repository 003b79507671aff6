/*
 * test_imap_thread.c — THREAD's algorithms without a session: RFC 5256's
 * rules one by one (references linking, dummies, duplicate and missing
 * Message-IDs, loops, merging by subject), ORDEREDSUBJECT, and a chain
 * as deep as a hostile mailbox can make it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_thread.h"

struct out {
	char	*s;
	size_t	 len, cap;
};

static void
collect(void *arg, const char *s, size_t n)
{
	struct out	*o = arg;

	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		assert_non_null(o->s);
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

static void
assert_threads(const struct thread_msg *m, uint32_t n,
    enum thread_algorithm a, const char *want)
{
	struct out	 o = { 0 };

	assert_int_equal(imap_thread(m, n, a, collect, &o), 0);
	if (strcmp(o.s != NULL ? o.s : "", want) != 0)
		fail_msg("threads \"%s\", want \"%s\"", o.s, want);
	free(o.s);
}

/* A message: number and seq i, date d, subject, reply, id, refs. */
#define MSG(i, d, subj, re, id, refs) \
	{ (i), (i), (d), (subj), (re), (id), (refs) }

static void
test_references_chain(void **state)
{
	const struct thread_msg	 m[] = {
		MSG(1, 10, "a", 0, "<1@x>", NULL),
		MSG(2, 20, "a", 1, "<2@x>", "<1@x>"),
		MSG(3, 30, "a", 1, "<3@x>", "<1@x> <2@x>"),
		MSG(4, 25, "a", 1, "<4@x>", "<1@x>"),
		MSG(5, 5, "b", 0, "<5@x>", NULL),
	};

	(void)state;
	/* 1 has two children (2 and 4 by date); 2's child is 3. */
	assert_threads(m, 5, THREAD_REFERENCES, "(5)(1 (2 3)(4))");
}

static void
test_references_dummies(void **state)
{
	const struct thread_msg	 m[] = {
		/* two replies to a message we do not hold */
		MSG(1, 10, "x", 1, "<1@x>", "<gone@x>"),
		MSG(2, 20, "y", 1, "<2@x>", "<gone@x>"),
		/* a reply whose parent chain has a missing middle */
		MSG(3, 30, "z", 0, "<3@x>", NULL),
		MSG(4, 40, "z", 1, "<4@x>", "<3@x> <mid@x>"),
	};

	(void)state;
	/* The root dummy keeps its two children; the middle one goes. */
	assert_threads(m, 4, THREAD_REFERENCES, "((1)(2))(3 4)");
}

static void
test_references_ids(void **state)
{
	const struct thread_msg	 m[] = {
		MSG(1, 10, "p", 0, "<same@x>", NULL),
		/* a duplicate Message-ID is a message of its own */
		MSG(2, 20, "q", 0, "<same@x>", NULL),
		MSG(3, 30, "r", 1, NULL, "<same@x>"),
		/* loops: a message referring to itself, and a cycle */
		MSG(4, 40, "s", 0, "<4@x>", "<4@x>"),
		MSG(5, 50, "t", 0, "<5@x>", "<6@x>"),
		MSG(6, 60, "t", 1, "<6@x>", "<5@x>"),
		/* garbage where IDs should be */
		MSG(7, 70, "u", 0, "no id", "<> < <<"),
	};

	(void)state;
	/*
	 * 3 replies to the first <same@x>; 5 names 6 its parent, then 6
	 * names 5 its own, which would loop: that link is not made.
	 */
	assert_threads(m, 7, THREAD_REFERENCES, "(1 3)(2)(4)(6 5)(7)");
}

/*
 * RFC 5256 step 1B: a message whose container was linked under a parent
 * by an earlier message's References loses that link, even when the
 * link its own References ask for would loop and is not made.
 */
static void
test_references_relink(void **state)
{
	const struct thread_msg	 m[] = {
		MSG(1, 17, "", 0, "<a@x>", NULL),
		/* links a -> c (a dummy yet) -> 2 */
		MSG(2, 15, "", 0, "<b@x>", "<a@x> <c@x>"),
		/* c names b its parent: a loop, but c leaves a all the same */
		MSG(3, 16, "", 0, "<c@x>", "<b@x>"),
	};

	(void)state;
	assert_threads(m, 3, THREAD_REFERENCES, "(3 2)(1)");
	/* without 1, the dummy <a@x> has no children left and goes */
	assert_threads(m + 1, 2, THREAD_REFERENCES, "(3 2)");
}

static void
test_references_subjects(void **state)
{
	const struct thread_msg	 m[] = {
		MSG(1, 10, "meeting", 0, "<1@x>", NULL),
		/* a reply that lost its References: joined by subject */
		MSG(2, 20, "meeting", 1, "<2@x>", NULL),
		/* two originals with one subject: a dummy holds both */
		MSG(3, 30, "lunch", 0, "<3@x>", NULL),
		MSG(4, 40, "lunch", 0, "<4@x>", NULL),
		/* empty subjects are never merged */
		MSG(5, 50, "", 0, "<5@x>", NULL),
		MSG(6, 60, "", 0, "<6@x>", NULL),
	};

	(void)state;
	assert_threads(m, 6, THREAD_REFERENCES,
	    "(1 2)((3)(4))(5)(6)");
}

static void
test_ordered_subject(void **state)
{
	const struct thread_msg	 m[] = {
		MSG(1, 30, "B", 0, NULL, NULL),
		MSG(2, 10, "a", 0, NULL, NULL),
		MSG(3, 20, "b", 1, NULL, NULL),
		MSG(4, 40, "A", 1, NULL, NULL),
		MSG(5, 50, "a", 1, NULL, NULL),
		MSG(6, 5, "c", 0, NULL, NULL),
	};

	(void)state;
	/* threads by the date of their first message; children likewise */
	assert_threads(m, 6, THREAD_ORDEREDSUBJECT, "(6)(2 (4)(5))(3 1)");
}

/*
 * A chain of n messages, each replying to the one before; `reverse`
 * lists them newest first, so that each message's reply is known before
 * it.  Either way one thread of every message, and no quadratic walk.
 */
static void
assert_deep_chain(uint32_t n, int reverse)
{
	struct thread_msg	*m = calloc(n, sizeof(*m));
	char			(*ids)[24] = calloc(n, sizeof(*ids));
	struct out		 o = { 0 };
	uint32_t		 i, k;

	assert_non_null(m);
	assert_non_null(ids);
	for (i = 0; i < n; i++)
		snprintf(ids[i], sizeof(ids[i]), "<%u@x>", i);
	for (i = 0; i < n; i++) {
		k = reverse ? n - 1 - i : i;
		m[i] = (struct thread_msg){ k + 1, i + 1, k, "deep", k > 0,
		    ids[k], k > 0 ? ids[k - 1] : NULL };
	}
	assert_int_equal(imap_thread(m, n, THREAD_REFERENCES, collect, &o),
	    0);
	assert_true(strncmp(o.s, "(1 2 3 ", 7) == 0);
	assert_int_equal(o.s[o.len - 1], ')');
	assert_null(strchr(o.s + 1, '('));
	free(o.s);
	free(m);
	free(ids);
}

static void
test_deep_chain(void **state)
{
	(void)state;
	assert_deep_chain(200000, 0);
	assert_deep_chain(200000, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_references_chain),
		cmocka_unit_test(test_references_dummies),
		cmocka_unit_test(test_references_ids),
		cmocka_unit_test(test_references_relink),
		cmocka_unit_test(test_references_subjects),
		cmocka_unit_test(test_ordered_subject),
		cmocka_unit_test(test_deep_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
