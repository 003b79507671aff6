/*
 * json.c — JSON strings from arbitrary bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

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
