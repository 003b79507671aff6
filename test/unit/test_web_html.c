/*
 * test_web_html.c — unit tests of the web view's HTML sanitizer and of
 * the part descriptions it is fed by: what stays, what goes, what a
 * browser would have decoded into a scheme, and file names that try to
 * be paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "web_html.h"

/* Sanitizes in, without remote content unless remote, and compares. */
static void
assert_clean(const char *in, int remote, const char *want)
{
	char	*out;
	size_t	 len;

	assert_int_equal(web_html_sanitize(in, strlen(in), remote, NULL, &out,
	    &len), 0);
	assert_int_equal(strlen(out), len);
	assert_string_equal(out, want);
	free(out);
}

static void
test_kept_and_dropped(void **state)
{
	(void)state;
	assert_clean("<P Align=center>a &amp; b &lt; c & d</P>", 0,
	    "<p align=\"center\">a &amp; b &lt; c &amp; d</p>");
	assert_clean("<script>alert(1)</script>x", 0, "x");
	assert_clean("<SCRIPT >a</script >b", 0, "b");
	assert_clean("<img src=x onerror=alert(1)>", 0, "<img>");
	assert_clean("<!-- <script>x</script> -->y<!DOCTYPE html>z", 0, "yz");
	assert_clean("<meta http-equiv=refresh content=\"0;url=http://x/\">"
	    "<base href=http://x/><link rel=stylesheet href=http://x/>k", 0,
	    "k");
	assert_clean("<iframe src=http://x/><b>not</b></iframe>i", 0, "i");
	assert_clean("<svg><script>x</script><a>q</a></svg>s", 0, "s");
	assert_clean("<p title='a\"b'>t</p>", 0, "<p title=\"a&quot;b\">t</p>");
	assert_clean("1 < 2 > 0", 0, "1 &lt; 2 &gt; 0");
	assert_clean("<b unclosed=\"", 0, "<b>");
	assert_clean("<img src=\"http://x/a.png\">", 0, "<img>");
	assert_clean("<img src=\"http://x/a.png\">", 1,
	    "<img src=\"http://x/a.png\">");
	assert_clean("<style>p{color:red}</style>", 0,
	    "<style>p{color:red}</style>");
	assert_clean("<style>p{background:url(http://x/)}</style>s", 0, "s");
	assert_clean("<style>a</style><b>c</b></style>", 1,
	    "<style>a</style><b>c</b>");
	assert_clean("<div style=\"background:\\75rl(http://x/)\">d</div>", 0,
	    "<div>d</div>");

}

static void
test_links(void **state)
{
	(void)state;
	assert_clean("<a href=\"https://ok.test/?a=1&amp;b=2\">o</a>", 0,
	    "<a href=\"https://ok.test/?a=1&amp;b=2\" target=\"_blank\" "
	    "rel=\"noopener noreferrer\">o</a>");
	assert_clean("<a href=\"mailto:a@b\">m</a>", 0,
	    "<a href=\"mailto:a@b\" target=\"_blank\" "
	    "rel=\"noopener noreferrer\">m</a>");
	assert_clean("<a href=\"javascript:alert(1)\">j</a>", 0, "<a>j</a>");
	assert_clean("<a href=\"jav&#x61;script:alert(1)\">j</a>", 0,
	    "<a>j</a>");
	assert_clean("<a href=\"&#106;avascript:x\">j</a>", 0, "<a>j</a>");
	assert_clean("<a href=\"java\tscript:x\">j</a>", 0, "<a>j</a>");
	assert_clean("<a href=\"javascript&colon;x\">j</a>", 0, "<a>j</a>");
	assert_clean("<a href=\"data:text/html,x\">d</a>", 0, "<a>d</a>");
	assert_clean("<a href=\"/relative\">r</a>", 0, "<a>r</a>");
	assert_clean("<a href=\"&#x68;ttps://ok.test/\">h</a>", 0,
	    "<a href=\"&#x68;ttps://ok.test/\" target=\"_blank\" "
	    "rel=\"noopener noreferrer\">h</a>");
	assert_clean("<a target=_top href=http://x/ href=javascript:y>t</a>", 0,
	    "<a href=\"http://x/\" target=\"_blank\" "
	    "rel=\"noopener noreferrer\">t</a>");
}

