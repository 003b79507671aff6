/*
 * test_imap_parse.c — IMAP command framing and parsing, fed byte by byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "imap_parse.h"

/* Lines of 100 bytes, literals of 1000, "{N+}" of 1000 (LITERAL+). */
static const struct imap_frame_limits small = { 100, 1000, UINT64_MAX };

/*
 * Frames `in` as a client sending one byte at a time would: returns the
 * final status, how many "+" continuations were asked for, and *len.
 */
static enum imap_frame_status
frame_bytewise(const char *in, size_t inlen, int *continues, size_t *len)
{
	struct imap_frame	 fs;
	enum imap_frame_status	 st = IMAP_FRAME_MORE;
	uint64_t		 big = 0;
	size_t			 avail;

	imap_frame_reset(&fs);
	*continues = 0;
	for (avail = 1; avail <= inlen; avail++) {
		do {
			st = imap_frame_scan(&fs, in, avail, &small, len,
			    &big);
			if (st == IMAP_FRAME_CONTINUE)
				++*continues;
		} while (st == IMAP_FRAME_CONTINUE);
		if (st != IMAP_FRAME_MORE)
			return st;
	}
	return st;
}

static void
test_frame_plain_and_literals(void **state)
{
	static const char plain[] = "a1 NOOP\r\n";
	static const char sync[] = "a2 LOGIN {5}\r\nalice {3}\r\npw!\r\n";
	static const char plus[] = "a3 APPEND INBOX {4+}\r\nab\r\n\r\n";
	static const char lf[] = "a4 NOOP\n";
	int		 c;
	size_t		 len = 0;

	(void)state;
	assert_int_equal(frame_bytewise(plain, strlen(plain), &c, &len),
	    IMAP_FRAME_COMPLETE);
	assert_int_equal(len, strlen(plain));
	assert_int_equal(c, 0);
	assert_int_equal(frame_bytewise(sync, strlen(sync), &c, &len),
	    IMAP_FRAME_COMPLETE);
	assert_int_equal(len, strlen(sync));
	assert_int_equal(c, 2);		/* one "+" per literal, once each */
	assert_int_equal(frame_bytewise(plus, strlen(plus), &c, &len),
	    IMAP_FRAME_COMPLETE);
	assert_int_equal(len, strlen(plus));
	assert_int_equal(c, 0);		/* LITERAL+ needs no "+" */
	assert_int_equal(frame_bytewise(lf, strlen(lf), &c, &len),
	    IMAP_FRAME_COMPLETE);
	assert_int_equal(len, strlen(lf));
}

/* Over-size literals are refused before any "+"; lines are bounded. */
static void
test_frame_limits(void **state)
{
	static const char big[] = "a1 APPEND INBOX {1001}\r\n";
	static const char bad[] = "a1 LOGIN {}\r\n";
	char		 longline[200];
	int		 c;
	size_t		 len;

	(void)state;
	assert_int_equal(frame_bytewise(big, strlen(big), &c, &len),
	    IMAP_FRAME_TOO_BIG);
	assert_int_equal(c, 0);
	assert_int_equal(frame_bytewise(bad, strlen(bad), &c, &len),
	    IMAP_FRAME_BAD_LITERAL);
	memset(longline, 'x', sizeof(longline));
	assert_int_equal(frame_bytewise(longline, sizeof(longline), &c, &len),
	    IMAP_FRAME_TOO_LONG);
}

/*
 * A scan that stops inside a literal says how big it is, LITERAL+ too:
 * APPEND takes the message over from there (a client whose first read
 * holds only part of the message got "empty message" once).
 */
