/*
 * web_message.c — one message's body for the web view and its API
 * (web_message.h): the text and HTML to read, the list of its
 * attachments, an attachment's download, and the HTML as a document the
 * page frames.
 *
 * Parts are found from the part table stored at delivery; each part's
 * MIME header (at most MIME_MAX_HEADER bytes) is read from the blob to
 * learn its type, charset, encoding and file name.  Text and HTML are
 * decoded into memory up to WEB_MAX_TEXT and WEB_MAX_HTML bytes; an
 * attachment is decoded and sent in steps as the output drains, so any
 * size costs one chunk.  The HTML of mail is hostile: it is served
 * sanitized (web_html.c) under a policy that runs and loads nothing,
 * and the page frames it in a sandbox without scripts.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "json.h"
#include "mime.h"
#include "proto.h"
#include "store.h"
#include "web_api.h"
#include "web_html.h"
#include "web_message.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * The framed HTML runs nothing and loads nothing but its own style;
 * with remote content asked for, images, fonts and style sheets from
 * http(s) too.  The sandbox holds also when the URL is opened alone.
 */
#define HTML_CSP_HEAD							\
	"Content-Security-Policy: default-src 'none'; "			\
	"frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "	\
	"sandbox allow-popups allow-popups-to-escape-sandbox; "
#define HTML_CSP_LOCAL	HTML_CSP_HEAD "style-src 'unsafe-inline'; " \
	"img-src 'self'\r\n"
#define HTML_CSP_REMOTE	HTML_CSP_HEAD "style-src 'unsafe-inline' http: https:; " \
	"img-src 'self' http: https:; font-src http: https:\r\n"

/*
 * A cid: image (RFC 2392) as the framed HTML loads it: from a frame
 * whose origin is its own (the sandbox), so any origin may load it;
 * inline, but an SVG opened alone still runs nothing.
 */
#define CID_HEADERS							\
	"Content-Disposition: inline\r\n"				\
	"Cross-Origin-Resource-Policy: cross-origin\r\n"		\
	"Content-Security-Policy: default-src 'none'; "			\
	"style-src 'unsafe-inline'; sandbox\r\n"

/* The types a cid: image may have, and the type it is served as. */
static const struct {
	const char	*type, *served;
} cid_types[] = {
	{ "image/png", "image/png" }, { "image/gif", "image/gif" },
	{ "image/jpeg", "image/jpeg" }, { "image/jpg", "image/jpeg" },
	{ "image/pjpeg", "image/jpeg" }, { "image/webp", "image/webp" },
	{ "image/bmp", "image/bmp" }, { "image/avif", "image/avif" },
	{ "image/svg+xml", "image/svg+xml" },
};

/* An attachment's download: the part's body, decoded in steps. */
struct download {
	struct store_blob_reader *reader;
	uint64_t		 off, end;
	struct mime_decoder	 dec;
};

/* A message's parts, as the web view reads them. */
struct body {
	struct store_meta	 meta;
	struct store_blob_reader *reader;
	size_t			 text, html;	/* parts[] index; 0: none */
};

/* Whether parts[i] is a leaf the web view shows: not a container,
 * and not inside an attached message (the attachment is the message). */
static int
leaf(const struct store_meta *meta, size_t i)
{
	const struct mime_part	*p = &meta->parts[i];
	size_t			 k, n;

	if (p->is_multipart || (i == 0 && meta->nparts > 1))
		return 0;
	for (k = 1; k < i; k++) {
		n = strlen(meta->parts[k].section);
		if (meta->parts[k].is_message && strncmp(p->section,
		    meta->parts[k].section, n) == 0 && p->section[n] == '.')
			return 0;
	}
	return 1;
}

/* The part's ID: its section, "1" for a message of one part. */
static const char *
part_id(const struct mime_part *p)
{
	return p->section[0] != '\0' ? p->section : "1";
}

