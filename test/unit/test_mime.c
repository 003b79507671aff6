/*
 * test_mime.c — unit tests of the MIME pre-parser.
 *
 * The expected ENVELOPE, BODYSTRUCTURE and BODY strings were captured from
 * Dovecot 2.3.19 (imap, maildir) for the same messages; only the bare-LF
 * test differs on purpose (we count stored octets, Dovecot CRLF ones).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mime.h"
#include "unit_mime.h"

static const char msg_simple[] =
	    "From: Alice Example <alice@example.org>\r\n"
	    "To: bob@example.com\r\n"
	    "Subject: Lunch tomorrow?\r\n"
	    "Date: Tue, 2 Jan 2024 13:45:10 +0100\r\n"
	    "Message-ID: <1234@example.org>\r\n"
	    "\r\n"
	    "Shall we meet at noon?\r\n"
	    "-- \r\n"
	    "Alice\r\n";

static const char msg_addresses[] =
	    "From: \"Doe, John\" <john@example.com> (work)\r\n"
	    "To: undisclosed-recipients:;\r\n"
	    "Cc: Team: ann@example.com, \"B. \\\"Bo\\\" Smith\" <bo@example.c"
	    "om>;,"
	    " carol@example.com (Carol C)\r\n"
	    "Bcc: <@relay.example:dave@example.com>, broken@, \"quoted\\\\nam"
	    "e\"@example.com\r\n"
	    "Reply-To:\r\n"
	    "In-Reply-To: <a@b> <c@d>\r\n"
	    "Subject: a \"quoted\" word\r\n"
	    "\r\n"
	    "body\r\n";

static const char msg_rfc2047[] =
	    "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
	    "To: =?UTF-8?B?SsO2cmc=?= <joerg@example.de>, =?KOI8-R?B?8NLJ18XU"
	    "?= "
	    "<x@y>\r\n"
	    "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
	    " =?utf-8?b?IGNyw6htZQ==?= and =?us-ascii?q?more_text?= =?bogus\r\n"
	    "\r\n"
	    "x\r\n";

static const char msg_alternative[] =
	    "From: a@example.com\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=\"=_alt\"\r\n"
	    "\r\n"
	    "This is a multi-part message in MIME format.\r\n"
	    "--=_alt\r\n"
	    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "Hello, w\xc3\xb6rld\r\n"
	    "--=_alt\r\n"
	    "Content-Type: text/html; charset=\"utf-8\"\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "<p>Hello, w=C3=B6rld</p>\r\n"
	    "--=_alt--\r\n";

static const char msg_attachment[] =
	    "From: a@example.com\r\n"
	    "Subject: report\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed;\r\n"
	    "\tboundary=\"----=_NextPart_000\"\r\n"
	    "\r\n"
	    "------=_NextPart_000\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "See attached.\r\n"
	    "------=_NextPart_000\r\n"
	    "Content-Type: application/pdf; name=\"report.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"report.pdf\"; size=6"
	    "\r\n"
	    "Content-ID: <part2@example.com>\r\n"
	    "Content-Description: Quarterly report\r\n"
	    "Content-Language: en, de-CH\r\n"
	    "Content-Location: http://example.com/r.pdf\r\n"
	    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
	    "\r\n"
	    "JVBERi0=\r\n"
	    "------=_NextPart_000\r\n"
	    "Content-Type: text/plain; name*0=\"long \"; name*1=\"name.txt\""
	    "\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename*=UTF-8''%E2%82%AC%20rates.txt\r\n"
	    "\r\n"
	    "1 EUR\r\n"
	    "------=_NextPart_000--\r\n";

static const char msg_nested[] =
	    "From: outer@example.com\r\n"
	    "Subject: fwd\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "\r\n"
	    "See the forwarded message.\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "From: inner@example.com\r\n"
	    "Subject: original\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "plain text\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<b>html</b>\r\n"
	    "--inner--\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "Subject: simple inner\r\n"
	    "\r\n"
	    "just text\r\n"
	    "--outer--\r\n";

static const char msg_digest[] =
	    "Subject: digest\r\n"
	    "Content-Type: multipart/digest; boundary=d\r\n"
	    "\r\n"
	    "--d\r\n"
	    "\r\n"
	    "Subject: first\r\n"
	    "\r\n"
	    "one\r\n"
	    "--d\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "not a message\r\n"
	    "--d--\r\n";

static const char msg_barelf[] =
	    "Subject: bare\n"
	    "Content-Type: multipart/mixed; boundary=x\n"
	    "\n"
	    "--x\n"
	    "\n"
	    "first\n"
	    "second\n"
	    "--x\n"
	    "Content-Type: text/html\n"
	    "\n"
	    "<p>\n"
	    "--x--\n";

static const char msg_unterminated[] =
	    "Content-Type: multipart/mixed; boundary=u\r\n"
	    "\r\n"
	    "--u\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "first\r\n"
	    "--u\r\n"
	    "Content-Type: multipart/related; boundary=v\r\n"
	    "\r\n"
	    "--v\r\n"
	    "\r\n"
	    "deep and never closed\r\n";

static const char msg_quoting[] =
	    "Subject: caf\xc3\xa9 \t tab\r\n"
	    "From: \"\\\\\\\\\\\\\" <x@y>\r\n"
	    "Message-ID: <\"1\"\"2\"\"3\"@x>\r\n"
	    "Content-Type: text/plain; name=\"a\\\"b\"\r\n"
	    "Content-Description: \xc3\xa9t\xc3\xa9\r\n"
	    "\r\n";

/* Parses a message held in a string literal; fails the test on error. */
static void
parse(const char *msg, size_t len, struct mime_result *r)
{
	assert_int_equal(mime_parse_buffer(msg, len, r), 0);
	assert_int_equal(r->size, len);
	assert_non_null(r->parts);
	assert_true(r->nparts >= 1);
	assert_string_equal(r->parts[0].section, "");
}

