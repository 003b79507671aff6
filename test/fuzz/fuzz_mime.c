/*
 * fuzz_mime.c — libFuzzer target: the MIME pre-parser.
 *
 * The message is parsed whole and again in lines cut at other places;
 * the results must agree, and the parts table must round-trip through
 * its storage encoding.  Offsets must lie inside the message.  Each
 * part's header is described as the web view reads it (mime_part.c):
 * its fields must end within their arrays, a Content-ID without blanks.
 * The top-level header is written as the headers API's JSON, which
 * must be one object.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "web_headers.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Feeds the message line by line, as the spool does. */
static void
feed_lines(struct mime_parser *p, const char *msg, size_t len)
{
	const char	*lf;
	size_t		 off = 0, n;

	while (off < len) {
		lf = memchr(msg + off, '\n', len - off);
		n = lf ? (size_t)(lf - (msg + off)) + 1 : len - off;
		mime_parser_feed(p, msg + off, n);
		off += n;
	}
}

/* Describes one part's header and checks what it found. */
static void
describe(const char *h, size_t len)
{
	struct mime_part_desc	 d;

	mime_part_describe(h, len, &d);
	assert(memchr(d.type, '\0', sizeof(d.type)) != NULL);
	assert(memchr(d.charset, '\0', sizeof(d.charset)) != NULL);
	assert(memchr(d.filename, '\0', sizeof(d.filename)) != NULL);
	assert(memchr(d.content_id, '\0', sizeof(d.content_id)) != NULL);
	assert(strpbrk(d.content_id, " \t\r\n") == NULL);
}

/* The header block as the headers API writes it. */
static void
headers_json(const char *h, size_t len)
{
	char	*out = NULL;
	size_t	 n = 0;
	FILE	*f;
	int	 ok;

	if ((f = open_memstream(&out, &n)) == NULL)
		return;
	ok = web_headers_json(f, h, len) == 0;
	if (fclose(f) == 0 && ok)
		assert(n >= 3 && out[0] == '{' && out[n - 2] == '}' &&
		    out[n - 1] == '\n');
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_result	 a, b;
	struct mime_parser	*p;
	struct mime_part	*parts;
	char			*enc;
	size_t			 enclen, n, i;

	if (mime_parse_buffer((const char *)data, size, &a) < 0)
		return 0;
	if ((p = mime_parser_new()) == NULL) {
		mime_result_free(&a);
		return 0;
	}
	feed_lines(p, (const char *)data, size);
	if (mime_parser_finish(p, &b) == 0) {
		assert(strcmp(a.bodystructure, b.bodystructure) == 0);
		assert(strcmp(a.envelope, b.envelope) == 0);
		assert(a.nparts == b.nparts);
		mime_result_free(&b);
	}
	mime_parser_free(p);
	for (i = 0; i < a.nparts; i++) {
		assert(a.parts[i].header_start <= a.parts[i].body_start);
		assert(a.parts[i].body_start <= a.parts[i].body_end);
		assert(a.parts[i].body_end <= size);
		describe((const char *)data + a.parts[i].header_start,
		    (size_t)(a.parts[i].body_start - a.parts[i].header_start));
	}
	if (mime_parts_encode(a.parts, a.nparts, &enc, &enclen) == 0) {
		assert(mime_parts_decode(enc, enclen, &parts, &n) == 0);
		assert(n == a.nparts);
		for (i = 0; i < n; i++) {
			assert(strcmp(parts[i].section, a.parts[i].section) ==
			    0);
			assert(parts[i].header_start == a.parts[i].header_start);
			assert(parts[i].body_start == a.parts[i].body_start);
			assert(parts[i].inner_body_start ==
			    a.parts[i].inner_body_start);
			assert(parts[i].body_end == a.parts[i].body_end);
		}
		free(parts);
		free(enc);
	}
	headers_json(a.header, a.header_len);
	mime_result_free(&a);
	return 0;
}
