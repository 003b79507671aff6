/*
 * web_headers.c — a message's header fields for GET
 * /api/v1/message/{ID}/headers, shaped as Mailpit's (web_headers.h):
 * Mailpit hands Go's net/textproto reading of the header to its JSON
 * encoder, so names are canonical ("Content-Type", "Message-Id"),
 * sorted, and each maps to the list of its values, unfolded.
 *
 * The header block is the one stored at delivery (at most
 * MIME_MAX_HEADER bytes), so a reply costs a bounded multiple of it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "store.h"
#include "web_api.h"
#include "web_headers.h"

#define IS_BLANK(c)	((c) == ' ' || (c) == '\t')

/* One field: its canonical name and its value, unfolded. */
struct field {
	char	*name, *value;
	size_t	 order;		/* its place in the header */
};

/*
 * A field's name as Go's textproto writes it: the first letter and
 * every letter after '-' upper case, the others lower case; a name
 * with a byte that is no token character stays as written.
 */
static void
canonical(char *name)
{
	size_t	 i;
	int	 upper = 1;

	for (i = 0; name[i] != '\0'; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f ||
		    (unsigned char)name[i] >= 0x80)
			return;
	for (i = 0; name[i] != '\0'; i++) {
		name[i] = (char)(upper ? toupper((unsigned char)name[i]) :
		    tolower((unsigned char)name[i]));
		upper = name[i] == '-';
	}
}

/*
 * The value from v (n bytes, after the ':') with its lines joined by
 * one blank, each trimmed, as textproto reads a continued line; the
 * caller frees it.
 */
static char *
unfold(const char *v, size_t n)
{
	char	*out;
	size_t	 i = 0, o = 0, end;

	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	while (i < n) {
		while (i < n && (IS_BLANK(v[i]) || v[i] == '\r' ||
		    v[i] == '\n'))
			i++;
		for (end = i; end < n && v[end] != '\n'; end++)
			;
		while (end > i && (IS_BLANK(v[end - 1]) || v[end - 1] == '\r'))
			end--;
		if (end > i) {
			if (o > 0)
				out[o++] = ' ';
			memcpy(out + o, v + i, end - i);
			o += end - i;
		}
		for (i = end; i < n && v[i] != '\n'; i++)
			;
	}
	out[o] = '\0';
	return out;
}

/* The end of the field starting at p: past its last continued line. */
static size_t
field_end(const char *h, size_t len, size_t p)
{
	const char	*lf;

	while ((lf = memchr(h + p, '\n', len - p)) != NULL) {
		p = (size_t)(lf - h) + 1;
		if (p >= len || !IS_BLANK(h[p]))
			return p;
	}
	return len;
}

static int
by_name(const void *a, const void *b)
{
	const struct field	*x = a, *y = b;
	int			 c = strcmp(x->name, y->name);

	return c != 0 ? c : x->order < y->order ? -1 : 1;
}

static void
fields_free(struct field *f, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(f[i].name);
		free(f[i].value);
	}
	free(f);
}

/*
 * Reads the fields of h into *out (*n of them); a line without ':'
 * (or the blank line that ends the header) is skipped.  -1 when memory
 * ran out.
 */
static int
fields_read(const char *h, size_t len, struct field **out, size_t *n)
{
	struct field	*f = NULL, *grown;
	size_t		 p = 0, end, colon, cap = 0;
	const char	*c;

	*n = 0;
	for (; p < len; p = end) {
		end = field_end(h, len, p);
		if ((c = memchr(h + p, ':', end - p)) == NULL || c == h + p)
			continue;
		colon = (size_t)(c - h);
		if (*n == cap) {
			cap = cap > 0 ? cap * 2 : 16;
			if ((grown = reallocarray(f, cap, sizeof(*f))) == NULL)
				break;
			f = grown;
		}
		f[*n].order = *n;
		f[*n].value = unfold(h + colon + 1, end - colon - 1);
		if ((f[*n].name = strndup(h + p, colon - p)) == NULL ||
		    f[*n].value == NULL) {
			(*n)++;
			break;
		}
		canonical(f[(*n)++].name);
	}
	*out = f;
	if (p < len) {
		fields_free(f, *n);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
web_headers_json(FILE *out, const char *header, size_t len)
{
	struct field	*f;
	size_t		 n, i;

	if (fields_read(header, len, &f, &n) < 0)
		return -1;
	if (n > 0)
		qsort(f, n, sizeof(*f), by_name);
	putc('{', out);
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(f[i].name, f[i - 1].name) != 0) {
			fputs(i > 0 ? "],": "", out);
			json_str(out, f[i].name);
			fputs(":[", out);
		} else
			putc(',', out);
		json_str(out, f[i].value);
	}
	fputs(n > 0 ? "]}\n" : "}\n", out);
	fields_free(f, n);
	return 0;
}

/* The headers call's JSON, from the meta's header block. */
static int
headers_json(FILE *f, struct store *st, const struct store_web_message *m,
    const struct store_meta *meta)
{
	(void)st;
	(void)m;
	return web_headers_json(f, meta->header != NULL ? meta->header : "",
	    meta->header != NULL ? meta->header_len : 0);
}

void
web_api_headers(struct session *s, const struct http_request *req,
    const char *arg)
{
	web_api_message_reply(s, req, arg, STORE_META_SECTIONS, headers_json);
}
