/*
 * test_mime_decode.c — unit tests of the Content-Transfer-Encoding
 * decoders (mime_decode.c).  Every case is decoded whole and again one
 * byte at a time: a part arrives in chunks that may cut it anywhere.
 * The first quoted-printable case is imaptest's fetch-binary-mime-qp,
 * whose decoded bytes Dovecot 2.3 returns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mime.h"

/* Decodes in[0, n) as cte in chunks of `step` bytes; returns the length. */
static size_t
decode_in_steps(enum mime_cte cte, const char *in, size_t n, size_t step,
    unsigned char *out)
{
	struct mime_decoder	 d;
	size_t			 i, o = 0, k;

	mime_decoder_init(&d, cte);
	for (i = 0; i < n; i += k) {
		k = n - i < step ? n - i : step;
		o += mime_decode(&d, (const unsigned char *)in + i, k, out + o);
	}
	return o + mime_decode_end(&d, out + o);
}

/* Checks that in decodes to want, whole and byte by byte. */
static void
assert_decodes(enum mime_cte cte, const char *in, const char *want,
    size_t wantlen)
{
	size_t		 n = strlen(in), step;
	unsigned char	*out = malloc(n + MIME_DECODE_SLACK);
	size_t		 got;

	assert_non_null(out);
	for (step = 1; step <= n; step++) {
		got = decode_in_steps(cte, in, n, step, out);
		assert_int_equal(got, wantlen);
		assert_memory_equal(out, want, wantlen);
	}
	free(out);
}

static void
test_cte_names(void **state)
{
	(void)state;
	assert_int_equal(mime_cte_parse(" Base64 \r\n", 10), MIME_CTE_BASE64);
	assert_int_equal(mime_cte_parse("QUOTED-PRINTABLE", 16), MIME_CTE_QP);
	assert_int_equal(mime_cte_parse("8bit", 4), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("binary", 6), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("7bit", 4), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("x-uuencode", 10), MIME_CTE_UNKNOWN);
	assert_int_equal(mime_cte_parse("base6", 5), MIME_CTE_UNKNOWN);
	assert_int_equal(mime_cte_parse("", 0), MIME_CTE_UNKNOWN);
}

static void
test_base64(void **state)
{
	static const char	 want[] = "abcdefg\rhijkl\r\nmno\npqrstuvqxyz";

	(void)state;
	assert_decodes(MIME_CTE_BASE64,
	    "YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6\r\n\r\n", want,
	    sizeof(want) - 1);
	/* Blanks and line ends inside the groups are not data. */
	assert_decodes(MIME_CTE_BASE64, "  aGVs    \r\n bG8g  \r\n   d29y  "
	    "\t \r\n    bGQ= \r\n", "hello world", 11);
	assert_decodes(MIME_CTE_BASE64, "R3LDvMOfZSBhdXMg\r\nS8O2bG4sIMOJVMOJ",
	    "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln, \xc3\x89T\xc3\x89", 24);
	assert_decodes(MIME_CTE_BASE64, "aGVsbG8=\r\n", "hello", 5);
	/* NUL and 8-bit bytes come out as they are. */
	assert_decodes(MIME_CTE_BASE64, "AP8A", "\0\377\0", 3);
}

static void
test_quoted_printable(void **state)
{
	static const char	 in[] =
	    "hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\n"
	    "foo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\n"
	    "foo_bar\r\n";
	static const char	 want[] =
	    "hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\n"
	    "foo\r\nbar\r\nfoo_bar\r\n";

	(void)state;
	assert_decodes(MIME_CTE_QP, in, want, sizeof(want) - 1);
	assert_decodes(MIME_CTE_QP, "caf=C3=a9 au=\r\n lait=\nnoir =zz=4 "
	    "=\r\nend=", "caf\xc3\xa9 au lait" "noir =zz=4 end", 27);
	/* An "=" that starts no escape is kept, with what follows it. */
	assert_decodes(MIME_CTE_QP, "a=zb =4x =  c", "a=zb =4x =  c", 13);
	assert_decodes(MIME_CTE_QP, "= 41", "= 41", 4);
	assert_decodes(MIME_CTE_QP, "end=4", "end=4", 5);
	/* Blanks at the very end end the last line: padding. */
	assert_decodes(MIME_CTE_QP, "x=00y  ", "x\0y", 3);
	assert_decodes(MIME_CTE_QP, "soft=", "soft", 4);
}

/* A run of blanks longer than the decoder holds is written, not lost. */
static void
test_long_blank_run(void **state)
{
	char		 in[3 * MIME_QP_BLANKS + 3];
	size_t		 n = 3 * MIME_QP_BLANKS;

	(void)state;
	in[0] = 'a';
	memset(in + 1, ' ', n);
	in[n + 1] = 'b';
	in[n + 2] = '\0';
	assert_decodes(MIME_CTE_QP, in, in, n + 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cte_names),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_quoted_printable),
		cmocka_unit_test(test_long_blank_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
