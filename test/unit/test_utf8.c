/*
 * test_utf8.c — unit tests of UTF-8 checking and of names in modified
 * UTF-7 (RFC 3501 5.1.3), whose expected forms are RFC 3501's example
 * and what Dovecot stores for the same names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

static void
assert_mutf7(const char *in, const char *want)
{
	char	 out[64];

	assert_int_equal(utf8_to_mutf7(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void
test_mutf7(void **state)
{
	char	 small[8];

	(void)state;
	assert_mutf7("INBOX/Sent", "INBOX/Sent");
	assert_mutf7("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	assert_mutf7("R&D", "R&-D");
	/* RFC 3501's example: ~peter/mail/<Japanese>/<Chinese> */
	assert_mutf7("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6"
	    "\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* Beyond U+FFFF: a surrogate pair. */
	assert_mutf7("\xf0\x9f\x98\x80", "&2D3eAA-");
	/* Controls are encoded too. */
	assert_mutf7("a\tb", "a&AAk-b");
	assert_int_equal(utf8_to_mutf7("\xc3\x28", small, sizeof(small)), -1);
	assert_int_equal(utf8_to_mutf7("\xed\xa0\x80", small, sizeof(small)),
	    -1);
	assert_int_equal(utf8_to_mutf7("Entw\xc3\xbcrfe", small,
	    sizeof(small)), -1);
}

/* Stored names back to UTF-8: the same pairs, and broken runs refused. */
static void
test_mutf7_to_utf8(void **state)
{
	static const char *const pairs[][2] = {
		{ "INBOX/Sent", "INBOX/Sent" },
		{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
		{ "R&D", "R&-D" },
		{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5"
		    "\xe6\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
		{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
		{ "a\tb", "a&AAk-b" },
	};
	static const char *const bad[] = {
		"&APw", "&-&", "&A-", "&APx-", "&2D0-", "&3gA-", "&2D3YPQ-",
		"a\xc3\xbc", "&AP!-",
	};
	char	 out[64], small[4];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(*pairs); i++) {
		assert_int_equal(mutf7_to_utf8(pairs[i][1], out, sizeof(out)),
		    0);
		assert_string_equal(out, pairs[i][0]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(mutf7_to_utf8(bad[i], out, sizeof(out)), -1);
	assert_int_equal(mutf7_to_utf8("Entw&APw-rfe", small, sizeof(small)),
	    -1);
	assert_int_equal(mutf7_to_utf8("abc", small, sizeof(small)), 0);
}

static void
test_utf8_len(void **state)
{
	(void)state;
	assert_int_equal(utf8_len((const unsigned char *)"a", 1), 1);
	assert_int_equal(utf8_len((const unsigned char *)"\xc3\xbc", 2), 2);
	assert_int_equal(utf8_len((const unsigned char *)"\xc3\xbc", 1), 0);
	assert_int_equal(utf8_len((const unsigned char *)"\xc0\xaf", 2), 0);
	assert_int_equal(utf8_len((const unsigned char *)"\xf4\x90\x80\x80",
	    4), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_mutf7_to_utf8),
		cmocka_unit_test(test_utf8_len),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
