/*
 * test_imap_search.c — SEARCH without a session: compiling the keys
 * (and every refusal), dates, case folding, the decoders, the chunk
 * window, header fields, and messages described in memory tried
 * against compiled keys with what has been "read" of them.
 *
 * What is tested is static, so both files of the module are included
 * here; their external functions are renamed so that they do not clash
 * with the imap_search.o and imap_search_compile.o linked beside this
 * test.
 */
#define imap_cmd_search		test_imap_cmd_search
#define search_compile		test_search_compile
#define search_prog_free	test_search_prog_free
#define search_fold		test_search_fold
#define search_fold_lead	test_search_fold_lead
#define imap_header_next	test_imap_header_next
#define imap_search_matches_new	test_imap_search_matches_new
#define imap_search_matches	test_imap_search_matches
#define imap_search_matches_free	test_imap_search_matches_free
#define imap_search_charset_refusal test_imap_search_charset_refusal
#define imap_part_cte		test_imap_part_cte
#define search_header_normalise	test_search_header_normalise
#define search_address_strip	test_search_address_strip
#define search_address_strippable test_search_address_strippable
#define search_text_range	test_search_text_range
#define imap_search_try		test_imap_search_try
#define imap_search_pin_sets	test_imap_search_pin_sets
#define imap_search_return	test_imap_search_return
#define search_rows_new		test_search_rows_new
#define search_rows_step	test_search_rows_step
#define search_rows_time_left	test_search_rows_time_left
#define search_rows_ready	test_search_rows_ready
#define search_rows_try		test_search_rows_try
#define search_rows_free	test_search_rows_free
#include "imap_search_compile.c"
#include "imap_search.c"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* A command line parsed as imap.c would, kept for its arguments. */
static struct imap_cmd	cmd;

/*
 * Compiles the arguments of "t SEARCH <keys>".  Returns what
 * search_compile() returns; err holds the reply when it refused.
 */
static int
compile(const char *keys, struct search_prog *prog, char *err)
{
	char		 line[4 * IMAP_MAX_SEARCH_KEYS + 64];
	const char	*why;
	int		 n, r;

	n = snprintf(line, sizeof(line), "t SEARCH%s%s\r\n",
	    *keys != '\0' ? " " : "", keys);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	if (imap_parse(line, (size_t)n, IMAP_MAX_DEPTH, IMAP_MAX_ARGS, &cmd,
	    &why) != IMAP_PARSE_OK)
		fail_msg("%s: %s", line, why);
	r = search_compile(prog, cmd.args, cmd.nargs, err, REPLY_MAX);
	/* The program keeps nothing of the arguments. */
	imap_cmd_free(&cmd);
	return r;
}

/* The reply compile() gives for refused keys. */
static const char *
refusal(const char *keys)
{
	static char		 err[REPLY_MAX];
	struct search_prog	 prog;

	assert_int_equal(compile(keys, &prog, err), -1);
	return err;
}

static void
test_compile_every_key(void **state)
{
	struct search_prog	 prog;
	char			 err[REPLY_MAX];

	(void)state;
	assert_int_equal(compile("CHARSET utf-8 ALL ANSWERED BCC x "
	    "BEFORE 1-Feb-1994 BODY \"a b\" CC x DELETED DRAFT FLAGGED "
	    "FROM x HEADER X-Foo \"\" KEYWORD $Junk LARGER 10 NEW "
	    "NOT SEEN OLD ON 01-feb-1994 OR SEEN RECENT RECENT SEEN "
	    "SENTBEFORE \"1-Feb-1994\" SENTON 1-Feb-1994 "
	    "SENTSINCE 1-Feb-1994 SINCE 1-Feb-1994 SMALLER 10 SUBJECT {3}\r\n"
	    "a\"b TEXT x TO x UID 1:* UNANSWERED UNDELETED UNDRAFT "
	    "UNFLAGGED UNKEYWORD $Junk UNSEEN 1,3:4 (SEEN (FLAGGED)) "
	    "MODSEQ 5 MODSEQ \"/flags/\\\\draft\" all 0", &prog, err), 0);
	assert_int_equal(prog.nkeys, 45);
	assert_int_equal(prog.maxlen, 3);	/* "a b" */
	assert_int_equal(prog.modseq, 1);
	assert_int_equal(prog.root->kind, N_AND);
	search_prog_free(&prog);
	assert_int_equal(compile("charset US-ASCII all", &prog, err), 0);
	assert_int_equal(prog.modseq, 0);
	assert_int_equal(prog.maxlen, 0);
	search_prog_free(&prog);
}

