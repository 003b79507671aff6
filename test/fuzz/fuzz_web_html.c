/*
 * fuzz_web_html.c — libFuzzer target: the HTML sanitizer of the web
 * view.  The first byte picks remote content on or off (bit 0) and
 * cid: images shown or not (bit 1); the rest is the mail's HTML.  The output must be a fixed point (sanitizing it again
 * changes nothing, so the browser parses exactly the tags written), and
 * every '<' in it must start a tag, an end tag, or a style sheet.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web_html.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*out, *again;
	size_t	 len, len2, i;
	const char *cid;
	int	 remote;

	if (size == 0)
		return 0;
	remote = data[0] & 1;
	cid = data[0] & 2 ? "/api/v1/message/00ff-1/cid/" : NULL;
	if (web_html_sanitize((const char *)data + 1, size - 1, remote, cid,
	    &out, &len) < 0)
		return 0;
	for (i = 0; i < len; i++)
		if (out[i] == '<')
			assert(i + 1 < len && (islower((unsigned char)out[i + 1]) ||
			    out[i + 1] == '/'));
	assert(memchr(out, '\0', len) == NULL);
	if (web_html_sanitize(out, len, remote, cid, &again, &len2) == 0) {
		assert(len2 == len && memcmp(out, again, len) == 0);
		free(again);
	}
	free(out);
	return 0;
}
