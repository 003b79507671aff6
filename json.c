/*
 * json.c — JSON strings from arbitrary bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

/*
 * The length of the valid UTF-8 sequence at p (at most n bytes), or 0
 * when it is not one: overlong forms, surrogates and code points past
 * U+10FFFF are refused (RFC 3629).
 */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	uint32_t	 cp;
	size_t		 len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

void
json_escape(FILE *f, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	while (i < len) {
		if (p[i] == '"' || p[i] == '\\') {
			putc('\\', f);
			putc(p[i++], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f), i++;
		} else if (p[i] == '\r') {
			fputs("\\r", f), i++;
		} else if (p[i] == '\t') {
			fputs("\\t", f), i++;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(f, "\\u%04x", p[i++]);
		} else if ((n = utf8_len(p + i, len - i)) == 0) {
			fputs("\\ufffd", f), i++;
		} else {
			fwrite(p + i, 1, n, f);
			i += n;
		}
	}
}

void
json_string(FILE *f, const char *s, size_t len)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	putc('"', f);
	json_escape(f, s, len);
	putc('"', f);
}

void
json_str(FILE *f, const char *s)
{
	json_string(f, s, s ? strlen(s) : 0);
}