/* "NOT NOT ... SEEN": n + 1 keys. */
static const char *
not_chain(char *buf, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		strcpy(buf + 4 * i, "NOT ");
	strcpy(buf + 4 * n, "SEEN");
	return buf;
}

/* n keys alternately BODY and TEXT ("BODY a TEXT a ..") into buf. */
static char *
text_keys(char *buf, size_t n)
{
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < n; i++)
		strcat(buf, i % 2 ? " TEXT a" : " BODY a");
	return buf + 1;
}

static void
test_compile_refusals(void **state)
{
	struct search_prog	 prog;
	char			 many[4 * IMAP_MAX_SEARCH_KEYS + 8];
	char			 err[REPLY_MAX];

	(void)state;
	assert_string_equal(refusal("FOO"), "BAD Unknown search key FOO");
	assert_string_equal(refusal("NIL"), "BAD Unknown search key NIL");
	assert_string_equal(refusal("SEEN \"x\""),
	    "BAD Expected a search key, got a string");
	assert_string_equal(refusal("SUBJECT"), "BAD SUBJECT needs a string");
	assert_string_equal(refusal("HEADER X-Foo"),
	    "BAD HEADER needs a string");
	assert_string_equal(refusal("SINCE 1-Feb-94"),
	    "BAD SINCE needs a date such as 1-Feb-1994");
	assert_string_equal(refusal("LARGER x"), "BAD LARGER needs a number");
	assert_string_equal(refusal("SMALLER"), "BAD SMALLER needs a number");
	assert_string_equal(refusal("KEYWORD (a)"),
	    "BAD KEYWORD needs a keyword");
	assert_string_equal(refusal("NOT"),
	    "BAD NOT needs a search key after it");
	assert_string_equal(refusal("OR SEEN"),
	    "BAD OR needs a search key after it");
	assert_string_equal(refusal("SEEN ()"),
	    "BAD Empty list of search keys");
	assert_string_equal(refusal("MODSEQ"),
	    "BAD MODSEQ needs a mod-sequence");
	assert_string_equal(refusal("MODSEQ 9223372036854775808"),
	    "BAD MODSEQ needs a mod-sequence");
	assert_string_equal(refusal("MODSEQ \"/x\" all 1"),
	    "BAD MODSEQ entry must be \"/flags/<flag>\"");
	assert_string_equal(refusal("MODSEQ \"/flags/\\\\seen\" some 1"),
	    "BAD MODSEQ entry type must be priv, shared or all");
	assert_string_equal(refusal(""), "BAD SEARCH needs a search key");
	assert_string_equal(refusal("CHARSET UTF-8"),
	    "BAD SEARCH needs a search key");
	assert_string_equal(refusal("CHARSET"),
	    "BAD CHARSET needs a charset name");
	assert_string_equal(refusal("CHARSET ISO-8859-1 ALL"),
	    "NO [BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 and US-ASCII are "
	    "supported");
	assert_string_equal(refusal("1:x"), "BAD Invalid sequence set 1:x");
	assert_string_equal(refusal("UID 0"), "BAD Invalid UID sequence set 0");

	/* IMAP_MAX_SEARCH_KEYS keys are fine, one more is not. */
	assert_string_equal(refusal(not_chain(many, IMAP_MAX_SEARCH_KEYS)),
	    "BAD [LIMIT] More than 1000 search keys");
	assert_int_equal(compile(not_chain(many, IMAP_MAX_SEARCH_KEYS - 1),
	    &prog, err), 0);
	assert_int_equal(prog.nkeys, IMAP_MAX_SEARCH_KEYS);
	search_prog_free(&prog);

	/* IMAP_MAX_SEARCH_TEXT BODY or TEXT keys are fine, one more is not. */
	assert_int_equal(compile(text_keys(many, IMAP_MAX_SEARCH_TEXT),
	    &prog, err), 0);
	assert_int_equal(prog.ntext, IMAP_MAX_SEARCH_TEXT);
	search_prog_free(&prog);
	assert_string_equal(refusal(text_keys(many, IMAP_MAX_SEARCH_TEXT + 1)),
	    "BAD [LIMIT] More than 16 BODY or TEXT keys");
}