static void
test_frame_literal_size(void **state)
{
	static const char plus[] = "a1 APPEND INBOX {10+}\r\nabc";
	static const char sync[] = "a2 APPEND INBOX {12}\r\n";
	struct imap_frame	 fs;
	uint64_t		 big = 0;
	size_t			 len = 0;

	(void)state;
	imap_frame_reset(&fs);
	assert_int_equal(imap_frame_scan(&fs, plus, strlen(plus), &small,
	    &len, &big), IMAP_FRAME_MORE);
	assert_int_equal(fs.literal, 10);
	assert_int_equal(fs.scanned, fs.lit_lf);
	imap_frame_reset(&fs);
	assert_int_equal(imap_frame_scan(&fs, sync, strlen(sync), &small,
	    &len, &big), IMAP_FRAME_CONTINUE);
	assert_int_equal(fs.literal, 12);
}

/*
 * LITERAL-: a "{N+}" past its limit is refused at its line even when
 * the whole literal is buffered already (the scan would otherwise step
 * over it); one at the limit, and a synchronizing one past it, frame.
 */
static void
test_frame_literal_minus(void **state)
{
	static const struct imap_frame_limits minus = { 100, 1000, 4 };
	static const char over[] = "a1 LOGIN {5+}\r\nalice x\r\n";
	static const char at[] = "a2 LOGIN {4+}\r\nbob! x\r\n";
	static const char sync[] = "a3 LOGIN {5}\r\n";
	struct imap_frame	 fs;
	uint64_t		 big = 0;
	size_t			 len = 0;

	(void)state;
	imap_frame_reset(&fs);
	assert_int_equal(imap_frame_scan(&fs, over, strlen(over), &minus,
	    &len, &big), IMAP_FRAME_NONSYNC_TOO_BIG);
	assert_int_equal(big, 5);
	assert_int_equal(over[fs.lit_lf], '\n');
	assert_int_equal(fs.lit_lf, strlen("a1 LOGIN {5+}\r"));
	imap_frame_reset(&fs);
	assert_int_equal(imap_frame_scan(&fs, at, strlen(at), &minus,
	    &len, &big), IMAP_FRAME_COMPLETE);
	assert_int_equal(len, strlen(at));
	imap_frame_reset(&fs);
	assert_int_equal(imap_frame_scan(&fs, sync, strlen(sync), &minus,
	    &len, &big), IMAP_FRAME_CONTINUE);
}

static void
test_parse_arguments(void **state)
{
	static const char in[] = "A001 uid FETCH 1:*,7 (UID BODY.PEEK["
	    "HEADER.FIELDS (From To)]<0.100> FLAGS) \"a \\\"q\\\\\" {4}\r\n"
	    "x\0\r\n NIL ()\r\n";
	struct imap_cmd		 cmd;
	const char		*err = NULL;
	struct imap_arg		*l;

	(void)state;
	assert_int_equal(imap_parse(in, sizeof(in) - 1, 4, 100, &cmd, &err),
	    IMAP_PARSE_OK);
	assert_string_equal(cmd.tag, "A001");
	assert_string_equal(cmd.name, "UID");
	assert_int_equal(cmd.nargs, 7);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_ATOM);
	assert_string_equal(cmd.args[0].str, "FETCH");
	assert_string_equal(cmd.args[1].str, "1:*,7");
	l = &cmd.args[2];
	assert_int_equal(l->type, IMAP_ARG_LIST);
	assert_int_equal(l->nlist, 3);
	assert_string_equal(l->list[1].str,
	    "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>");
	assert_int_equal(cmd.args[3].type, IMAP_ARG_STRING);
	assert_string_equal(cmd.args[3].str, "a \"q\\");
	assert_int_equal(cmd.args[4].len, 4);
	assert_true(cmd.args[4].literal);
	assert_memory_equal(cmd.args[4].str, "x\0\r\n", 4);
	assert_int_equal(cmd.args[5].type, IMAP_ARG_NIL);
	assert_int_equal(cmd.args[6].type, IMAP_ARG_LIST);
	assert_int_equal(cmd.args[6].nlist, 0);
	imap_cmd_free(&cmd);
}