/* The part with this section, which must exist. */
static const struct mime_part *
part(const struct mime_result *r, const char *section)
{
	size_t	 i;

	for (i = 0; i < r->nparts; i++)
		if (strcmp(r->parts[i].section, section) == 0)
			return &r->parts[i];
	fail_msg("no part %s", section);
	return NULL;
}

/* Checks msg[start, end) against want. */
static void
check_slice(const char *msg, uint64_t start, uint64_t end, const char *want)
{
	assert_true(start <= end);
	assert_int_equal(end - start, strlen(want));
	assert_memory_equal(msg + start, want, end - start);
}

/* BODY[section], BODY[section.MIME] as served from the parts table. */
static void
check_section(const char *msg, const struct mime_result *r,
    const char *section, const char *mime, const char *body)
{
	const struct mime_part	*p = part(r, section);

	check_slice(msg, p->header_start, p->body_start, mime);
	check_slice(msg, p->body_start, p->body_end, body);
}

static void
check_structure(const struct mime_result *r, const char *envelope,
    const char *bodystructure, const char *body)
{
	assert_string_equal(r->envelope, envelope);
	assert_string_equal(r->bodystructure, bodystructure);
	assert_string_equal(r->body, body);
}

static void
test_simple(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_simple;

	(void)state;
	parse(m, sizeof(msg_simple) - 1, &r);
	check_structure(&r,
	    "(\"Tue, 2 Jan 2024 13:45:10 +0100\" \"Lunch tomorrow?\" ((\"Alice "
	    "Example\" NIL \"alice\" \"example.org\")) ((\"Alice Example\" "
	    "NIL \"alice\" \"example.org\")) ((\"Alice Example\" NIL \"alice\" "
	    "\"example.org\")) ((NIL NIL \"bob\" \"example.com\")) NIL NIL "
	    "NIL \"<1234@example.org>\")",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "36 3 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "36 3)");
	assert_string_equal(r.subject, "Lunch tomorrow?");
	assert_string_equal(r.from, "Alice Example <alice@example.org>");
	assert_string_equal(r.to, "bob@example.com");
	assert_string_equal(r.message_id, "<1234@example.org>");
	assert_int_equal(r.date, 1704199510);
	/* a non-multipart message is part "1" as well as part "" */
	assert_int_equal(r.nparts, 2);
	assert_int_equal(r.header_len, 160);
	assert_memory_equal(r.header, m, 160);
	check_section(m, &r, "", r.header,
	    "Shall we meet at noon?\r\n-- \r\nAlice\r\n");
	check_section(m, &r, "1", r.header,
	    "Shall we meet at noon?\r\n-- \r\nAlice\r\n");
	check_slice(m, r.parts[0].header_start, r.parts[0].body_start - 2,
	    "From: Alice Example <alice@example.org>\r\n"
	    "To: bob@example.com\r\n"
	    "Subject: Lunch tomorrow?\r\n"
	    "Date: Tue, 2 Jan 2024 13:45:10 +0100\r\n"
	    "Message-ID: <1234@example.org>\r\n");
	mime_result_free(&r);
}