/* Reads and describes part p's MIME header; -1 when the blob fails. */
static int
describe(struct body *b, const struct mime_part *p, struct mime_part_desc *d)
{
	uint64_t	 len = p->body_start - p->header_start;
	char		*h;
	ssize_t		 got;

	if (len > MIME_MAX_HEADER)
		len = MIME_MAX_HEADER;
	if ((h = malloc(len + 1)) == NULL)
		return -1;
	got = store_blob_read(b->reader, p->header_start, h, (size_t)len);
	if (got >= 0)
		mime_part_describe(h, (size_t)got, d);
	free(h);
	return got < 0 ? -1 : 0;
}

/*
 * Opens a message's parts and finds its text and HTML: the first
 * text/plain and text/html leaves that are not attachments, among the
 * first WEB_MAX_PARTS leaves (each costs a read of its header).
 * Returns 0, or -1 when the store fails (nothing is left open then).
 */
static int
body_open(struct store *st, const struct store_web_message *m,
    struct body *b)
{
	struct mime_part_desc	 d;
	uint64_t		 size;
	size_t			 i, seen = 0;

	memset(b, 0, sizeof(*b));
	if (store_message_meta(st, m->guid, STORE_META_SECTIONS,
	    &b->meta) != STORE_OK || store_blob_open(st, m->guid, &b->reader,
	    &size) != STORE_OK) {
		store_meta_free(&b->meta);
		return -1;
	}
	for (i = 0; i < b->meta.nparts && seen < WEB_MAX_PARTS &&
	    (b->text == 0 || b->html == 0); i++) {
		if (!leaf(&b->meta, i) || b->meta.parts[i].is_message)
			continue;
		seen++;
		if (describe(b, &b->meta.parts[i], &d) < 0 || d.attachment)
			continue;
		if (b->text == 0 && strcmp(d.type, "text/plain") == 0)
			b->text = i + 1;
		else if (b->html == 0 && strcmp(d.type, "text/html") == 0)
			b->html = i + 1;
	}
	return 0;
}

static void
body_close(struct body *b)
{
	store_blob_close(b->reader);
	store_meta_free(&b->meta);
}

/*
 * Decodes the body of parts[index - 1] (its transfer encoding, the
 * first max bytes of it) into raw (room for max + IO_CHUNK +
 * MIME_DECODE_SLACK); returns its length, or -1 when the store fails.
 */
static ssize_t
decode_raw(struct body *b, const struct mime_part *p, enum mime_cte cte,
    size_t max, unsigned char *raw)
{
	struct mime_decoder	 dec;
	unsigned char		 chunk[IO_CHUNK];
	uint64_t		 off;
	size_t			 n, len = 0;
	ssize_t			 got;

	mime_decoder_init(&dec, cte == MIME_CTE_UNKNOWN ? MIME_CTE_IDENTITY :
	    cte);
	for (off = p->body_start; off < p->body_end && len < max;
	    off += (uint64_t)got) {
		n = p->body_end - off < sizeof(chunk) ? (size_t)(p->body_end -
		    off) : sizeof(chunk);
		if ((got = store_blob_read(b->reader, off, chunk, n)) <= 0)
			return -1;
		len += mime_decode(&dec, chunk, (size_t)got, raw + len);
	}
	if (off >= p->body_end)
		len += mime_decode_end(&dec, raw + len);
	return (ssize_t)(len > max ? max : len);
}

/*
 * Decodes the body of parts[index - 1] into *out (malloc'd, NUL-ended,
 * UTF-8 converted from the part's charset; *len bytes, at most max).
 * Returns 0, or -1 when the store or memory fails.  Its description
 * goes to *d.
 */
static int
decode(struct body *b, size_t index, size_t max, char **out, size_t *len,
    struct mime_part_desc *d)
{
	unsigned char	*raw;
	ssize_t		 n;

	*out = NULL;
	*len = 0;
	if (describe(b, &b->meta.parts[index - 1], d) < 0 ||
	    (raw = malloc(max + IO_CHUNK + MIME_DECODE_SLACK + 3)) == NULL)
		return -1;
	if ((n = decode_raw(b, &b->meta.parts[index - 1], d->cte, max,
	    raw)) < 0 || (*out = malloc(max + 1)) == NULL) {
		free(raw);
		return -1;
	}
	*len = charset_to_utf8(d->charset, (char *)raw, (size_t)n, *out, max);
	(*out)[*len] = '\0';
	free(raw);
	return 0;
}

