/*
 * test_imap_sort.c — SORT without a session: the base subject of RFC
 * 5256 section 2.1, the parsing of sort criteria (and each refusal), the
 * address keys read from an envelope, and the order of messages.
 *
 * The static parts are reached by including the module; its external
 * functions are renamed so that they do not clash with the imap_sort.o
 * linked beside this test.
 */
#define imap_sort_parse		test_imap_sort_parse
#define imap_sort_load		test_imap_sort_load
#define imap_sort_msgs		test_imap_sort_msgs
#define imap_sort_cmp		test_imap_sort_cmp
#define imap_sort_msg_free	test_imap_sort_msg_free
#define imap_base_subject	test_imap_base_subject
#define imap_casemap_cmp	test_imap_casemap_cmp
#include "imap_sort.c"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

static void
assert_base(const char *subject, const char *want)
{
	char	*got = imap_base_subject(subject, NULL);

	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("base subject of \"%s\": \"%s\", want \"%s\"",
		    subject, got, want);
	free(got);
}

static void
test_base_subject(void **state)
{
	(void)state;
	assert_base("Hello", "Hello");
	assert_base("Re: Hello", "Hello");
	assert_base("RE: re: Fwd: Hello", "Hello");
	assert_base("Fw: Hello", "Hello");
	assert_base("Re[2]: Hello", "Hello");
	assert_base("[list] Re: Hello", "Hello");
	assert_base("Re: [list] Hello", "Hello");
	assert_base("[list] [other] Re: Hello", "Hello");
	assert_base("Hello (fwd)", "Hello");
	assert_base("Hello (FWD) (fwd)  ", "Hello");
	assert_base("[Fwd: Re: Hello]", "Hello");
	assert_base("Re: [fwd: [list] Hello (fwd)]", "Hello");
	assert_base("  Hello \t  world\r\n again ", "Hello world again");
	/* A blob that is all there is stays: it is the subject. */
	assert_base("[list]", "[list]");
	assert_base("Re: [list]", "[list]");
	/* Not leaders: no colon, or a word that only starts like one. */
	assert_base("Re Hello", "Re Hello");
	assert_base("Remember: this", "Remember: this");
	assert_base("Fwd Hello", "Fwd Hello");
	assert_base("", "");
	assert_base("Re:", "");
	assert_base("(fwd)", "");
	/* An unclosed blob is text. */
	assert_base("[list Re: Hello", "[list Re: Hello");
}

/* Whether THREAD sees a reply or forward in the subject. */
static int
is_reply(const char *subject)
{
	int	 reply = -1;

	free(imap_base_subject(subject, &reply));
	return reply;
}

static void
test_base_subject_reply(void **state)
{
	(void)state;
	assert_int_equal(is_reply("Hello"), 0);
	assert_int_equal(is_reply("  Hello  "), 0);
	assert_int_equal(is_reply("[list] Hello"), 0);
	assert_int_equal(is_reply("Re: Hello"), 1);
	assert_int_equal(is_reply("[list] Fwd: Hello"), 1);
	assert_int_equal(is_reply("Hello (fwd)"), 1);
	assert_int_equal(is_reply("[Fwd: Hello]"), 1);
}

/* Parses "(criteria)" as a SORT command's first argument. */
static int
parse(const char *criteria, struct sort_criteria *c, const char **why)
{
	struct imap_cmd	 cmd = { 0 };
	char		 line[256];
	const char	*err;
	int		 n, r;

	n = snprintf(line, sizeof(line), "t SORT %s UTF-8 ALL\r\n",
	    criteria);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	assert_int_equal(imap_parse(line, (size_t)n, IMAP_MAX_DEPTH,
	    IMAP_MAX_ARGS, &cmd, &err), IMAP_PARSE_OK);
	r = imap_sort_parse(&cmd.args[0], c, why);
	imap_cmd_free(&cmd);
	return r;
}

static void
test_parse_criteria(void **state)
{
	struct sort_criteria	 c;
	const char		*why;

	(void)state;
	assert_int_equal(parse("(REVERSE date subject DisplayFrom)", &c, &why),
	    0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.key[0], SORT_DATE);
	assert_int_equal(c.reverse[0], 1);
	assert_int_equal(c.key[1], SORT_SUBJECT);
	assert_int_equal(c.reverse[1], 0);
	assert_int_equal(c.key[2], SORT_DISPLAYFROM);
	assert_int_equal(parse("()", &c, &why), -1);
	assert_int_equal(parse("ARRIVAL", &c, &why), -1);
	assert_int_equal(parse("(REVERSE)", &c, &why), -1);
	assert_int_equal(parse("(REVERSE REVERSE DATE)", &c, &why), -1);
	assert_int_equal(parse("(COLOUR)", &c, &why), -1);
	assert_int_equal(parse("(\"DATE\")", &c, &why), -1);
	assert_int_equal(parse("((DATE))", &c, &why), -1);
	assert_int_equal(parse("(DATE DATE DATE DATE DATE DATE DATE DATE "
	    "DATE DATE DATE DATE DATE DATE DATE DATE DATE)", &c, &why), -1);
}

