/*
 * test_spool.c — a message spooled in chunks cut anywhere is the message
 * spooled whole: the same bytes kept, the same GUID, the same MIME
 * pre-parse (BODYSTRUCTURE, ENVELOPE, header, parts), whether it stays in
 * memory or outgrows it into the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "spool.h"
#include "unit_mime.h"

/* What spooling one message gave, kept to compare with another way. */
struct spooled {
	uint8_t		 guid[GUID_LEN];
	char		*bytes;
	uint64_t	 size;
	struct mime_result mime;
};

static char	 dir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/mailrepd-spool-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char	 cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static char *
copy(const void *p, size_t n)
{
	char	*c = malloc(n + 1);

	assert_non_null(c);
	memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

/*
 * Spools msg[0, len) in the chunks that cuts[0, ncuts) (ascending
 * offsets) make, and keeps what came out in *out.
 */
static void
spool_cut(const char *msg, size_t len, const size_t *cuts, size_t ncuts,
    struct spooled *out)
{
	struct spool		*sp;
	struct store_blob_in	 in;
	size_t			 i, from = 0, to;

	assert_non_null(sp = spool_new_deferred(dir));
	for (i = 0; i <= ncuts; i++, from = to) {
		to = i < ncuts ? cuts[i] : len;
		spool_add_bytes(sp, msg + from, to - from);
	}
	assert_int_equal(spool_finish(sp, &in), 0);
	memset(out, 0, sizeof(*out));
	memcpy(out->guid, in.guid, GUID_LEN);
	out->size = in.size;
	if (in.mem != NULL)
		out->bytes = copy(in.mem, in.size);
	else {
		assert_true(in.fd >= 0);
		assert_non_null(out->bytes = malloc(in.size + 1));
		assert_int_equal(pread(in.fd, out->bytes, in.size, 0),
		    (ssize_t)in.size);
	}
	unit_mime_copy(in.mime, &out->mime);
	spool_free(sp);
}

static void
spooled_free(struct spooled *s)
{
	free(s->bytes);
	mime_result_free(&s->mime);
}

/* Whether b is what a gave, byte for byte. */
static void
check_same(const struct spooled *a, const struct spooled *b)
{
	assert_memory_equal(a->guid, b->guid, GUID_LEN);
	assert_int_equal(a->size, b->size);
	assert_memory_equal(a->bytes, b->bytes, a->size);
	unit_mime_same(&a->mime, &b->mime);
}

/*
 * Spools msg whole, then cut once at every offset, twice around every
 * byte (a chunk of that byte alone: a CR and its LF apart), byte by byte
 * and in seeded random chunks: every way gives what the whole did, and
 * the whole keeps the message's own bytes.
 */
static void
check_every_cut(const char *msg, size_t len)
{
	struct spooled	 whole, cut;
	size_t		 cuts[64], i, n;

	spool_cut(msg, len, NULL, 0, &whole);
	assert_int_equal(whole.size, len);
	assert_memory_equal(whole.bytes, msg, len);
	for (i = 1; i < len; i++) {
		cuts[0] = i;
		spool_cut(msg, len, cuts, 1, &cut);
		check_same(&whole, &cut);
		spooled_free(&cut);
		cuts[0] = i - 1;
		cuts[1] = i;
		spool_cut(msg, len, cuts, 2, &cut);
		check_same(&whole, &cut);
		spooled_free(&cut);
	}
	srandom(7);
	for (n = 0, i = 0; n < 64 && i < len; n++)
		cuts[n] = i += 1 + random() % 17;
	while (n > 0 && cuts[n - 1] >= len)
		n--;
	spool_cut(msg, len, cuts, n, &cut);
	check_same(&whole, &cut);
	spooled_free(&cut);
	spooled_free(&whole);
}

/* Spools msg one byte at a time: what the whole gave. */
static void
check_bytewise(const char *msg, size_t len)
{
	struct spooled	 whole, cut;
	size_t		*cuts, i;

	assert_non_null(cuts = calloc(len, sizeof(*cuts)));
	for (i = 1; i < len; i++)
		cuts[i - 1] = i;
	spool_cut(msg, len, NULL, 0, &whole);
	spool_cut(msg, len, cuts, len > 0 ? len - 1 : 0, &cut);
	check_same(&whole, &cut);
	spooled_free(&cut);
	spooled_free(&whole);
	free(cuts);
}

/* Multipart, a folded header, NUL, bare CR and bare LF in a body. */
static const char msg_mixed[] =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.org\r\n"
    "Subject: a subject folded\r\n"
    " over two lines\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "a NUL \0 here, a bare CR\r and a bare LF\n"
    "and CR CR LF\r\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--b1--\r\n"
    "epilogue without a line end\r";

/* Bare LF throughout, and a boundary ending with bare LF. */
static const char msg_barelf[] =
    "Subject: bare\n"
    "Content-Type: multipart/alternative; boundary=x\n"
    "\n"
    "--x\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>hi</p>\n"
    "--x--\n";

/* Bare CR only: never a line end. */
static const char msg_barecr[] =
    "Subject: cr\rTo: a@b\r\rbody\r";

static void
test_small_messages(void **state)
{
	(void)state;
	check_every_cut(msg_mixed, sizeof(msg_mixed) - 1);
	check_every_cut(msg_barelf, sizeof(msg_barelf) - 1);
	check_every_cut(msg_barecr, sizeof(msg_barecr) - 1);
	check_bytewise(msg_mixed, sizeof(msg_mixed) - 1);
	check_bytewise(msg_barelf, sizeof(msg_barelf) - 1);
}

/*
 * Lines longer than anything held whole (a header past MIME_MAX_HEADER,
 * a body line past SPOOL_MEM_MAX, so the message goes to the file), cut
 * around every limit and at a stride.
 */
static void
test_long_lines(void **state)
{
	const size_t	 hlen = MIME_MAX_HEADER + 1000;
	const size_t	 blen = 3 * SPOOL_MEM_MAX + 5;
	const size_t	 edges[] = { MIME_MAX_HEADER, SPOOL_MEM_MAX,
			    2 * SPOOL_MEM_MAX, 64 * 1024 };
	struct spooled	 whole, cut;
	char		*msg, *p;
	size_t		 len, i, k, cuts[2];

	(void)state;
	len = hlen + blen + 200;
	assert_non_null(msg = malloc(len));
	p = msg;
	p += sprintf(p, "Subject: long\r\nX-Long: ");
	memset(p, 'h', hlen);
	p += hlen;
	p += sprintf(p, "\r\nContent-Type: text/plain\r\n\r\n");
	memset(p, 'b', blen);
	p += blen;
	p += sprintf(p, "\r\nlast\r\n");
	len = p - msg;
	spool_cut(msg, len, NULL, 0, &whole);
	assert_int_equal(whole.size, len);
	assert_memory_equal(whole.bytes, msg, len);
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		for (k = edges[i] - 3; k <= edges[i] + 3; k++) {
			cuts[0] = k;
			spool_cut(msg, len, cuts, 1, &cut);
			check_same(&whole, &cut);
			spooled_free(&cut);
		}
	for (k = 1; k < len; k += 4099) {
		cuts[0] = k;
		cuts[1] = k + 1 < len ? k + 1 : k;
		spool_cut(msg, len, cuts, 2, &cut);
		check_same(&whole, &cut);
		spooled_free(&cut);
	}
	spooled_free(&whole);
	free(msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_messages),
		cmocka_unit_test(test_long_lines),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