static void
test_dates(void **state)
{
	int64_t	 day = 0;

	(void)state;
	assert_int_equal(parse_date("1-Feb-1994", 10, &day), 0);
	assert_int_equal(day, 8797);
	assert_int_equal(parse_date("01-FEB-1994", 11, &day), 0);
	assert_int_equal(day, 8797);
	assert_int_equal(parse_date("29-Feb-2000", 11, &day), 0);
	assert_int_equal(day, 11016);
	assert_int_equal(parse_date("31-Dec-1969", 11, &day), 0);
	assert_int_equal(day, -1);
	assert_int_equal(parse_date("1-Mar-1900", 10, &day), 0);
	assert_int_equal(day, -25508);
	assert_int_equal(parse_date("29-Feb-1900", 11, &day), -1);
	assert_int_equal(parse_date("29-Feb-2001", 11, &day), -1);
	assert_int_equal(parse_date("31-Apr-2001", 11, &day), -1);
	assert_int_equal(parse_date("0-Jan-2001", 10, &day), -1);
	assert_int_equal(parse_date("123-Jan-2001", 12, &day), -1);
	assert_int_equal(parse_date("1-Foo-2001", 10, &day), -1);
	assert_int_equal(parse_date("1-Jan-01", 8, &day), -1);
	assert_int_equal(parse_date("1-Jan-2001x", 11, &day), -1);
	assert_int_equal(parse_date("1-Jan-2001\0", 11, &day), -1);
	assert_int_equal(utc_day(0), 0);
	assert_int_equal(utc_day(86399), 0);
	assert_int_equal(utc_day(-1), -1);
	assert_int_equal(utc_day(-86400), -1);
	assert_int_equal(utc_day(-86401), -2);
}

static void
test_fold(void **state)
{
	unsigned char	 s[] = "ABC xyz \xc3\x80\xc3\x89\xc3\x96\xc3\x97"
			    "\xc3\x9f \xc4\x80\xc4\x81\xc4\xb0\xc4\xbf\xc5\x81"
			    "\xc5\xb8\xc5\xbd\xc5\x92 \xc3";

	(void)state;
	search_fold(s, sizeof(s) - 1);
	/* A, E and O with accents, x sign and sharp s as they are. */
	assert_string_equal((char *)s, "abc xyz \xc3\xa0\xc3\xa9\xc3\xb6"
	    "\xc3\x97\xc3\x9f \xc4\x81\xc4\x81\xc4\xb0\xc5\x80\xc5\x82"
	    "\xc3\xbf\xc5\xbe\xc5\x93 \xc3");
}

/*
 * Feeds a haystack through the window `step` bytes at a time, as
 * scan_range() does.  Returns whether the needle was found.
 */
static int
window_steps(const char *hay, const char *needle, size_t step)
{
	struct node	 n = { .kind = N_TEXT };
	unsigned char	 w[64 + MIME_DECODE_SLACK + 16];
	size_t		 len = strlen(hay), off = 0, have = 0, folded = 0, k;
	char		 folded_needle[64];
	int		 found = 0;

	snprintf(folded_needle, sizeof(folded_needle), "%s", needle);
	search_fold((unsigned char *)folded_needle, strlen(folded_needle));
	n.str = folded_needle;
	n.len = strlen(needle);
	while (!found && off < len) {
		k = len - off < step ? len - off : step;
		memcpy(w + have, hay + off, k);
		off += k;
		have += k;
		assert_true(have <= sizeof(w));
		found = window_search(w, &have, &folded, &n, off == len);
	}
	return found;
}