/* Groups, quoted names, comments, routes, broken addresses, defaults. */
static void
test_addresses(void **state)
{
	struct mime_result	 r;

	(void)state;
	parse(msg_addresses, sizeof(msg_addresses) - 1, &r);
	check_structure(&r,
	    "(NIL {15}\r\n"
	    "a \"quoted\" word ((\"Doe, John\" NIL \"john\" \"example.com\")"
	    ") ((\"Doe, John\" NIL \"john\" \"example.com\")) ((\"Doe, John\" "
	    "NIL \"john\" \"example.com\")) ((NIL NIL \"undisclosed-recipient"
	    "s\" "
	    "NIL)(NIL NIL NIL NIL)) ((NIL NIL \"Team\" NIL)(NIL NIL \"ann\" "
	    "\"example.com\")({13}\r\n"
	    "B. \"Bo\" Smith NIL \"bo\" \"example.com\")(NIL NIL NIL NIL)"
	    "(\"Carol C\" NIL \"carol\" \"example.com\")) ((NIL \"@relay.exam"
	    "ple\" "
	    "\"dave\" \"example.com\")(NIL NIL \"broken\" \"MISSING_DOMAIN\")"
	    "(NIL NIL \"quoted\\\\name\" \"example.com\")) \"<a@b> <c@d>\" "
	    "NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "6 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "6 1)");
	assert_string_equal(r.from, "\"Doe, John\" <john@example.com> (work)");
	assert_null(r.message_id);
	assert_int_equal(r.date, -1);
	mime_result_free(&r);
}

