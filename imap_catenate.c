/*
 * imap_catenate.c — APPEND's CATENATE (RFC 4469): a message put together
 * from TEXT literals and URLs of messages, or parts of them, already in
 * the user's mailboxes, e.g. a forward that keeps an attachment without
 * the client downloading and uploading it again.
 *
 * A URL is an IMAP URL relative to this server (RFC 5092 4.2):
 * "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]".  It
 * is looked up among the logged-in user's mailboxes only, so it cannot
 * reach anyone else's mail.  What it names is copied from the store into
 * the message's spool, which takes the pieces as they come: its MIME
 * pre-parse sees the message as one stream of lines whatever the pieces'
 * edges.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_core.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "utf8.h"

/* What a URL names. */
struct imap_url {
	char		 mailbox[MAILBOX_MAX_NAME + 1];
	uint64_t	 uidvalidity;	/* 0: not given */
	uint64_t	 uid;
	char		 section[IMAP_MAX_SECTION];
	int		 partial;
	uint64_t	 off, len;	/* PARTIAL=off.len (len 0: to the end) */
};

/* The message being put together. */
struct catenate {
	struct session	*s;
	struct spool	*spool;
	uint64_t	 max;		/* the message size limit */
	int		 toobig;
};

/* Adds n bytes to the message, unless they take it past the limit. */
static void
cat_add(struct catenate *c, const char *p, size_t n)
{
	if (spool_size(c->spool) + n > c->max)
		c->toobig = 1;
	else
		spool_add_bytes(c->spool, p, n);
}

/* Decodes %XX escapes of s[0, n) into out (size bytes); -1 if bad. */
static int
url_unescape(const char *s, size_t n, char *out, size_t size)
{
	size_t	 i, o = 0;
	char	 hex[3] = { 0, 0, 0 };

	for (i = 0; i < n; i++) {
		if (o + 1 >= size)
			return -1;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2]))
			return -1;
		hex[0] = s[i + 1];
		hex[1] = s[i + 2];
		if ((out[o++] = (char)strtol(hex, NULL, 16)) == '\0')
			return -1;
		i += 2;
	}
	out[o] = '\0';
	return 0;
}

/*
 * Reads ";NAME=" then a number at *p (case-insensitive name); moves *p
 * past them.  Returns 0, or -1 when they are not there.
 */
static int
url_number(const char **p, const char *name, uint64_t *v)
{
	size_t	 n = strlen(name);
	char	*end;

	if ((*p)[0] != ';' || strncasecmp(*p + 1, name, n) != 0 ||
	    (*p)[n + 1] != '=' || !isdigit((unsigned char)(*p)[n + 2]))
		return -1;
	*v = strtoull(*p + n + 2, &end, 10);
	*p = end;
	return 0;
}

/* Parses a relative IMAP URL (the form above) into *u; 0 or -1. */
static int
url_parse(const char *url, struct imap_url *u)
{
	const char	*p, *semi;
	char		 name[MAILBOX_MAX_NAME + 1], *end;

	memset(u, 0, sizeof(*u));
	if (url[0] != '/' || (semi = strchr(url, ';')) == NULL ||
	    semi == url + 1)
		return -1;
	p = semi;
	if (semi[-1] == '/')
		semi--;		/* "/;UID=": no UIDVALIDITY */
	if (url_unescape(url + 1, semi - url - 1, name, sizeof(name)) < 0 ||
	    utf8_to_mutf7(name, u->mailbox, sizeof(u->mailbox)) < 0)
		return -1;
	if (p[-1] != '/' && (url_number(&p, "UIDVALIDITY", &u->uidvalidity) <
	    0 || *p++ != '/'))
		return -1;
	if (url_number(&p, "UID", &u->uid) < 0 || u->uid == 0 ||
	    u->uid > UINT32_MAX || u->uidvalidity > UINT32_MAX)
		return -1;
	if (strncasecmp(p, "/;SECTION=", 10) == 0) {
		p += 10;
		semi = strchr(p, ';');
		semi = semi != NULL && semi[-1] == '/' ? semi - 1 :
		    p + strlen(p);
		if (url_unescape(p, semi - p, u->section,
		    sizeof(u->section)) < 0)
			return -1;
		p = semi;
	}
	if (strncasecmp(p, "/;PARTIAL=", 10) == 0) {
		p += 10;
		if (!isdigit((unsigned char)*p))
			return -1;
		u->off = strtoull(p, &end, 10);
		p = end;
		if (*p == '.') {
			if (!isdigit((unsigned char)*++p))
				return -1;
			u->len = strtoull(p, &end, 10);
			p = end;
			if (u->len == 0)
				return -1;
		}
		u->partial = 1;
	}
	return *p == '\0' ? 0 : -1;
}