static void
test_window(void **state)
{
	static const char hay[] = "Lorem ipsum \xc3\x89T\xc3\x89 dolor sit "
	    "amet, consectetur";
	size_t	 step;

	(void)state;
	for (step = 1; step <= 16; step++) {
		assert_true(window_steps(hay, "LOREM", step));
		assert_true(window_steps(hay, "consectetur", step));
		assert_true(window_steps(hay, "\xc3\xa9t\xc3\xa9 D", step));
		assert_true(window_steps(hay, "m \xc3\x89", step));
		assert_true(window_steps(hay, "r", step));
		assert_false(window_steps(hay, "ipsum dolor", step));
		assert_false(window_steps(hay, "consectetura", step));
	}
}

static void
test_header_fields(void **state)
{
	char		 h[] = "From: A <a@x>\r\nSubject: Hello\r\n\tWorld\r\n"
			    "X-Empty:\r\nTo : b@y\r\nX-L: \xc3\x89t\xc3\xa9\r\n"
			    "subject: second\r\n\r\n";
	size_t		 len, pos = 0, vlen;
	const char	*v;

	(void)state;
	len = search_header_normalise(h, sizeof(h) - 1);
	assert_true(imap_header_next(h, len, &pos, "Subject", &v, &vlen));
	assert_int_equal(vlen, 11);
	assert_memory_equal(v, "hello\tworld", 11);
	assert_true(imap_header_next(h, len, &pos, "SUBJECT", &v, &vlen));
	assert_memory_equal(v, "second", vlen);
	assert_false(imap_header_next(h, len, &pos, "subject", &v, &vlen));
	pos = 0;
	assert_true(imap_header_next(h, len, &pos, "to", &v, &vlen));
	assert_memory_equal(v, "b@y", vlen);
	pos = 0;
	assert_true(imap_header_next(h, len, &pos, "x-empty", &v, &vlen));
	assert_int_equal(vlen, 0);
	pos = 0;
	assert_true(imap_header_next(h, len, &pos, "x-l", &v, &vlen));
	assert_memory_equal(v, "\xc3\xa9t\xc3\xa9", vlen);
	pos = 0;
	assert_false(imap_header_next(h, len, &pos, "x", &v, &vlen));
}

/*
 * A message described in memory: its row and header, as
 * candidate_read() would leave them.
 */
struct fake {
	struct search		 se;
	struct candidate	 m;
	char			 header[512];
	char			 subject[64];
};

static void
fake_init(struct fake *f, uint32_t flags, const char *keywords,
    const char *header, const char *subject)
{
	memset(f, 0, sizeof(*f));
	f->m.seq = 3;
	f->m.uid = 30;
	f->m.flags = flags;
	f->m.row.flags = flags & ~SEARCH_RECENT;
	f->m.row.size = 1000;
	f->m.row.modseq = 7;
	f->m.row.internaldate = 8797 * 86400 + 3600;	/* 1-Feb-1994 */
	snprintf(f->se.keywords, sizeof(f->se.keywords), "%s", keywords);
	snprintf(f->header, sizeof(f->header), "%s", header);
	snprintf(f->subject, sizeof(f->subject), "%s", subject);
	f->m.meta.header = f->header;
	f->m.meta.header_len = search_header_normalise(f->header, strlen(f->header));
	search_fold((unsigned char *)f->subject, strlen(f->subject));
	f->m.meta.subject = f->subject;
	f->m.meta.sent_date = -1;
}

/* The answer for keys with what `have` says has been read. */
static enum tri
try(struct fake *f, const char *keys, enum need have)
{
	char		 err[REPLY_MAX];
	enum tri	 r;

	assert_int_equal(compile(keys, &f->se.prog, err), 0);
	r = eval(&f->se, f->se.prog.root, &f->m, have);
	search_prog_free(&f->se.prog);
	return r;
}

