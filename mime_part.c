/*
 * mime_part.c — what one body part is, read from its MIME header: its
 * type, charset, transfer encoding, disposition and file name (mime.h,
 * mime_part_describe).  The web view lists attachments and picks the
 * text and HTML to show with it; the header block comes from the blob,
 * at most MIME_MAX_HEADER bytes of it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_search.h"
#include "mime.h"
#include "mime_internal.h"

/* Copies s (NULL: "") into a fixed field, lower-cased when asked. */
static void
set_field(char *dst, size_t size, const char *s, int lower)
{
	size_t	 i;

	snprintf(dst, size, "%s", s != NULL ? s : "");
	for (i = 0; lower && dst[i] != '\0'; i++)
		dst[i] = (char)tolower((unsigned char)dst[i]);
}

/* The value of parameter key in l, or NULL. */
static const char *
param(const struct kvlist *l, const char *key)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (strcasecmp(l->a[i].k, key) == 0)
			return l->a[i].v;
	return NULL;
}

/*
 * A file name as a sender wrote it (RFC 2231 merged by rfc_params,
 * RFC 2047 words decoded, as mail clients do), with every path
 * separator and control character made '_': a name, not a path.
 */
static void
set_filename(struct mime_part_desc *d, const char *name)
{
	char	*decoded;
	size_t	 i;

	if (name == NULL || *name == '\0' || d->filename[0] != '\0')
		return;
	decoded = mime_decode_words(name, strlen(name));
	set_field(d->filename, sizeof(d->filename),
	    decoded != NULL ? decoded : name, 0);
	free(decoded);
	for (i = 0; d->filename[i] != '\0'; i++)
		if ((unsigned char)d->filename[i] < 0x20 ||
		    d->filename[i] == 0x7f || d->filename[i] == '/' ||
		    d->filename[i] == '\\')
			d->filename[i] = '_';
}

/* Content-Type: the type and its charset and name parameters. */
static void
read_type(struct mime_part_desc *d, const char *v, size_t n)
{
	struct rfc	 r = { (const unsigned char *)v,
			    (const unsigned char *)v + n, NULL, 1 };
	struct sbuf	 type = { 0 };
	struct kvlist	 params = { 0 };

	if (rfc_content_type(&r, &type) >= 0 && type.len > 0 && !type.err)
		set_field(d->type, sizeof(d->type), sb_str(&type), 1);
	rfc_params(&r, &params);
	if (!params.err) {
		set_field(d->charset, sizeof(d->charset),
		    param(&params, "charset"), 1);
		set_filename(d, param(&params, "name"));
	}
	kv_free(&params);
	sb_free(&type);
}

/* Content-Disposition: attachment or inline, and the file name. */
static void
read_disposition(struct mime_part_desc *d, const char *v, size_t n)
{
	struct rfc	 r = { (const unsigned char *)v,
			    (const unsigned char *)v + n, NULL, 1 };
	struct sbuf	 kind = { 0 };
	struct kvlist	 params = { 0 };

	if (rfc_skip_lwsp(&r) > 0 && rfc_atom(&r, &kind) >= 0 &&
	    kind.len > 0 && !kind.err)
		d->attachment = strcasecmp(sb_str(&kind), "attachment") == 0;
	rfc_params(&r, &params);
	if (!params.err) {
		d->filename[0] = '\0';	/* filename= wins over name= */
		set_filename(d, param(&params, "filename"));
	}
	kv_free(&params);
	sb_free(&kind);
}

/*
 * Content-ID: the msg-id between its angle brackets (RFC 2045 7), or
 * the value as written when it has none; blanks, controls and a value
 * too long to keep whole leave it out.
 */
static void
read_content_id(struct mime_part_desc *d, const char *v, size_t n)
{
	size_t	 i;

	while (n > 0 && strchr(" \t\r\n", *v) != NULL)
		v++, n--;
	while (n > 0 && strchr(" \t\r\n", v[n - 1]) != NULL)
		n--;
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>')
		v++, n -= 2;
	if (n == 0 || n >= sizeof(d->content_id))
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f)
			return;
	memcpy(d->content_id, v, n);
	d->content_id[n] = '\0';
}

void
mime_part_describe(const char *header, size_t len, struct mime_part_desc *d)
{
	const char	*v;
	size_t		 pos = 0, n;

	memset(d, 0, sizeof(*d));
	set_field(d->type, sizeof(d->type), "text/plain", 0);
	d->cte = MIME_CTE_IDENTITY;
	if (imap_header_next(header, len, &pos, "content-type", &v, &n))
		read_type(d, v, n);
	pos = 0;
	if (imap_header_next(header, len, &pos, "content-transfer-encoding",
	    &v, &n))
		d->cte = mime_cte_parse(v, n);
	pos = 0;
	if (imap_header_next(header, len, &pos, "content-disposition", &v,
	    &n))
		read_disposition(d, v, n);
	d->disposed = d->attachment;
	pos = 0;
	if (imap_header_next(header, len, &pos, "content-id", &v, &n))
		read_content_id(d, v, n);
	if (d->filename[0] != '\0' && strncmp(d->type, "text/", 5) != 0)
		d->attachment = 1;	/* a named file that is not text */
}