/*
 * Message m's HTML part sanitized, its cid: images led to this
 * message's parts; *out NULL (and 0) when there is none.
 */
static int
sanitized(struct body *b, const struct store_web_message *m, int remote,
    char **out, size_t *len, struct mime_part_desc *d)
{
	char	*html, id[WEB_ID_LEN + 1], prefix[WEB_ID_LEN + 32];
	size_t	 n;
	int	 r;

	*out = NULL;
	*len = 0;
	if (b->html == 0)
		return 0;
	if (decode(b, b->html, WEB_MAX_HTML, &html, &n, d) < 0)
		return -1;
	web_message_id(m->uniqueid, m->uid, id);
	snprintf(prefix, sizeof(prefix), "/api/v1/message/%s/cid/", id);
	r = web_html_sanitize(html, n, remote, prefix, out, len);
	free(html);
	return r;
}

/* A file name inside a quoted string: quotes, '\' and controls go. */
static void
quoted_name(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		putc((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' ||
		    (unsigned char)*s >= 0x7f ? '_' : *s, f);
}

/* Whether a type is a token "type/subtype" fit to send back as it is. */
static int
safe_type(const char *t)
{
	size_t	 n = strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789"
	    "!#$&^_.+-/");

	return n > 0 && t[n] == '\0' && strchr(t, '/') != NULL;
}

/* Whether a part is inline, for the HTML to show (Mailpit's Inline). */
static int
is_inline(const struct mime_part *p, const struct mime_part_desc *d)
{
	return d->content_id[0] != '\0' && !d->disposed && !p->is_message;
}

/*
 * The leaves that are neither the text nor the HTML: those inline
 * (want_inline set) or the attachments (the others), as a JSON list.
 */
static void
json_parts(FILE *f, struct body *b, int want_inline)
{
	struct mime_part_desc	 d;
	const struct mime_part	*p;
	size_t			 i, listed = 0;

	fputs(want_inline ? ",\"Inline\":[" : ",\"Attachments\":[", f);
	for (i = 0; i < b->meta.nparts && listed < WEB_MAX_PARTS; i++) {
		p = &b->meta.parts[i];
		if (!leaf(&b->meta, i) || i + 1 == b->text ||
		    i + 1 == b->html || describe(b, p, &d) < 0 ||
		    is_inline(p, &d) != want_inline)
			continue;
		if (p->is_message)
			snprintf(d.type, sizeof(d.type), "message/rfc822");
		fputs(listed++ > 0 ? ",{\"PartID\":" : "{\"PartID\":", f);
		json_str(f, part_id(p));
		fputs(",\"FileName\":", f);
		json_str(f, d.filename);
		fputs(",\"ContentType\":", f);
		json_str(f, safe_type(d.type) ? d.type :
		    "application/octet-stream");
		fputs(",\"ContentID\":", f);
		json_str(f, d.content_id);
		fprintf(f, ",\"Size\":%llu}",
		    (unsigned long long)(p->body_end - p->body_start));
	}
	putc(']', f);
}

int
web_message_json(FILE *f, struct store *st, const struct store_web_message *m)
{
	struct body		 b;
	struct mime_part_desc	 td, hd;
	char			*text = NULL, *html = NULL;
	size_t			 tlen = 0, hlen = 0;
	int			 r = 0;

	if (body_open(st, m, &b) < 0)
		return -1;
	td.charset[0] = hd.charset[0] = '\0';
	if ((b.text != 0 && decode(&b, b.text, WEB_MAX_TEXT, &text, &tlen,
	    &td) < 0) || sanitized(&b, m, 0, &html, &hlen, &hd) < 0)
		r = -1;
	else {
		fputs(",\"Text\":", f);
		json_string(f, text != NULL ? text : "", tlen);
		fputs(",\"HTML\":", f);
		json_string(f, html != NULL ? html : "", hlen);
		fputs(",\"UnknownCharset\":", f);
		json_str(f, !charset_known(td.charset) ? td.charset :
		    !charset_known(hd.charset) ? hd.charset : "");
		json_parts(f, &b, 1);
		json_parts(f, &b, 0);
	}
	free(text);
	free(html);
	body_close(&b);
	return r;
}