/* "~{N}" is a literal8 (RFC 3516); a "~" elsewhere is an atom's. */
static void
test_parse_literal8(void **state)
{
	static const char in[] = "a1 APPEND ~box ~{3+}\r\n\0\0\0 {1}\r\nx\r\n";
	struct imap_cmd		 cmd;
	const char		*err = NULL;

	(void)state;
	assert_int_equal(imap_parse(in, sizeof(in) - 1, 4, 100, &cmd, &err),
	    IMAP_PARSE_OK);
	assert_int_equal(cmd.nargs, 3);
	assert_true(cmd.literal8);
	assert_string_equal(cmd.args[0].str, "~box");
	assert_false(cmd.args[0].literal8);
	assert_true(cmd.args[1].literal && cmd.args[1].literal8);
	assert_memory_equal(cmd.args[1].str, "\0\0\0", 3);
	assert_true(cmd.args[2].literal && !cmd.args[2].literal8);
	imap_cmd_free(&cmd);
}

/* A '[' no ']' closes is an atom character (RFC 3501: only ']' is not). */
static void
test_parse_open_bracket(void **state)
{
	static const char in[] = "a1 SELECT x[y BODY[1\r\n";
	struct imap_cmd		 cmd;
	const char		*err = NULL;

	(void)state;
	assert_int_equal(imap_parse(in, sizeof(in) - 1, 4, 100, &cmd, &err),
	    IMAP_PARSE_OK);
	assert_int_equal(cmd.nargs, 2);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_ATOM);
	assert_string_equal(cmd.args[0].str, "x[y");
	assert_string_equal(cmd.args[1].str, "BODY[1");
	imap_cmd_free(&cmd);
}

static void
test_parse_errors(void **state)
{
	static const struct {
		const char		*in;
		enum imap_parse_status	 want;
	} cases[] = {
		{ "\r\n", IMAP_PARSE_NO_TAG },
		{ "+tag NOOP\r\n", IMAP_PARSE_NO_TAG },
		{ "a1\r\n", IMAP_PARSE_BAD },
		{ "a1 NOOP \r\n", IMAP_PARSE_BAD },
		{ "a1 X a  b\r\n", IMAP_PARSE_BAD },
		{ "a1 X (a\r\n", IMAP_PARSE_BAD },
		{ "a1 X a)\r\n", IMAP_PARSE_BAD },
		{ "a1 X \"ab\r\n", IMAP_PARSE_BAD },
		{ "a1 X \"a\\b\"\r\n", IMAP_PARSE_BAD },
		{ "a1 X {5}\r\nab\r\n", IMAP_PARSE_BAD },
		{ "a1 X ((((((a))))))\r\n", IMAP_PARSE_TOO_DEEP },
		{ "a1 X (((a)))\r\n", IMAP_PARSE_OK },
		{ "a1 X 1 2 3 4 5 6 7 8 9\r\n", IMAP_PARSE_TOO_MANY },
	};
	struct imap_cmd		 cmd;
	const char		*err;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum imap_parse_status st = imap_parse(cases[i].in,
		    strlen(cases[i].in), 4, 8, &cmd, &err);

		if (st != cases[i].want)
			fail_msg("case %zu '%s': got %d want %d", i,
			    cases[i].in, st, cases[i].want);
		if (st != IMAP_PARSE_NO_TAG) {
			assert_string_equal(cmd.tag, "a1");
			imap_cmd_free(&cmd);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_plain_and_literals),
		cmocka_unit_test(test_frame_limits),
		cmocka_unit_test(test_frame_literal_size),
		cmocka_unit_test(test_frame_literal_minus),
		cmocka_unit_test(test_parse_literal8),
		cmocka_unit_test(test_parse_arguments),
		cmocka_unit_test(test_parse_open_bracket),
		cmocka_unit_test(test_parse_errors),
	};

	return cmocka_run_group_tests_name("imap_parse", tests, NULL, NULL);
}