/* NULs in names and text: U+FFFD, and the pass always moves on. */
static void
test_nul_bytes(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;
		const char	*want;
	} cases[] = {
		{ "<c \003hre\0script:m\0\0ipt\">x<b\0>y\0z", 31,
		    "x<b>y\xef\xbf\xbdz" },
		/* "ur" NUL "l(" is no url( to a browser, nor after */
		{ "<td style=\"x:ur\0l(http://x/)\">d</td>", 36,
		    "<td style=\"x:ur\xef\xbf\xbdl(http://x/)\">d</td>" },
	};
	char	*out;
	size_t	 len, i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(web_html_sanitize(cases[i].in, cases[i].len, 0,
		    NULL, &out, &len), 0);
		assert_int_equal(strlen(out), len);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
}

/* cid: images become this message's URL for the part, one segment. */
static void
test_cid_images(void **state)
{
	static const struct {
		const char	*in, *want;
	} cases[] = {
		{ "<img src=\"cid:a.b@c\">",
		    "<img src=\"/m/1/cid/a.b@c\">" },
		{ "<IMG SRC=' CID:x%40y '>", "<img src=\"/m/1/cid/x%40y\">" },
		{ "<img src=\"cid:../../raw?x#y\">",
		    "<img src=\"/m/1/cid/..%2F..%2Fraw%3Fx%23y\">" },
		{ "<img src=\"cid:&quot;&#x22;<\">",
		    "<img src=\"/m/1/cid/%26quot;%26%23x22;%3C\">" },
		{ "<img src=\"/m/1/cid/k\">", "<img src=\"/m/1/cid/k\">" },
		{ "<img src=\"/m/2/cid/k\">", "<img>" },
		{ "<img src=\"&#99;id:k\">", "<img>" },
		{ "<img src=\"cid:\">", "<img>" },
		{ "<a href=\"cid:k\">k</a>", "<a>k</a>" },
		{ "<td background=\"cid:k\">", "<td>" },
	};
	char	*out;
	size_t	 len, i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(web_html_sanitize(cases[i].in,
		    strlen(cases[i].in), 0, "/m/1/cid/", &out, &len), 0);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
	assert_clean("<img src=\"cid:k\">", 1, "<img>");
}

static void
test_part_describe(void **state)
{
	static const char h[] =
	    "Content-Type: application/pdf;\r\n name=\"a.pdf\"\r\n"
	    "Content-Transfer-Encoding: Base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"../../etc/pass\\\\wd\"\r\n\r\n";
	static const char t[] = "Content-Type: TEXT/HTML; charset=\"UTF-8\""
	    "\r\n\r\n";
	struct mime_part_desc	 d;

	(void)state;
	mime_part_describe(h, sizeof(h) - 1, &d);
	assert_string_equal(d.type, "application/pdf");
	assert_int_equal(d.cte, MIME_CTE_BASE64);
	assert_int_equal(d.attachment, 1);
	assert_null(strchr(d.filename, '/'));
	assert_null(strchr(d.filename, '\\'));
	mime_part_describe(t, sizeof(t) - 1, &d);
	assert_string_equal(d.type, "text/html");
	assert_string_equal(d.charset, "utf-8");
	assert_int_equal(d.attachment, 0);
	mime_part_describe("", 0, &d);
	assert_string_equal(d.type, "text/plain");
	assert_int_equal(d.cte, MIME_CTE_IDENTITY);
	assert_string_equal(d.content_id, "");
}

/* Content-ID: the id inside <>, or nothing when it could mislead. */
static void
test_content_id(void **state)
{
	static const struct {
		const char	*h, *want;
	} cases[] = {
		{ "Content-ID: <a.b@c>\r\n\r\n", "a.b@c" },
		{ "Content-Id:\r\n  <x@y> \r\n\r\n", "x@y" },
		{ "Content-ID: bare@id\r\n\r\n", "bare@id" },
		{ "Content-ID: <a b>\r\n\r\n", "" },
		{ "Content-ID: <>\r\n\r\n", "" },
	};
	struct mime_part_desc	 d;
	char			 h[600];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		mime_part_describe(cases[i].h, strlen(cases[i].h), &d);
		assert_string_equal(d.content_id, cases[i].want);
	}
	/* Too long to keep whole: cut, it could name another part. */
	i = (size_t)snprintf(h, sizeof(h), "Content-ID: <%0*d>\r\n\r\n",
	    MIME_MAX_CONTENT_ID, 0);
	mime_part_describe(h, i, &d);
	assert_string_equal(d.content_id, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_and_dropped),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_cid_images),
		cmocka_unit_test(test_part_describe),
		cmocka_unit_test(test_content_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
