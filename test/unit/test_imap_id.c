/*
 * test_imap_id.c — the reader of an ID list too long to buffer (IN_ID):
 * fed byte by byte, it asks for more until the list and its line end
 * are read, and stops at the first byte that breaks RFC 2971's grammar
 * or limits, or at a literal.
 *
 * The static parts are reached by including the module; its external
 * functions are renamed so that they do not clash with the imap_caps.o
 * linked beside this test.
 */
#define imap_capabilities	test_imap_capabilities
#define imap_greet		test_imap_greet
#define imap_cmd_capability	test_imap_cmd_capability
#define imap_cmd_id		test_imap_cmd_id
#define imap_id_begin		test_imap_id_begin
#define imap_input_id		test_imap_input_id
#define imap_cmd_enable		test_imap_cmd_enable
#define imap_cmd_namespace	test_imap_cmd_namespace
#include "imap_caps.c"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/*
 * Feeds s (the list after its "(") one byte at a time; returns the
 * status of the last byte fed and in *at how many bytes were taken.
 */
static enum id_scan_status
feed(const char *s, size_t *at)
{
	struct imap_id_scan	 id = { 0 };
	enum id_scan_status	 st = ID_SCAN_MORE;
	size_t			 used, n = strlen(s);

	for (*at = 0; *at < n; (*at)++) {
		st = id_scan(&id, s + *at, 1, &used);
		if (st != ID_SCAN_MORE) {
			*at += used;
			return st;
		}
		assert_int_equal(used, 1);
	}
	return st;
}

/* The RFC 2971 maximum: 30 pairs of a 30-octet field and 1024 octets. */
static char *
maxima(size_t pairs, size_t field, size_t value)
{
	char	*s = malloc(pairs * (field + value + 6) + 8), *p = s;
	size_t	 i;

	assert_non_null(s);
	for (i = 0; i < pairs; i++) {
		p += sprintf(p, "%s\"", i > 0 ? " " : "");
		memset(p, 'f', field);
		p += field;
		p += sprintf(p, "\" \"");
		memset(p, 'v', value);
		p += value;
		*p++ = '"';
	}
	strcpy(p, ")\r\n");
	return s;
}

static void
test_scan_limits(void **state)
{
	char	*s;
	size_t	 at;

	(void)state;
	s = maxima(IMAP_ID_MAX_PAIRS, IMAP_ID_MAX_FIELD, IMAP_ID_MAX_VALUE);
	assert_int_equal(feed(s, &at), ID_SCAN_DONE);
	assert_int_equal(at, strlen(s));
	free(s);
	s = maxima(IMAP_ID_MAX_PAIRS + 1, 1, 1);
	assert_int_equal(feed(s, &at), ID_SCAN_BAD);
	assert_int_equal(at, 8 * IMAP_ID_MAX_PAIRS);	/* at the 31st pair */
	free(s);
	s = maxima(1, IMAP_ID_MAX_FIELD + 1, 1);
	assert_int_equal(feed(s, &at), ID_SCAN_BAD);
	assert_int_equal(at, 1 + IMAP_ID_MAX_FIELD);
	free(s);
	s = maxima(1, 1, IMAP_ID_MAX_VALUE + 1);
	assert_int_equal(feed(s, &at), ID_SCAN_BAD);
	assert_int_equal(at, 5 + IMAP_ID_MAX_VALUE);
	free(s);
}

static void
test_scan_grammar(void **state)
{
	size_t	 at;

	(void)state;
	assert_int_equal(feed(")\r\n", &at), ID_SCAN_DONE);
	assert_int_equal(feed(")\n", &at), ID_SCAN_DONE);
	assert_int_equal(feed("\"a\" NIL \"b\" nil)\r\n", &at), ID_SCAN_DONE);
	assert_int_equal(feed("\"\\\"\\\\\" \"x\")\r\n", &at), ID_SCAN_DONE);
	/* a field without a value, a NIL field, NIX, a bad escape */
	assert_int_equal(feed("\"a\")\r\n", &at), ID_SCAN_BAD);
	assert_int_equal(at, 3);
	assert_int_equal(feed("NIL \"a\")\r\n", &at), ID_SCAN_BAD);
	assert_int_equal(at, 0);
	assert_int_equal(feed("\"a\" NIX)\r\n", &at), ID_SCAN_BAD);
	assert_int_equal(feed("\"a\\q\" \"b\")\r\n", &at), ID_SCAN_BAD);
	/* a line end inside a string, more after the list, a nested list */
	assert_int_equal(feed("\"a\r\n", &at), ID_SCAN_BAD);
	assert_int_equal(at, 2);
	assert_int_equal(feed(") x\r\n", &at), ID_SCAN_BAD);
	assert_int_equal(feed("(\"a\" \"b\"))\r\n", &at), ID_SCAN_BAD);
	/* a literal is not read */
	assert_int_equal(feed("\"a\" {3+}\r\nabc)\r\n", &at),
	    ID_SCAN_LITERAL);
	assert_int_equal(at, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_limits),
		cmocka_unit_test(test_scan_grammar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