/*
 * Whether a URL can go back in a BADURL response code as it is: printable
 * ASCII without the "]" that would end the code.
 */
static int
url_printable(const char *url)
{
	for (; *url != '\0'; url++)
		if (*url <= ' ' || *url > '~' || *url == ']')
			return 0;
	return 1;
}

/*
 * Copies [off, end) of the message guid from the store into the message
 * being put together.  Returns 0, or -1 when the store failed.
 */
static int
cat_copy(struct catenate *c, const uint8_t *guid, uint64_t off,
    uint64_t end)
{
	struct store_blob_reader	*blob;
	char				*buf;
	size_t				 n;
	int				 r = 0;

	if (off >= end)
		return 0;
	if (store_blob_open(c->s->srv->store, guid, &blob, NULL) != STORE_OK)
		return -1;
	if ((buf = malloc(IO_CHUNK)) == NULL)
		r = -1;
	for (; r == 0 && off < end && !c->toobig; off += n) {
		n = end - off < IO_CHUNK ? (size_t)(end - off) : IO_CHUNK;
		if (store_blob_read(blob, off, buf, n) != (ssize_t)n)
			r = -1;
		else
			cat_add(c, buf, n);
	}
	free(buf);
	store_blob_close(blob);
	return r;
}

/*
 * Adds what a URL names.  Returns 0; 1 when the URL names nothing this
 * user has (BADURL); -1 when the store failed.
 */
static int
cat_url(struct catenate *c, const char *url)
{
	struct imap_session	*ims = imap_of(c->s);
	struct store		*st = c->s->srv->store;
	struct store_mailbox	 mb;
	struct store_message	 m;
	struct store_meta	 meta;
	struct imap_url		 u;
	enum store_err		 err;
	uint64_t		 start = 0, end;
	int			 r;

	if (url_parse(url, &u) < 0)
		return 1;
	if ((err = store_mailbox_get(st, ims->user, u.mailbox, &mb)) ==
	    STORE_OK && u.uidvalidity != 0 && u.uidvalidity != mb.uidvalidity)
		err = STORE_NOTFOUND;
	if (err == STORE_OK)
		err = store_message_get(st, mb.id, (uint32_t)u.uid, &m);
	if (err != STORE_OK)
		return err == STORE_NOTFOUND ? 1 : -1;
	end = m.size;
	if (u.section[0] != '\0') {
		if (store_message_meta(st, m.guid, STORE_META_SECTIONS,
		    &meta) != STORE_OK)
			return -1;
		r = imap_section_range(u.section, &meta, m.size, &start, &end);
		store_meta_free(&meta);
		if (r <= 0)
			return 1;
	}
	if (u.partial) {
		start = u.off < end - start ? start + u.off : end;
		if (u.len != 0 && end - start > u.len)
			end = start + u.len;
	}
	return cat_copy(c, m.guid, start, end);
}

int
imap_catenate(struct session *s, struct spool *spool,
    const struct imap_arg *list)
{
	struct catenate		 c = { s, spool, 0, 0 };
	const struct imap_arg	*a = list->list;
	size_t			 i;
	int			 r = 0;

	c.max = (uint64_t)s->srv->settings->max_message_size;
	if (list->nlist == 0 || list->nlist % 2 != 0) {
		imap_reply(s, "BAD CATENATE wants TEXT and URL parts");
		return -1;
	}
	store_read_begin(s->srv->store);
	for (i = 0; r == 0 && !c.toobig && i < list->nlist; i += 2) {
		if (a[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(a[i].str, "TEXT") == 0 &&
		    a[i + 1].type == IMAP_ARG_STRING && a[i + 1].literal)
			cat_add(&c, a[i + 1].str, a[i + 1].len);
		else if (a[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(a[i].str, "URL") == 0 &&
		    imap_arg_astring(&a[i + 1]) != NULL) {
			if (!url_printable(a[i + 1].str)) {
				imap_reply(s, "BAD Invalid URL");
				r = 1;
			} else if ((r = cat_url(&c, a[i + 1].str)) == 1)
				imap_reply(s, "NO [BADURL %s] The URL names no "
				    "message of yours", a[i + 1].str);
		} else {
			imap_reply(s, "BAD CATENATE wants TEXT literals and "
			    "URL strings");
			r = 1;
		}
	}
	store_read_end(s->srv->store);
	if (r < 0)
		imap_reply(s, "NO [UNAVAILABLE] Could not read a URL's "
		    "message");
	else if (r == 0 && c.toobig)
		imap_reply(s, "NO [TOOBIG] Message too large");
	else if (r == 0 && spool_size(spool) == 0)
		imap_reply(s, "NO Cannot save an empty message");
	else if (r == 0)
		return 0;
	return -1;
}
