/*
 * test_imap_format.c — the IMAP response formatter (quoted strings,
 * literals, NIL, flags), modified UTF-7 names and sequence sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "imap_session.h"

/* A session with only what the formatter touches: output and state. */
struct fake {
	struct session		s;
	struct imap_session	ims;
};

static void
fake_init(struct fake *f, int utf8)
{
	static const struct proto_ops ops = { .name = "test" };

	memset(f, 0, sizeof(*f));
	f->s.ops = &ops;
	f->s.proto = &f->ims;
	f->ims.utf8 = utf8;
	buf_init(&f->s.out, 1 << 20);
}

/* What the session wrote, NUL-terminated (the formatter's tests hold no NUL). */
static const char *
fake_output(struct fake *f)
{
	assert_int_equal(buf_append(&f->s.out, "", 1), 0);
	return buf_ptr(&f->s.out);
}

static void
test_string_quoted_or_literal(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;
		int		 utf8;
		const char	*want;
	} cases[] = {
		{ "hello", 5, 0, "\"hello\"" },
		{ "", 0, 0, "\"\"" },
		{ "say \"hi\"", 8, 0, "\"say \\\"hi\\\"\"" },
		{ "back\\slash", 10, 0, "\"back\\\\slash\"" },
		{ "two\r\nlines", 10, 0, "{10}\r\ntwo\r\nlines" },
		{ "caf\xc3\xa9", 5, 0, "{5}\r\ncaf\xc3\xa9" },
		{ "caf\xc3\xa9", 5, 1, "\"caf\xc3\xa9\"" },
	};
	struct fake	 f;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		fake_init(&f, cases[i].utf8);
		imap_put_string(&f.s, cases[i].in, cases[i].len);
		assert_string_equal(fake_output(&f), cases[i].want);
		buf_free(&f.s.out);
	}
}

static void
test_string_long_and_nul(void **state)
{
	struct fake	 f;
	char		*big, head[32];

	(void)state;
	/* Past IMAP_MAX_QUOTED a string goes as a literal. */
	big = malloc(IMAP_MAX_QUOTED + 1);
	assert_non_null(big);
	memset(big, 'a', IMAP_MAX_QUOTED + 1);
	fake_init(&f, 0);
	imap_put_string(&f.s, big, IMAP_MAX_QUOTED + 1);
	snprintf(head, sizeof(head), "{%d}\r\n", IMAP_MAX_QUOTED + 1);
	assert_memory_equal(buf_ptr(&f.s.out), head, strlen(head));
	assert_int_equal(buf_used(&f.s.out), strlen(head) + IMAP_MAX_QUOTED + 1);
	buf_free(&f.s.out);
	free(big);
	/* A NUL can never be quoted. */
	fake_init(&f, 1);
	imap_put_string(&f.s, "a\0b", 3);
	assert_int_equal(buf_used(&f.s.out), 8);
	assert_memory_equal(buf_ptr(&f.s.out), "{3}\r\na\0b", 8);
	buf_free(&f.s.out);
}

static void
test_nstring_and_flags(void **state)
{
	struct fake	 f;

	(void)state;
	fake_init(&f, 0);
	imap_put_nstring(&f.s, NULL);
	session_write(&f.s, " ", 1);
	imap_put_nstring(&f.s, "x");
	session_write(&f.s, " ", 1);
	imap_put_flags(&f.s, 0, "", 0);
	session_write(&f.s, " ", 1);
	imap_put_flags(&f.s, FLAG_SEEN | FLAG_DRAFT | FLAG_ANSWERED,
	    "$Forwarded Junk", 1);
	assert_string_equal(fake_output(&f), "NIL \"x\" () (\\Answered \\Seen "
	    "\\Draft $Forwarded Junk \\Recent)");
	buf_free(&f.s.out);
	assert_int_equal(imap_flag_bit("\\seen"), FLAG_SEEN);
	assert_int_equal(imap_flag_bit("\\Deleted"), FLAG_DELETED);
	assert_int_equal(imap_flag_bit("Seen"), 0);
}

static void
test_mutf7(void **state)
{
	(void)state;
	assert_true(imap_mutf7_valid("INBOX"));
	assert_true(imap_mutf7_valid("Entw&APw-rfe"));		/* Entwürfe */
	assert_true(imap_mutf7_valid("&ZeVnLIqe-"));		/* 日本語 */
	assert_true(imap_mutf7_valid("Tom &- Jerry"));
	assert_true(imap_mutf7_valid("a/b/c"));
	assert_false(imap_mutf7_valid("Entw\xc3\xbcrfe"));	/* 8-bit */
	assert_false(imap_mutf7_valid("a&b"));			/* unclosed */
	assert_false(imap_mutf7_valid("&AP"));			/* no "-" */
	assert_false(imap_mutf7_valid("&A-"));			/* 6 bits */
	assert_false(imap_mutf7_valid("tab\there"));
}

/* Collects what imap_view_foreach() visits. */
static int
collect(void *arg, uint32_t seq)
{
	char	*out = arg;
	size_t	 n = strlen(out);

	snprintf(out + n, 256 - n, "%s%u", n ? "," : "", seq);
	return 0;
}

static void
test_seqset(void **state)
{
	static const uint32_t	 uids[] = { 2, 5, 7, 9 };
	struct imap_view	 v;
	struct imap_seqset	 set;
	char			 out[256];
	size_t			 i;

	(void)state;
	memset(&v, 0, sizeof(v));
	for (i = 0; i < 4; i++)
		assert_int_equal(imap_view_append(&v, uids[i], 0), 0);
	assert_int_equal(imap_seqset_parse("3:1,2,4:*", &set), 0);
	imap_seqset_resolve(&set, 4);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.r[0].lo, 1);
	assert_int_equal(set.r[0].hi, 4);
	imap_seqset_free(&set);

	/* UIDs: "*" is the highest UID; 10:* still names UID 9. */
	assert_int_equal(imap_seqset_parse("6:8,10:*", &set), 0);
	imap_seqset_resolve(&set, 9);
	out[0] = '\0';
	imap_view_foreach(&v, &set, 1, collect, out);
	assert_string_equal(out, "3,4");
	assert_true(imap_seqset_has(&set, 7));
	assert_false(imap_seqset_has(&set, 5));
	imap_seqset_free(&set);

	/* Sequence numbers past the end name nothing. */
	assert_int_equal(imap_seqset_parse("2,3:10", &set), 0);
	imap_seqset_resolve(&set, 4);
	out[0] = '\0';
	imap_view_foreach(&v, &set, 0, collect, out);
	assert_string_equal(out, "2,3,4");
	imap_seqset_free(&set);

	assert_int_equal(imap_seqset_parse("", &set), -1);
	assert_int_equal(imap_seqset_parse("0", &set), -1);
	assert_int_equal(imap_seqset_parse("1:", &set), -1);
	assert_int_equal(imap_seqset_parse("1,,2", &set), -1);
	assert_int_equal(imap_seqset_parse("4294967296", &set), -1);
	assert_int_equal(imap_seqset_parse("4294967295", &set), 0);
	imap_seqset_free(&set);
	imap_uidset_free(&v.msgs);
	free(v.index);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_quoted_or_literal),
		cmocka_unit_test(test_string_long_and_nul),
		cmocka_unit_test(test_nstring_and_flags),
		cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_seqset),
	};

	return cmocka_run_group_tests_name("imap_format", tests, NULL, NULL);
}