void
web_api_html(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct store_web_message m;
	struct mime_part_desc	 d;
	struct body		 b;
	char			*html = NULL;
	size_t			 len = 0;
	int			 remote, r;

	if (web_api_find(s, req, arg, &m) < 0)
		return;
	remote = strcmp(req->query, "remote=1") == 0;
	if (body_open(s->srv->store, &m, &b) < 0) {
		http_error(s, 500, "cannot read the message");
		return;
	}
	r = sanitized(&b, &m, remote, &html, &len, &d);
	body_close(&b);
	if (r < 0)
		http_error(s, 500, "cannot read the message");
	else if (html == NULL)
		http_error(s, 404, "the message has no HTML");
	else
		http_reply(s, 200, "text/html; charset=utf-8", html, len,
		    remote ? HTML_CSP_REMOTE : HTML_CSP_LOCAL);
	free(html);
}

static void
download_free(void *ctx)
{
	struct download	*dl = ctx;

	store_blob_close(dl->reader);
	free(dl);
}

/* One IO_CHUNK of the attachment, decoded. */
static int
download_step(struct session *s, void *ctx)
{
	struct download	*dl = ctx;
	unsigned char	 raw[IO_CHUNK], out[IO_CHUNK + MIME_DECODE_SLACK + 2];
	size_t		 n, len;
	ssize_t		 got;

	if (dl->off >= dl->end)
		return 1;
	n = dl->end - dl->off < sizeof(raw) ? (size_t)(dl->end - dl->off) :
	    sizeof(raw);
	if ((got = store_blob_read(dl->reader, dl->off, raw, n)) <= 0)
		return -1;
	dl->off += (uint64_t)got;
	len = mime_decode(&dl->dec, raw, (size_t)got, out);
	if (dl->off >= dl->end)
		len += mime_decode_end(&dl->dec, out + len);
	http_send(s, out, len);
	return 0;
}

/* The index of the leaf part named id ("1.2"), or -1. */
static int
find_part(const struct store_meta *meta, const char *id)
{
	size_t	 i;

	for (i = 0; i < meta->nparts; i++)
		if (leaf(meta, i) && strcmp(part_id(&meta->parts[i]), id) == 0)
			return (int)i;
	return -1;
}

/*
 * Sends parts[i]'s body decoded, as type, with the extra headers, in
 * steps as the output drains; the blob reader moves from b to them.
 */