static void
test_missing_fields(void **state)
{
	static const char	 m[] = "Subject:\r\nX-Y: z\r\n\r\nbody\r\n";
	struct mime_result	 r;

	(void)state;
	parse(m, sizeof(m) - 1, &r);
	assert_string_equal(r.envelope,
	    "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(r.subject, "");
	assert_string_equal(r.from, "");
	assert_string_equal(r.to, "");
	mime_result_free(&r);
}

/* RFC 2047 words are decoded in the fields, never in the ENVELOPE. */
static void
test_rfc2047(void **state)
{
	struct mime_result	 r;

	(void)state;
	parse(msg_rfc2047, sizeof(msg_rfc2047) - 1, &r);
	check_structure(&r,
	    "(NIL {83}\r\n"
	    "=?utf-8?q?caf=C3=A9?= =?utf-8?b?IGNyw6htZQ==?= and =?us-ascii?q?"
	    "more_text?= "
	    "=?bogus ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" "
	    "\"vm1.ulg.ac.be\")) ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL "
	    "\"PIRARD\" \"vm1.ulg.ac.be\")) ((\"=?ISO-8859-1?Q?Andr=E9?= "
	    "Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\")) ((\"=?UTF-8?B?SsO2cm"
	    "c=?=\" "
	    "NIL \"joerg\" \"example.de\")(\"=?KOI8-R?B?8NLJ18XU?=\" NIL "
	    "\"x\" \"y\")) NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "3 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "3 1)");
	assert_string_equal(r.subject,
	    "caf\xc3\xa9 cr\xc3\xa8me and more text =?bogus");
	assert_string_equal(r.from,
	    "Andr\xc3\xa9 Pirard <PIRARD@vm1.ulg.ac.be>");
	assert_string_equal(r.to,
	    "J\xc3\xb6rg <joerg@example.de>, =?KOI8-R?B?8NLJ18XU?= <x@y>");
	mime_result_free(&r);
}

static time_t
date_of(const char *value)
{
	struct mime_result	 r;
	char			 m[256];
	time_t			 t;

	snprintf(m, sizeof(m), "Date: %s\r\n\r\n", value);
	parse(m, strlen(m), &r);
	t = r.date;
	mime_result_free(&r);
	return t;
}

static void
test_date(void **state)
{
	(void)state;
	assert_int_equal(date_of("Tue, 2 Jan 2024 13:45:10 +0100"),
	    1704199510);
	assert_int_equal(date_of("2 Jan 2024 12:45:10 GMT"), 1704199510);
	assert_int_equal(date_of("Tue, 02 Jan 24 07:45:10 EST"), 1704199510);
	assert_int_equal(date_of("Tue (x), 2 Jan 2024 12:45 (y) +0000"),
	    1704199500);
	assert_int_equal(date_of("Thu, 1 Jan 1970 00:00:00 -0000"), 0);
	assert_int_equal(date_of("1 Jan 100 00:00:00 +0000"), 946684800);
	assert_int_equal(date_of("31 Dec 99 23:59:60 +0000"), 946684800);
	assert_int_equal(date_of("29 Feb 2024 00:00:00 -0130"), 1709170200);
	assert_int_equal(date_of("29 Feb 2023 00:00:00 +0000"), -1);
	assert_int_equal(date_of("2 Jan 2024 24:00:00 +0000"), -1);
	assert_int_equal(date_of("yesterday"), -1);
	assert_int_equal(date_of(""), -1);
}

static void
test_alternative(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_alternative;

	(void)state;
	parse(m, sizeof(msg_alternative) - 1, &r);
	check_structure(&r,
	    "(NIL NIL ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"exa"
	    "mple.com\")"
	    ") ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\")"
	    " NIL NIL \"8bit\" 13 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"cha"
	    "rset\" "
	    "\"utf-8\") NIL NIL \"quoted-printable\" 24 0 NIL NIL NIL NIL)"
	    " \"alternative\" (\"boundary\" \"=_alt\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\")"
	    " NIL NIL \"8bit\" 13 0)(\"text\" \"html\" (\"charset\" \"utf-8\")"
	    " NIL NIL \"quoted-printable\" 24 0) \"alternative\")");
	assert_int_equal(r.nparts, 3);
	assert_true(r.parts[0].is_multipart);
	check_section(m, &r, "1",
	    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n",
	    "Hello, w\xc3\xb6rld");
	check_section(m, &r, "2",
	    "Content-Type: text/html; charset=\"utf-8\"\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
	    "<p>Hello, w=C3=B6rld</p>");
	mime_result_free(&r);
}

/* Disposition, filename, RFC 2231 continuations and extension data. */
static void
test_attachment(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_attachment;

	(void)state;
	parse(m, sizeof(msg_attachment) - 1, &r);
	check_structure(&r,
	    "(NIL \"report\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL "
	    "\"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL "
	    "NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "13 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"report"
	    ".pdf\")"
	    " \"<part2@example.com>\" \"Quarterly report\" \"base64\" 8 \"Q2h"
	    "lY2sgSW50ZWdyaXR5IQ==\" "
	    "(\"attachment\" (\"filename\" \"report.pdf\" \"size\" \"6\")"
	    ") (\"en\" \"de-CH\") \"http://example.com/r.pdf\")(\"text\" "
	    "\"plain\" (\"name\" \"long name.txt\" \"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 5 0 NIL (\"attachment\" (\"filename*\" \"UTF-8"
	    "''%E2%82%AC%20rates.txt\")"
	    ") NIL NIL) \"mixed\" (\"boundary\" \"----=_NextPart_000\") NIL "
	    "NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "13 0)(\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<part2"
	    "@example.com>\" "
	    "\"Quarterly report\" \"base64\" 8)(\"text\" \"plain\" (\"name\" "
	    "\"long name.txt\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "5 0) \"mixed\")");
	check_section(m, &r, "1", "Content-Type: text/plain; "
	    "charset=us-ascii\r\n\r\n", "See attached.");
	check_slice(m, part(&r, "2")->body_start, part(&r, "2")->body_end,
	    "JVBERi0=");
	check_slice(m, part(&r, "3")->body_start, part(&r, "3")->body_end,
	    "1 EUR");
	mime_result_free(&r);
}