static void
test_address_keys(void **state)
{
	static const char env[] = "(\"Mon, 1 Jan 2024 00:00:00 +0000\" "
	    "\"s\" ((\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"jurgen\" \"b.org\")) "
	    "NIL NIL ((NIL NIL \"team\" NIL)(NIL NIL \"zed\" \"c.org\")"
	    "(NIL NIL NIL NIL)) NIL NIL NIL NIL)";
	static const char env_empty_group[] = "(NIL NIL "
	    "((NIL NIL \"d\" NIL)) NIL NIL "
	    "((NIL NIL \"empty\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)";
	struct sort_criteria	 c = { 5, { SORT_FROM, SORT_DISPLAYFROM,
	    SORT_TO, SORT_DISPLAYTO, SORT_CC }, { 0 } };
	struct sort_msg		 m = { 0 };

	(void)state;
	assert_int_equal(load_addresses(env, &c, &m), STORE_OK);
	assert_string_equal(m.str[SORT_FROM], "jurgen");
	assert_string_equal(m.str[SORT_DISPLAYFROM], "J\xc3\xbcrgen");
	/*
	 * The first address of the list is the group's start, whose
	 * mailbox is the group's name (RFC 5256: the first address's
	 * addr-mailbox; RFC 5957: without a display name or a host, the
	 * addr-mailbox).
	 */
	assert_string_equal(m.str[SORT_TO], "team");
	assert_string_equal(m.str[SORT_DISPLAYTO], "team");
	assert_string_equal(m.str[SORT_CC], "");
	imap_sort_msg_free(&m);
	/* An empty group sorts by its name; an address without a host too. */
	assert_int_equal(load_addresses(env_empty_group, &c, &m), STORE_OK);
	assert_string_equal(m.str[SORT_FROM], "d");
	assert_string_equal(m.str[SORT_DISPLAYFROM], "d");
	assert_string_equal(m.str[SORT_DISPLAYTO], "empty");
	imap_sort_msg_free(&m);
	/* An envelope that does not parse sorts as having no addresses. */
	assert_int_equal(load_addresses("(((", &c, &m), STORE_OK);
	assert_string_equal(m.str[SORT_FROM], "");
	imap_sort_msg_free(&m);
}

static void
test_order(void **state)
{
	struct sort_msg		 m[4] = {
		{ .seq = 1, .uid = 10, .arrival = 30, .date = 5, .size = 9 },
		{ .seq = 2, .uid = 11, .arrival = 20, .date = 5, .size = 7 },
		{ .seq = 3, .uid = 12, .arrival = 10, .date = 4, .size = 7 },
		{ .seq = 4, .uid = 13, .arrival = 10, .date = 6, .size = 8 },
	};
	struct sort_criteria	 by_size = { 1, { SORT_SIZE }, { 0 } };
	struct sort_criteria	 by_date_rev = { 1, { SORT_DATE }, { 1 } };
	struct sort_criteria	 by_subject = { 2, { SORT_SUBJECT,
	    SORT_ARRIVAL }, { 0, 1 } };
	const char		*subjects[4] = { "b", "A", "a", "B" };
	size_t			 i;

	(void)state;
	imap_sort_msgs(m, 4, &by_size);
	assert_int_equal(m[0].seq, 2);	/* 7, seq 2 before seq 3 */
	assert_int_equal(m[1].seq, 3);
	assert_int_equal(m[2].seq, 4);
	assert_int_equal(m[3].seq, 1);
	imap_sort_msgs(m, 4, &by_date_rev);
	assert_int_equal(m[0].seq, 4);
	assert_int_equal(m[1].seq, 1);	/* equal dates keep seq order */
	assert_int_equal(m[2].seq, 2);
	assert_int_equal(m[3].seq, 3);
	for (i = 0; i < 4; i++)
		m[i].str[SORT_SUBJECT] = strdup(subjects[m[i].seq - 1]);
	imap_sort_msgs(m, 4, &by_subject);
	/* "A" and "a" tie without case; then newest arrival first. */
	assert_int_equal(m[0].seq, 2);
	assert_int_equal(m[1].seq, 3);
	assert_int_equal(m[2].seq, 1);
	assert_int_equal(m[3].seq, 4);
	for (i = 0; i < 4; i++)
		imap_sort_msg_free(&m[i]);
}

/*
 * Strings compare under i;ascii-casemap (RFC 4790 9.2): lower-case
 * letters become upper case, so "[", "\\", "]", "^", "_" and "`" sort
 * after every letter, not before as they would in lower case.
 */
static void
test_collation(void **state)
{
	static const char *const subjects[] = { "_", "[xyz]", "b", "Z",
	    "A", "", "`" };
	static const uint32_t want[] = { 6, 5, 3, 4, 2, 1, 7 };
	struct sort_msg		 m[7] = { 0 };
	struct sort_criteria	 by_subject = { 1, { SORT_SUBJECT }, { 0 } };
	size_t			 i;

	(void)state;
	for (i = 0; i < 7; i++) {
		m[i].seq = i + 1;
		m[i].str[SORT_SUBJECT] = strdup(subjects[i]);
		assert_non_null(m[i].str[SORT_SUBJECT]);
	}
	imap_sort_msgs(m, 7, &by_subject);
	for (i = 0; i < 7; i++)
		assert_int_equal(m[i].seq, want[i]);
	for (i = 0; i < 7; i++)
		imap_sort_msg_free(&m[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_subject),
		cmocka_unit_test(test_base_subject_reply),
		cmocka_unit_test(test_parse_criteria),
		cmocka_unit_test(test_address_keys),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_collation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