static void
test_eval_levels(void **state)
{
	struct fake	 f;

	(void)state;
	fake_init(&f, FLAG_SEEN | SEARCH_RECENT, "$Junk Work",
	    "Subject: =?utf-8?q?Caf=C3=A9?=\r\nCc: Bob\r\n  <bob@x>\r\n\r\n",
	    "Caf\xc3\xa9 \xc3\x89T\xc3\x89");
	/* Decided by the view alone: nothing else is read. */
	assert_int_equal(try(&f, "ALL", NEED_VIEW), T_YES);
	assert_int_equal(try(&f, "RECENT", NEED_VIEW), T_YES);
	assert_int_equal(try(&f, "OLD SUBJECT x", NEED_VIEW), T_NO);
	assert_int_equal(try(&f, "OR RECENT BODY x", NEED_VIEW), T_YES);
	assert_int_equal(try(&f, "SEEN", NEED_VIEW), T_UNKNOWN);
	assert_int_equal(try(&f, "NOT SEEN", NEED_VIEW), T_UNKNOWN);
	/* The row. */
	assert_int_equal(try(&f, "SEEN", NEED_ROW), T_YES);
	assert_int_equal(try(&f, "NEW", NEED_ROW), T_NO);
	assert_int_equal(try(&f, "UNSEEN SUBJECT x", NEED_ROW), T_NO);
	assert_int_equal(try(&f, "NOT NOT SEEN", NEED_ROW), T_YES);
	assert_int_equal(try(&f, "KEYWORD work UNKEYWORD $Other", NEED_ROW),
	    T_YES);
	assert_int_equal(try(&f, "KEYWORD Wor", NEED_ROW), T_NO);
	assert_int_equal(try(&f, "LARGER 999 SMALLER 1001", NEED_ROW), T_YES);
	assert_int_equal(try(&f, "LARGER 1000", NEED_ROW), T_NO);
	assert_int_equal(try(&f, "ON 1-Feb-1994 SINCE 1-Feb-1994 "
	    "BEFORE 2-Feb-1994", NEED_ROW), T_YES);
	assert_int_equal(try(&f, "OR BEFORE 1-Feb-1994 SINCE 2-Feb-1994",
	    NEED_ROW), T_NO);
	assert_int_equal(try(&f, "MODSEQ 7", NEED_ROW), T_YES);
	assert_int_equal(try(&f, "MODSEQ 8", NEED_ROW), T_NO);
	assert_int_equal(try(&f, "SENTON 1-Feb-1994", NEED_ROW), T_UNKNOWN);
	assert_int_equal(try(&f, "SEEN (FLAGGED OR SUBJECT x DELETED)",
	    NEED_ROW), T_NO);
	/* The meta: decoded and raw values, unfolded, folded case. */
	assert_int_equal(try(&f, "SENTON 1-Feb-1994", NEED_META), T_YES);
	f.m.meta.sent_date = 8796 * 86400;
	assert_int_equal(try(&f, "SENTBEFORE 1-Feb-1994", NEED_META), T_YES);
	assert_int_equal(try(&f, "SUBJECT \"CAF\xc3\x89\"", NEED_META), T_YES);
	assert_int_equal(try(&f, "SUBJECT \"\xc3\xa9t\xc3\xa9\"", NEED_META),
	    T_YES);
	assert_int_equal(try(&f, "SUBJECT =c3=a9", NEED_META), T_YES);
	assert_int_equal(try(&f, "SUBJECT xyz", NEED_META), T_NO);
	assert_int_equal(try(&f, "CC \"bob  <BOB\"", NEED_META), T_YES);
	assert_int_equal(try(&f, "HEADER cc \"\"", NEED_META), T_YES);
	assert_int_equal(try(&f, "HEADER bcc \"\"", NEED_META), T_NO);
	assert_int_equal(try(&f, "NOT HEADER X-Foo \"\"", NEED_META), T_YES);
	assert_int_equal(try(&f, "FROM x", NEED_META), T_NO);
	assert_int_equal(try(&f, "SUBJECT x BODY y", NEED_META), T_NO);
	assert_int_equal(try(&f, "SUBJECT caf BODY y", NEED_META), T_UNKNOWN);
	/* An empty BODY matches without reading the message. */
	assert_int_equal(try(&f, "BODY \"\"", NEED_BYTES), T_YES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compile_every_key),
		cmocka_unit_test(test_compile_refusals),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_fold),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_eval_levels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