/* message/rfc822 parts, one holding a multipart: 2.1, 2.HEADER, 3.1... */
static void
test_nested(void **state)
{
	struct mime_result	 r;
	const struct mime_part	*p;
	const char		*m = msg_nested;

	(void)state;
	parse(m, sizeof(msg_nested) - 1, &r);
	check_structure(&r,
	    "(NIL \"fwd\" ((NIL NIL \"outer\" \"example.com\")) ((NIL NIL "
	    "\"outer\" \"example.com\")) ((NIL NIL \"outer\" \"example.com\")"
	    ") NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "26 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "
	    "208 (NIL \"original\" ((NIL NIL \"inner\" \"example.com\")) "
	    "((NIL NIL \"inner\" \"example.com\")) ((NIL NIL \"inner\" \"exam"
	    "ple.com\")"
	    ") NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-as"
	    "cii\")"
	    " NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"cha"
	    "rset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) \"alternati"
	    "ve\" "
	    "(\"boundary\" \"inner\") NIL NIL NIL) 13 NIL NIL NIL NIL)(\"mess"
	    "age\" "
	    "\"rfc822\" NIL NIL NIL \"7bit\" 34 (NIL \"simple inner\" NIL "
	    "NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL) 2 NIL NIL "
	    "NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "26 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 208 (NIL \"ori"
	    "ginal\" "
	    "((NIL NIL \"inner\" \"example.com\")) ((NIL NIL \"inner\" \"exam"
	    "ple.com\")"
	    ") ((NIL NIL \"inner\" \"example.com\")) NIL NIL NIL NIL NIL)"
	    " ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "10 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bi"
	    "t\" "
	    "11 0) \"alternative\") 13)(\"message\" \"rfc822\" NIL NIL NIL "
	    "\"7bit\" 34 (NIL \"simple inner\" NIL NIL NIL NIL NIL NIL NIL "
	    "NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 9 0) 2) \"mixed\")");
	assert_int_equal(r.nparts, 7);
	check_section(m, &r, "1", "\r\n", "See the forwarded message.");
	p = part(&r, "2");
	assert_true(p->is_message);
	assert_false(p->is_multipart);
	check_slice(m, p->header_start, p->body_start,
	    "Content-Type: message/rfc822\r\n\r\n");
	/* BODY[2.HEADER] and BODY[2.TEXT] */
	check_slice(m, p->body_start, p->inner_body_start,
	    "From: inner@example.com\r\n"
	    "Subject: original\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n\r\n");
	check_slice(m, p->inner_body_start, p->body_end,
	    "--inner\r\nContent-Type: text/plain\r\n\r\nplain text\r\n"
	    "--inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n"
	    "--inner--\r\n");
	check_section(m, &r, "2.1", "Content-Type: text/plain\r\n\r\n",
	    "plain text");
	check_section(m, &r, "2.2", "Content-Type: text/html\r\n\r\n",
	    "<b>html</b>");
	p = part(&r, "3");
	assert_true(p->is_message);
	check_slice(m, p->body_start, p->inner_body_start,
	    "Subject: simple inner\r\n\r\n");
	/* a non-multipart message inside: its body is 3.1 */
	check_section(m, &r, "3.1", "Subject: simple inner\r\n\r\n",
	    "just text");
	mime_result_free(&r);
}

/* In a multipart/digest a part without Content-Type is a message. */
static void
test_digest(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_digest;

	(void)state;
	parse(m, sizeof(msg_digest) - 1, &r);
	check_structure(&r,
	    "(NIL \"digest\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 (NIL \"first\" "
	    "NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 2 NIL NIL "
	    "NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 13 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\")"
	    " NIL NIL NIL)",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 (NIL \"first\" "
	    "NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 3 0) 2)(\"text\" \"plain\" (\"cha"
	    "rset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 13 0) \"digest\")");
	assert_true(part(&r, "1")->is_message);
	assert_false(part(&r, "2")->is_message);
	check_section(m, &r, "1.1", "Subject: first\r\n\r\n", "one");
	mime_result_free(&r);
}

/* Bare LF line ends: sizes are the octets as stored. */
static void
test_bare_lf(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_barelf;

	(void)state;
	parse(m, sizeof(msg_barelf) - 1, &r);
	check_structure(&r,
	    "(NIL \"bare\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "12 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" "
	    "\"x\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "12 1)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bi"
	    "t\" "
	    "3 0) \"mixed\")");
	check_section(m, &r, "1", "\n", "first\nsecond");
	check_section(m, &r, "2", "Content-Type: text/html\n\n", "<p>");
	mime_result_free(&r);
}

static void
test_no_header(void **state)
{
	static const char	 m[] = "\r\njust a body\r\nline two\r\n";
	struct mime_result	 r;

	(void)state;
	parse(m, sizeof(m) - 1, &r);
	check_structure(&r, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "23 2 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "23 2)");
	assert_int_equal(r.header_len, 2);
	check_section(m, &r, "1", "\r\n", "just a body\r\nline two\r\n");
	mime_result_free(&r);
}

static void
test_no_blank_line(void **state)
{
	static const char	 m[] = "Subject: only a header\r\nX-Other: y";
	struct mime_result	 r;

	(void)state;
	parse(m, sizeof(m) - 1, &r);
	assert_string_equal(r.envelope,
	    "(NIL \"only a header\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(r.body, "(\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 0 0)");
	assert_string_equal(r.subject, "only a header");
	check_section(m, &r, "1", m, "");
	mime_result_free(&r);
}

static void
test_unterminated(void **state)
{
	struct mime_result	 r;
	const char		*m = msg_unterminated;

	(void)state;
	parse(m, sizeof(msg_unterminated) - 1, &r);
	check_structure(&r,
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "5 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii"
	    "\")"
	    " NIL NIL \"7bit\" 23 1 NIL NIL NIL NIL) \"related\" (\"boundary\" "
	    "\"v\") NIL NIL NIL) \"mixed\" (\"boundary\" \"u\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "5 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 23 1) \"related\") \"mixed\")");
	check_section(m, &r, "2.1", "\r\n", "deep and never closed\r\n");
	assert_int_equal(part(&r, "2")->body_end, sizeof(msg_unterminated) - 1);
	mime_result_free(&r);
}

/* Quoted strings, escapes and literals for 8-bit text, as Dovecot. */
static void
test_quoting(void **state)
{
	struct mime_result	 r;

	(void)state;
	parse(msg_quoting, sizeof(msg_quoting) - 1, &r);
	check_structure(&r,
	    "(NIL {9}\r\n"
	    "caf\xc3\xa9 tab (({3}\r\n"
	    "\\\\\\ NIL \"x\" \"y\")) (({3}\r\n"
	    "\\\\\\ NIL \"x\" \"y\")) (({3}\r\n"
	    "\\\\\\ NIL \"x\" \"y\")) NIL NIL NIL NIL {13}\r\n"
	    "<\"1\"\"2\"\"3\"@x>)",
	    "(\"text\" \"plain\" (\"name\" \"a\\\"b\" \"charset\" \"us-ascii\")"
	    " NIL {5}\r\n"
	    "\xc3\xa9t\xc3\xa9 \"7bit\" 0 0 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"name\" \"a\\\"b\" \"charset\" \"us-ascii\")"
	    " NIL {5}\r\n"
	    "\xc3\xa9t\xc3\xa9 \"7bit\" 0 0)");
	mime_result_free(&r);
}

/* At most four escapes in a quoted string, then a literal (Dovecot). */
static void
test_escapes(void **state)
{
	static const char	 m[] = "Message-ID: <\"a\"\"b\"@x>\r\n"
	    "In-Reply-To: <\"a\"\"b\"\"c\"@x>\r\n\r\n";
	struct mime_result	 r;

	(void)state;
	parse(m, sizeof(m) - 1, &r);
	assert_string_equal(r.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL "
	    "{13}\r\n<\"a\"\"b\"\"c\"@x> \"<\\\"a\\\"\\\"b\\\"@x>\")");
	assert_string_equal(r.message_id, "<\"a\"\"b\"@x>");
	mime_result_free(&r);
}

/* Feeds msg one line at a time, or in pieces of step bytes. */
static void
parse_fed(const char *msg, size_t len, size_t step, struct mime_result *r)
{
	struct mime_parser	*p;
	const char		*nl;
	size_t			 off, n;

	assert_non_null(p = mime_parser_new());
	for (off = 0; off < len; off += n) {
		if (step > 0)
			n = len - off < step ? len - off : step;
		else {
			nl = memchr(msg + off, '\n', len - off);
			n = nl != NULL ? (size_t)(nl - (msg + off)) + 1 :
			    len - off;
		}
		mime_parser_feed(p, msg + off, n);
	}
	assert_int_equal(mime_parser_finish(p, r), 0);
	mime_parser_free(p);
}


/* Whole, line by line, byte by byte: the same result. */
static void
test_streaming(void **state)
{
	static const char *const msgs[] = {
		msg_simple, msg_addresses, msg_rfc2047, msg_alternative,
		msg_attachment, msg_nested, msg_digest, msg_barelf,
		msg_unterminated, msg_quoting
	};
	struct mime_result	 whole, lines, bytes, odd;
	size_t			 i, len;

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		len = strlen(msgs[i]);
		parse(msgs[i], len, &whole);
		parse_fed(msgs[i], len, 0, &lines);
		parse_fed(msgs[i], len, 1, &bytes);
		parse_fed(msgs[i], len, 7, &odd);
		unit_mime_same(&whole, &lines);
		unit_mime_same(&whole, &bytes);
		unit_mime_same(&whole, &odd);
		mime_result_free(&whole);
		mime_result_free(&lines);
		mime_result_free(&bytes);
		mime_result_free(&odd);
	}
}