static void
stream_part(struct session *s, struct body *b, int i, enum mime_cte cte,
    const char *type, const char *extra)
{
	const struct mime_part	*p = &b->meta.parts[i];
	struct download		*dl;

	if ((dl = calloc(1, sizeof(*dl))) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	dl->reader = b->reader;
	b->reader = NULL;
	dl->off = p->body_start;
	dl->end = p->body_end;
	mime_decoder_init(&dl->dec, p->is_message || cte == MIME_CTE_UNKNOWN ?
	    MIME_CTE_IDENTITY : cte);
	http_stream(s, 200, type, -1, extra, download_step, dl,
	    download_free);
}

/*
 * Starts the download: Content-Disposition attachment with the file
 * name (ASCII in filename=, UTF-8 in filename*=, RFC 6266), so that a
 * browser saves it and never shows it as a page of this origin.
 */
static void
download_start(struct session *s, struct body *b, int i)
{
	const struct mime_part	*p = &b->meta.parts[i];
	struct mime_part_desc	 d;
	char			*extra = NULL;
	size_t			 len = 0, k;
	FILE			*f;

	if (describe(b, p, &d) < 0) {
		http_error(s, 500, "cannot read the message");
		return;
	}
	if ((f = http_memstream(&extra, &len)) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	fputs("Content-Disposition: attachment; filename=\"", f);
	quoted_name(f, d.filename[0] != '\0' ? d.filename : "part");
	fputs("\"; filename*=UTF-8''", f);
	for (k = 0; d.filename[k] != '\0'; k++)
		fprintf(f, isalnum((unsigned char)d.filename[k]) ||
		    strchr(".-_", d.filename[k]) != NULL ? "%c" : "%%%02X",
		    (unsigned char)d.filename[k]);
	fputs("\r\n", f);
	if (fclose(f) != 0) {
		free(extra);
		http_error(s, 500, "out of memory");
		return;
	}
	stream_part(s, b, i, d.cte, p->is_message ? "message/rfc822" :
	    safe_type(d.type) ? d.type : "application/octet-stream", extra);
	free(extra);
}

/*
 * The route's "ID/rest" into id (WEB_MAX_SEGMENT) and *rest; -1 (and
 * 404 sent) when there is no '/'.
 */
static int
split_arg(struct session *s, const char *arg, char *id, const char **rest)
{
	const char	*slash;

	if (arg == NULL || (slash = strchr(arg, '/')) == NULL ||
	    (size_t)(slash - arg) >= WEB_MAX_SEGMENT) {
		http_error(s, 404, "no such part");
		return -1;
	}
	snprintf(id, WEB_MAX_SEGMENT, "%.*s", (int)(slash - arg), arg);
	*rest = slash + 1;
	return 0;
}

void
web_api_part(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct store_web_message m;
	struct body		 b;
	char			 id[WEB_MAX_SEGMENT];
	const char		*part;
	int			 i;

	if (split_arg(s, arg, id, &part) < 0 ||
	    web_api_find(s, req, id, &m) < 0)
		return;
	if (body_open(s->srv->store, &m, &b) < 0) {
		http_error(s, 500, "cannot read the message");
		return;
	}
	if ((i = find_part(&b.meta, part)) < 0)
		http_error(s, 404, "no such part");
	else
		download_start(s, &b, i);
	body_close(&b);
}

/* A URL's %-escapes decoded into out (size bytes); -1 if too long. */
static int
unescape(const char *in, char *out, size_t size)
{
	size_t	 o = 0;
	int	 hi, lo;

	for (; *in != '\0'; in++) {
		if (o + 1 >= size)
			return -1;
		if (*in == '%' && (hi = crypto_hex_digit(in[1])) >= 0 &&
		    (lo = crypto_hex_digit(in[2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			in += 2;
		} else
			out[o++] = *in;
	}
	out[o] = '\0';
	return 0;
}

/*
 * The leaf of this message whose Content-ID is cid, among the first
 * WEB_MAX_PARTS leaves, with its description in *d; -1 for none.
 */
static int
find_cid(struct body *b, const char *cid, struct mime_part_desc *d)
{
	size_t	 i, seen = 0;

	for (i = 0; i < b->meta.nparts && seen < WEB_MAX_PARTS; i++) {
		if (!leaf(&b->meta, i) || b->meta.parts[i].is_message)
			continue;
		seen++;
		if (describe(b, &b->meta.parts[i], d) == 0 &&
		    strcmp(d->content_id, cid) == 0)
			return (int)i;
	}
	return -1;
}

void
web_api_cid(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct store_web_message m;
	struct mime_part_desc	 d;
	struct body		 b;
	char			 id[WEB_MAX_SEGMENT], cid[MIME_MAX_CONTENT_ID];
	const char		*escaped;
	size_t			 k;
	int			 i;

	if (split_arg(s, arg, id, &escaped) < 0)
		return;
	if (unescape(escaped, cid, sizeof(cid)) < 0 || cid[0] == '\0') {
		http_error(s, 404, "no such part");
		return;
	}
	if (web_api_find(s, req, id, &m) < 0)
		return;
	if (body_open(s->srv->store, &m, &b) < 0) {
		http_error(s, 500, "cannot read the message");
		return;
	}
	k = nitems(cid_types);
	if ((i = find_cid(&b, cid, &d)) >= 0)
		for (k = 0; k < nitems(cid_types) &&
		    strcmp(d.type, cid_types[k].type) != 0; k++)
			;
	if (k == nitems(cid_types))
		http_error(s, 404, "no such image");
	else
		stream_part(s, &b, i, d.cte, cid_types[k].served, CID_HEADERS);
	body_close(&b);
}