/* Checks the invariants every result keeps, whatever the input. */
static void
check_sane(const struct mime_result *r, size_t len)
{
	size_t	 i;

	assert_non_null(r->envelope);
	assert_non_null(r->bodystructure);
	assert_non_null(r->body);
	assert_int_equal(r->size, len);
	assert_true(r->nparts >= 1 && r->nparts <= MIME_MAX_PARTS + 1);
	for (i = 0; i < r->nparts; i++) {
		assert_true(r->parts[i].header_start <= r->parts[i].body_start);
		assert_true(r->parts[i].body_start <=
		    r->parts[i].inner_body_start);
		assert_true(r->parts[i].inner_body_start <=
		    r->parts[i].body_end);
		assert_true(r->parts[i].body_end <= len);
	}
}

/* Random bytes, NULs and boundary-like lines never crash or hang. */
static void
test_garbage(void **state)
{
	static const char	 bits[] = "--b\r\n:;\"()<>@\\=?\t \0\xff";
	struct mime_result	 r;
	unsigned		 seed = 12345, i, j, len;
	char			 buf[2048];

	(void)state;
	for (i = 0; i < 2000; i++) {
		len = (seed = seed * 1103515245 + 12345) % sizeof(buf);
		for (j = 0; j < len; j++) {
			seed = seed * 1103515245 + 12345;
			buf[j] = (seed >> 16) % 3 == 0 ? (char)(seed >> 8) :
			    bits[(seed >> 16) % (sizeof(bits) - 1)];
		}
		if (i % 2 == 0 && len > 60)
			memcpy(buf, "Content-Type: multipart/mixed; "
			    "boundary=b\r\n\r\n--b\r\n", 48);
		parse(buf, len, &r);
		check_sane(&r, len);
		mime_result_free(&r);
	}
}

/* 100 nested multiparts: described to MIME_MAX_DEPTH, then opaque. */
static void
test_deep_nesting(void **state)
{
	struct mime_result	 r;
	const char		*s;
	char			*m;
	size_t			 len = 0, i, dots, maxdots = 0;

	(void)state;
	assert_non_null(m = malloc(100 * 160 + 64));
	for (i = 0; i < 100; i++)
		len += sprintf(m + len, "Content-Type: multipart/mixed; "
		    "boundary=\"%03zu\"\r\n\r\n--%03zu\r\n", i, i);
	len += sprintf(m + len, "\r\ninnermost\r\n");
	parse(m, len, &r);
	check_sane(&r, len);
	for (i = 0; i < r.nparts; i++) {
		for (s = r.parts[i].section, dots = 0; *s != '\0'; s++)
			dots += *s == '.';
		if (dots > maxdots)
			maxdots = dots;
	}
	assert_int_equal(maxdots, MIME_MAX_DEPTH - 1);
	assert_true(r.nparts <= MIME_MAX_DEPTH + 1);
	/* the part at the limit is an opaque body of type multipart */
	assert_non_null(strstr(r.bodystructure, "(\"multipart\" \"mixed\" "
	    "(\"boundary\" \"032\") NIL NIL \"7bit\""));
	mime_result_free(&r);

	/* and 100 nested messages */
	for (len = 0, i = 0; i < 100; i++)
		len += sprintf(m + len, "Content-Type: message/rfc822\r\n\r\n");
	parse(m, len, &r);
	check_sane(&r, len);
	assert_true(r.nparts <= MIME_MAX_DEPTH + 2);
	mime_result_free(&r);
	free(m);
}

/* More parts than MIME_MAX_PARTS: the rest stays in the parent. */
static void
test_many_parts(void **state)
{
	static const char	 head[] =
	    "Content-Type: multipart/mixed; boundary=p\r\n\r\n";
	struct mime_result	 r;
	char			*m;
	size_t			 len, i;

	(void)state;
	assert_non_null(m = malloc(sizeof(head) + 1500 * 12 + 16));
	len = sprintf(m, "%s", head);
	for (i = 0; i < 1500; i++)
		len += sprintf(m + len, "--p\r\n\r\nx%zu\r\n", i % 10);
	len += sprintf(m + len, "--p--\r\n");
	parse(m, len, &r);
	check_sane(&r, len);
	assert_int_equal(r.nparts, MIME_MAX_PARTS);
	assert_string_equal(r.parts[r.nparts - 1].section, "999");
	check_section(m, &r, "999", "\r\n", "x8");
	mime_result_free(&r);
	free(m);
}

/* A megabyte line, a 200-byte boundary, a header past MIME_MAX_HEADER. */
static void
test_long_lines(void **state)
{
	struct mime_result	 r;
	const struct mime_part	*p;
	char			*m, b[201];
	size_t			 len, hlen;

	(void)state;
	memset(b, 'q', 200);
	b[200] = '\0';
	assert_non_null(m = malloc(3 * 1024 * 1024));
	len = sprintf(m, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
	    "Subject: ", b);
	memset(m + len, 's', 100000);
	len += 100000;
	len += sprintf(m + len, "\r\n\r\n--%s\r\n\r\n", b);
	hlen = len;
	memset(m + len, 'x', 1024 * 1024);
	len += 1024 * 1024;
	len += sprintf(m + len, "\r\n--%s--\r\n", b);
	parse(m, len, &r);
	check_sane(&r, len);
	assert_int_equal(r.header_len, MIME_MAX_HEADER);
	p = part(&r, "1");
	/* boundaries are cut at MIME_MAX_BOUNDARY, lines still match */
	assert_int_equal(p->body_start, hlen);
	assert_int_equal(p->body_end, hlen + 1024 * 1024);
	mime_result_free(&r);
	free(m);
}

static void
test_parts_encoding(void **state)
{
	static const char	 bad_section[] = { 1, 1, 2, 'x', '1', 0, 0, 0,
	    0, 0 };
	struct mime_result	 r;
	struct mime_part	*parts;
	char			*enc;
	size_t			 len, n, i;

	(void)state;
	parse(msg_nested, sizeof(msg_nested) - 1, &r);
	assert_int_equal(mime_parts_encode(r.parts, r.nparts, &enc, &len), 0);
	assert_int_equal(mime_parts_decode(enc, len, &parts, &n), 0);
	assert_int_equal(n, r.nparts);
	assert_memory_equal(parts, r.parts, n * sizeof(*parts));
	free(parts);
	/* every truncation, a wrong version and a trailing byte fail */
	for (i = 0; i < len; i++)
		assert_int_equal(mime_parts_decode(enc, i, &parts, &n), -1);
	enc[0] = 99;
	assert_int_equal(mime_parts_decode(enc, len, &parts, &n), -1);
	enc[0] = 1;
	enc = realloc(enc, len + 1);
	assert_non_null(enc);
	enc[len] = 0;
	assert_int_equal(mime_parts_decode(enc, len + 1, &parts, &n), -1);
	assert_int_equal(mime_parts_decode(bad_section, sizeof(bad_section),
	    &parts, &n), -1);
	assert_int_equal(mime_parts_decode("garbage!", 8, &parts, &n), -1);
	assert_int_equal(mime_parts_decode("", 0, &parts, &n), -1);
	free(enc);
	mime_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_rfc2047),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_attachment),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_no_header),
		cmocka_unit_test(test_no_blank_line),
		cmocka_unit_test(test_unterminated),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_parts_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
