/*
 * mime_text.c — the text layer under the MIME parser: growable strings,
 * IMAP quoting as Dovecot does it, and readers of single header values
 * (RFC 822 tokens, Content-Type and its RFC 2231 parameters, address
 * lists, RFC 2047 encoded words, RFC 5322 dates).  Every reader works
 * on a complete, bounded value; none keeps state between calls.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "mime.h"
#include "mime_internal.h"

#define MAX_ESCAPES	4	/* more \" or \\ than this: a literal */

/* RFC 5322 atext, 8-bit bytes included as Dovecot has it. */
static int
is_atext(unsigned char c)
{
	return c >= 0x80 || (c > ' ' && c < 0x7f &&
	    strchr("()<>[]:;@\\,.\"", c) == NULL);
}

/* A MIME token byte: atext less the tspecials '/', '=' and '?'. */
static int
is_token(unsigned char c)
{
	return is_atext(c) && c != '/' && c != '=' && c != '?';
}

/*
 * Strings.
 */

/* Makes room for n more bytes and the NUL; returns -1 once it failed. */
static int
sb_grow(struct sbuf *b, size_t n)
{
	size_t	 cap;
	char	*s;

	if (b->err)
		return -1;
	if (b->cap > 0 && n < b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 4 - b->len) {
		b->err = 1;
		return -1;
	}
	cap = b->cap > 0 ? b->cap : 64;
	while (cap < b->len + n + 1)
		cap *= 2;
	if ((s = realloc(b->s, cap)) == NULL) {
		b->err = 1;
		return -1;
	}
	b->s = s;
	b->cap = cap;
	return 0;
}

void
sb_add(struct sbuf *b, const void *p, size_t n)
{
	if (sb_grow(b, n) == -1)
		return;
	if (n > 0)
		memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
sb_addc(struct sbuf *b, char c)
{
	sb_add(b, &c, 1);
}

void
sb_adds(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void
sb_addu(struct sbuf *b, uint64_t v)
{
	char	 num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	sb_adds(b, num);
}

void
sb_trunc(struct sbuf *b, size_t len)
{
	assert(len <= b->len);
	b->len = len;
	if (b->s != NULL)
		b->s[len] = '\0';
}

const char *
sb_str(const struct sbuf *b)
{
	return b->s != NULL ? b->s : "";
}

void
sb_free(struct sbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/*
 * Returns b's string, which the caller now owns, and empties b; NULL (and
 * *oom set) when an allocation failed along the way.
 */
char *
sb_take(struct sbuf *b, int *oom)
{
	char	*s;

	if (b->s == NULL)
		sb_add(b, "", 0);
	if (b->err) {
		*oom = 1;
		sb_free(b);
		return NULL;
	}
	s = b->s;
	memset(b, 0, sizeof(*b));
	return s;
}

/* A copy of n bytes cut at the first NUL, as Dovecot's C strings are. */
char *
mime_strcopy(const char *s, size_t n, int *oom)
{
	char	*d;

	n = strnlen(s, n);
	if ((d = malloc(n + 1)) == NULL) {
		*oom = 1;
		return NULL;
	}
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void
kv_add(struct kvlist *l, const char *k, const char *v)
{
	struct kv	*a;
	size_t		 cap;

	if (l->err)
		return;
	if (l->n == l->cap) {
		cap = l->cap > 0 ? l->cap * 2 : 4;
		if ((a = reallocarray(l->a, cap, sizeof(*a))) == NULL) {
			l->err = 1;
			return;
		}
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n].k = strdup(k);
	l->a[l->n].v = strdup(v);
	if (l->a[l->n].k == NULL || l->a[l->n].v == NULL) {
		free(l->a[l->n].k);
		free(l->a[l->n].v);
		l->err = 1;
		return;
	}
	l->n++;
}

void
kv_free(struct kvlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		free(l->a[i].k);
		free(l->a[i].v);
	}
	free(l->a);
	memset(l, 0, sizeof(*l));
}

/*
 * IMAP output.  Strings are written as Dovecot writes them: quoted when
 * they are plain ASCII with at most MAX_ESCAPES quotes or backslashes, a
 * {n} literal otherwise (8-bit text included, so UTF-8 reaches clients
 * unchanged).
 */

static void
imap_literal(struct sbuf *o, const char *s, size_t n)
{
	sb_addc(o, '{');
	sb_addu(o, n);
	sb_adds(o, "}\r\n");
	sb_add(o, s, n);
}

/* NIL for NULL, else a quoted string or a literal. */
void
mime_nstring(struct sbuf *o, const char *s)
{
	const unsigned char	*u;
	int			 esc = 0;

	if (s == NULL) {
		sb_adds(o, "NIL");
		return;
	}
	for (u = (const unsigned char *)s; *u != '\0'; u++) {
		if ((*u == '"' || *u == '\\') && ++esc <= MAX_ESCAPES)
			continue;
		if (*u == '"' || *u == '\\' || *u == '\r' || *u == '\n' ||
		    *u >= 0x80) {
			imap_literal(o, s, strlen(s));
			return;
		}
	}
	sb_addc(o, '"');
	for (u = (const unsigned char *)s; *u != '\0'; u++) {
		if (*u == '"' || *u == '\\')
			sb_addc(o, '\\');
		sb_addc(o, (char)*u);
	}
	sb_addc(o, '"');
}

/* As mime_nstring(), with CR and LF dropped (a blank kept between). */
void
mime_nstring_nolf(struct sbuf *o, const char *s)
{
	struct sbuf	 t = { 0 };
	size_t		 i;

	if (s == NULL || strpbrk(s, "\r\n") == NULL) {
		mime_nstring(o, s);
		return;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			sb_addc(&t, s[i]);
		else if (s[i + 1] != ' ' && s[i + 1] != '\t' &&
		    s[i + 1] != '\r' && s[i + 1] != '\n' && s[i + 1] != '\0')
			sb_addc(&t, ' ');
	}
	if (t.err)
		o->err = 1;
	else
		mime_nstring(o, sb_str(&t));
	sb_free(&t);
}

/*
 * A display name or subject "for humans", as Dovecot writes them: runs of
 * blanks, tabs, CRs and LFs become one space, leading and trailing ones
 * go, and any change, quote, backslash or 8-bit byte makes it a literal.
 */
void
mime_humans(struct sbuf *o, const char *s)
{
	struct sbuf	 t = { 0 };
	const char	*c;
	int		 special = 0;

	for (c = s; *c != '\0'; c++) {
		if (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') {
			if (t.len > 0 && t.s[t.len - 1] != ' ')
				sb_addc(&t, ' ');
			continue;
		}
		special |= *c == '"' || *c == '\\' || (unsigned char)*c >= 0x80;
		sb_addc(&t, *c);
	}
	if (t.len > 0 && t.s[t.len - 1] == ' ')
		sb_trunc(&t, t.len - 1);
	if (t.err)
		o->err = 1;
	else if (!special && strcmp(sb_str(&t), s) == 0) {
		sb_addc(o, '"');
		sb_adds(o, s);
		sb_addc(o, '"');
	} else if (t.len == 0)
		sb_adds(o, "\"\"");
	else
		imap_literal(o, t.s, t.len);
	sb_free(&t);
}

/*
 * RFC 822 tokens, with Dovecot's return convention: 1 when more input
 * follows, 0 at its end, -1 for a syntax error.  Blanks and comments
 * after a token are skipped.
 */

/*
 * Reads a comment, quoted string or domain literal (r->p at its opening
 * byte) into out, which may be NULL, as Dovecot does: folding removed, a
 * NUL made U+FFFD when r->nulrepl, a backslash quoting the next byte but
 * kept before CR, LF or NUL.  Comments nest and restart out; a literal
 * keeps its brackets and backslashes.  Returns -1 when it is not closed.
 */
static int
rfc_delimited(struct rfc *r, struct sbuf *out)
{
	const unsigned char	*start;
	unsigned char		 open = *r->p, close;
	size_t			 len;
	int			 level = 1;

	close = open == '(' ? ')' : open == '[' ? ']' : '"';
	if (open == '(' && out != NULL)
		sb_trunc(out, 0);
	start = open == '[' ? r->p : r->p + 1;
	for (r->p++; r->p < r->end; r->p++) {
		if (*r->p == '\0' && r->nulrepl && out != NULL) {
			sb_add(out, start, r->p - start);
			sb_adds(out, REPLACEMENT);
			start = r->p + 1;
		} else if (*r->p == '\n' && out != NULL) {
			len = r->p - start;
			if (len > 0 && start[len - 1] == '\r')
				len--;
			sb_add(out, start, len);
			start = r->p + 1;
		} else if (*r->p == '\\') {
			if (++r->p >= r->end)
				return -1;
			if (*r->p == '\r' || *r->p == '\n' || *r->p == '\0') {
				if (open == '[' && out != NULL) {
					sb_add(out, start, r->p - start);
					start = r->p;
				}
				r->p--;
			} else if (open != '[') {
				if (out != NULL)
					sb_add(out, start, r->p - start - 1);
				start = r->p;
			}
		} else if (*r->p == '(' && open == '(')
			level++;
		else if (*r->p == '[' && open == '[')
			return -1;
		else if (*r->p == close && (open != '(' || --level == 0)) {
			if (out != NULL)
				sb_add(out, start,
				    r->p - start + (open == '['));
			r->p++;
			if (open == '(')
				return r->p < r->end ? 1 : 0;
			return rfc_skip_lwsp(r);
		}
	}
	return -1;
}

int
rfc_skip_lwsp(struct rfc *r)
{
	while (r->p < r->end) {
		if (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' ||
		    *r->p == '\n') {
			r->p++;
			continue;
		}
		if (*r->p != '(')
			break;
		if (rfc_delimited(r, r->comment) < 0)
			return -1;
	}
	return r->p < r->end ? 1 : 0;
}

/*
 * Appends the run of atext (MIME token bytes when tokenchars; '.' too
 * when dot) at r->p to out: an atom, a mime-token or an obs-phrase word.
 */
int
rfc_run(struct rfc *r, struct sbuf *out, int tokenchars, int dot)
{
	const unsigned char	*start;

	for (start = r->p; r->p < r->end; r->p++) {
		if ((tokenchars ? is_token(*r->p) : is_atext(*r->p)) ||
		    (dot && *r->p == '.'))
			continue;
		sb_add(out, start, r->p - start);
		return rfc_skip_lwsp(r);
	}
	sb_add(out, start, r->p - start);
	return 0;
}

int
rfc_atom(struct rfc *r, struct sbuf *out)
{
	if (r->p >= r->end || !is_atext(*r->p))
		return -1;
	return rfc_run(r, out, 0, 0);
}

/* dot-atom, allowing blanks around the dots as RFC 822 did. */
static int
rfc_dot_atom(struct rfc *r, struct sbuf *out)
{
	const unsigned char	*start;
	int			 ret;

	if (r->p >= r->end || !is_atext(*r->p))
		return -1;
	for (start = r->p++; r->p < r->end;) {
		if (is_atext(*r->p)) {
			r->p++;
			continue;
		}
		if (start == r->p)
			return -1;
		sb_add(out, start, r->p - start);
		if ((ret = rfc_skip_lwsp(r)) <= 0)
			return ret;
		if (*r->p != '.')
			return 1;
		r->p++;
		sb_addc(out, '.');
		if (rfc_skip_lwsp(r) <= 0)
			return -1;
		start = r->p;
	}
	sb_add(out, start, r->p - start);
	return 0;
}


/* phrase = 1*word / obs-phrase; words are joined by one space. */
static int
rfc_phrase(struct rfc *r, struct sbuf *out)
{
	int	 ret;

	if (r->p >= r->end)
		return 0;
	if (*r->p == '.')
		return -1;
	for (;;) {
		if (*r->p == '"')
			ret = rfc_delimited(r, out);
		else
			ret = rfc_run(r, out, 0, 1);
		if (ret <= 0)
			return ret;
		if (!is_atext(*r->p) && *r->p != '"' && *r->p != '.')
			break;
		sb_addc(out, ' ');
	}
	return rfc_skip_lwsp(r);
}


/* A local-part with dots anywhere, as Dovecot 2.3 reads it. */
static int
rfc_loose_dot_atom(struct rfc *r, struct sbuf *out)
{
	int	 ret = -1;

	do {
		while (RFC_C(r) == '.') {
			sb_addc(out, '.');
			if (++r->p == r->end)
				return 0;
			ret = 1;
		}
		if (RFC_C(r) == '@')
			break;
		ret = rfc_atom(r, out);
	} while (ret > 0 && RFC_C(r) == '.');
	return ret;
}

/* "@" domain; r->p at the '@'. */
static int
rfc_domain(struct rfc *r, struct sbuf *out)
{
	assert(*r->p == '@');
	r->p++;
	if (rfc_skip_lwsp(r) <= 0)
		return -1;
	if (*r->p == '[')
		return rfc_delimited(r, out);
	return rfc_dot_atom(r, out);
}

/*
 * type "/" subtype into out.  On error out keeps a lone type when the
 * value ended after it, and nothing otherwise (Dovecot then writes the
 * part as that type with an empty subtype, or as "" "").
 */
int
rfc_content_type(struct rfc *r, struct sbuf *out)
{
	size_t	 pos;
	int	 ret;

	if (rfc_skip_lwsp(r) <= 0)
		return -1;
	if (rfc_run(r, out, 1, 1) <= 0 || out->len == 0)
		return -1;
	if (*r->p != '/') {
		sb_trunc(out, 0);
		return -1;
	}
	r->p++;
	if (rfc_skip_lwsp(r) <= 0) {
		sb_trunc(out, 0);
		return -1;
	}
	sb_addc(out, '/');
	pos = out->len;
	if ((ret = rfc_run(r, out, 1, 1)) < 0 || out->len == pos ||
	    (r->p != r->end && *r->p != ';')) {
		sb_trunc(out, 0);
		return -1;
	}
	return ret;
}

/* One ";" key "=" value; 1 with key and value set, 0 at the end, -1. */
static int
rfc_param(struct rfc *r, struct sbuf *key, struct sbuf *value)
{
	int	 ret;

	sb_trunc(key, 0);
	sb_trunc(value, 0);
	if (r->p >= r->end)
		return 0;
	if (*r->p != ';')
		return -1;
	r->p++;
	if (rfc_skip_lwsp(r) <= 0 || rfc_run(r, key, 1, 1) <= 0 ||
	    *r->p != '=')
		return -1;
	r->p++;
	if ((ret = rfc_skip_lwsp(r)) <= 0)
		;	/* no value: an empty one */
	else if (*r->p == '"')
		ret = rfc_delimited(r, value);
	else if (*r->p == '=') {
		/* broken but common: name==?utf-8?b?...?= */
		while (r->p < r->end && *r->p != ';' && *r->p != ' ' &&
		    *r->p != '\t' && *r->p != '\r' && *r->p != '\n')
			sb_addc(value, (char)*r->p++);
	} else
		ret = rfc_run(r, value, 1, 1);
	return ret < 0 ? -1 : 1;
}

struct ext2231 {
	char		*k;
	const char	*v;
	unsigned	 idx;
	int		 extended;
};

/* Sorts by key, then index, stably (the lists are short). */
static void
ext_sort(struct ext2231 *e, size_t n)
{
	struct ext2231	 t;
	size_t		 i, j;
	int		 c;

	for (i = 1; i < n; i++) {
		t = e[i];
		for (j = i; j > 0; j--) {
			c = strcmp(e[j - 1].k, t.k);
			if (c < 0 || (c == 0 && e[j - 1].idx <= t.idx))
				break;
			e[j] = e[j - 1];
		}
		e[j] = t;
	}
}

/*
 * Merges RFC 2231 continuations (key*0, key*1*, ...) of the parameters in
 * l into one key (key*, when any piece was extended), as Dovecot does: the
 * value keeps its charset'language' prefix and %-escapes, plain params stay
 * first, and a key with missing indexes is written piece by piece.
 */
static void
rfc2231_merge(struct kvlist *l)
{
	struct kvlist	 out = { 0 };
	struct ext2231	*e;
	struct sbuf	 v = { 0 }, k = { 0 };
	size_t		 i, j, next, ne = 0;
	unsigned	 idx = 0;
	const char	*c;
	char		*p, *q;
	int		 ok, have_ext, ext;

	if ((e = calloc(l->n + 1, sizeof(*e))) == NULL) {
		l->err = 1;
		return;
	}
	for (i = 0; i < l->n; i++) {
		if ((p = strchr(l->a[i].k, '*')) == NULL) {
			kv_add(&out, l->a[i].k, l->a[i].v);
			continue;
		}
		q = p;
		/* A key ending in '*' keeps the previous index: Dovecot's. */
		if (p[1] != '\0')
			for (p++, idx = 0; *p >= '0' && *p <= '9'; p++)
				idx = idx * 10 + (unsigned)(*p - '0');
		ext = *p == '*';
		if (ext)
			p++;
		if (*p != '\0') {
			kv_add(&out, l->a[i].k, l->a[i].v);
			continue;
		}
		*q = '\0';
		e[ne].k = l->a[i].k;
		e[ne].v = l->a[i].v;
		e[ne].idx = idx;
		e[ne++].extended = ext;
	}
	ext_sort(e, ne);
	for (i = 0; i < ne; i = next) {
		ok = 1;
		have_ext = 0;
		for (j = i; j < ne && strcasecmp(e[i].k, e[j].k) == 0; j++) {
			if (e[j].idx != j - i)
				ok = 0;
			have_ext |= e[j].extended;
		}
		next = j;
		for (j = i; j < next && !ok; j++) {
			sb_trunc(&k, 0);
			sb_adds(&k, e[j].k);
			sb_addc(&k, '*');
			sb_addu(&k, e[j].idx);
			if (e[j].extended)
				sb_addc(&k, '*');
			kv_add(&out, sb_str(&k), e[j].v);
		}
		if (!ok)
			continue;
		sb_trunc(&v, 0);
		if (!e[i].extended && have_ext)
			sb_adds(&v, "''");
		for (j = i; j < next; j++) {
			if (e[j].extended || !have_ext) {
				sb_adds(&v, e[j].v);
				continue;
			}
			for (c = e[j].v; *c != '\0'; c++) {
				if (*c == '%')
					sb_adds(&v, "%25");
				else
					sb_addc(&v, *c);
			}
		}
		sb_trunc(&k, 0);
		sb_adds(&k, e[i].k);
		if (have_ext)
			sb_addc(&k, '*');
		kv_add(&out, sb_str(&k), sb_str(&v));
	}
	out.err |= l->err | v.err | k.err;
	free(e);
	sb_free(&v);
	sb_free(&k);
	kv_free(l);
	*l = out;
}

/* The parameters after a Content-Type or Content-Disposition value. */
void
rfc_params(struct rfc *r, struct kvlist *l)
{
	struct sbuf	 key = { 0 }, value = { 0 };
	int		 ret;

	while ((ret = rfc_param(r, &key, &value)) != 0) {
		if (ret < 0) {
			/* skip a byte and try again, as Dovecot does */
			if (r->p >= r->end)
				break;
			r->p++;
			continue;
		}
		kv_add(l, sb_str(&key), sb_str(&value));
	}
	l->err |= key.err | value.err;
	sb_free(&key);
	sb_free(&value);
	rfc2231_merge(l);
}

/*
 * Addresses, parsed as Dovecot's message_address_parse() does with its
 * "fill missing" flag (so broken ones show MISSING_MAILBOX and the like)
 * and written straight into an ENVELOPE address list.
 */

/* The address being built: NULL fields are NIL. */
struct addrp {
	struct rfc	 r;
	struct sbuf	*out;
	struct sbuf	 str;
	struct sbuf	 comment;
	char		*f[4];	/* name, route, mailbox, domain */
	int		 invalid;
	int		 err;
};

enum { A_NAME, A_ROUTE, A_MAILBOX, A_DOMAIN };

static void
af_set(struct addrp *a, int k, const char *s)
{
	free(a->f[k]);
	if ((a->f[k] = strdup(s)) == NULL)
		a->err = 1;
}

/* Writes the address being built and starts a new one. */
static void
addr_emit(struct addrp *a)
{
	int	 k;

	sb_addc(a->out, '(');
	if (a->f[A_NAME] != NULL)
		mime_humans(a->out, a->f[A_NAME]);
	else
		sb_adds(a->out, "NIL");
	for (k = A_ROUTE; k <= A_DOMAIN; k++) {
		sb_addc(a->out, ' ');
		mime_nstring(a->out, a->f[k]);
	}
	sb_addc(a->out, ')');
	for (k = 0; k < 4; k++) {
		free(a->f[k]);
		a->f[k] = NULL;
	}
	a->invalid = 0;
}

static void
addr_emit_fixed(struct addrp *a)
{
	if (a->f[A_MAILBOX] == NULL)
		af_set(a, A_MAILBOX, "MISSING_MAILBOX");
	if (a->f[A_DOMAIN] == NULL || *a->f[A_DOMAIN] == '\0')
		af_set(a, A_DOMAIN, "MISSING_DOMAIN");
	addr_emit(a);
}

static int
addr_local_part(struct addrp *a)
{
	int	 ret;

	assert(a->r.p < a->r.end);
	sb_trunc(&a->str, 0);
	if (*a->r.p == '"')
		ret = rfc_delimited(&a->r, &a->str);
	else
		ret = rfc_loose_dot_atom(&a->r, &a->str);
	if (ret < 0)
		return -1;
	af_set(a, A_MAILBOX, sb_str(&a->str));
	return ret;
}

static int
addr_domain(struct addrp *a)
{
	int	 ret;

	sb_trunc(&a->str, 0);
	if ((ret = rfc_domain(&a->r, &a->str)) < 0)
		return -1;
	af_set(a, A_DOMAIN, sb_str(&a->str));
	return ret;
}

/* obs-domain-list: "@a,@b" before the ':' of a route-addr. */
static int
addr_route(struct addrp *a)
{
	int	 ret;

	sb_trunc(&a->str, 0);
	for (;;) {
		if (a->r.p >= a->r.end)
			return 0;
		if (*a->r.p != '@')
			break;
		if (a->str.len > 0)
			sb_addc(&a->str, ',');
		sb_addc(&a->str, '@');
		if ((ret = rfc_domain(&a->r, &a->str)) <= 0)
			return ret;
		while (rfc_skip_lwsp(&a->r) > 0 && *a->r.p == ',')
			a->r.p++;
	}
	af_set(a, A_ROUTE, sb_str(&a->str));
	return 1;
}

/* "<" [route ":"] addr-spec ">"; r.p at the '<'. */
static int
addr_angle(struct addrp *a)
{
	assert(*a->r.p == '<');
	a->r.p++;
	if (rfc_skip_lwsp(&a->r) <= 0)
		return -1;
	if (*a->r.p == '@') {
		if (addr_route(a) > 0 && RFC_C(&a->r) == ':')
			a->r.p++;
		else {
			af_set(a, A_ROUTE, "INVALID_ROUTE");
			if (a->r.p >= a->r.end)
				return -1;
		}
		if (rfc_skip_lwsp(&a->r) <= 0)
			return -1;
	}
	if (*a->r.p != '>') {
		if (addr_local_part(a) <= 0)
			return -1;
		if (*a->r.p == '@' && addr_domain(a) <= 0)
			return -1;
	}
	if (*a->r.p != '>')
		return -1;
	a->r.p++;
	return rfc_skip_lwsp(&a->r);
}

static int
addr_name_addr(struct addrp *a)
{
	sb_trunc(&a->str, 0);
	if (rfc_phrase(&a->r, &a->str) <= 0 || *a->r.p != '<')
		return -1;
	if (a->str.len > 0)
		af_set(a, A_NAME, sb_str(&a->str));
	if (addr_angle(a) < 0) {
		af_set(a, A_DOMAIN, "SYNTAX_ERROR");
		a->invalid = 1;
	}
	return a->r.p < a->r.end ? 1 : 0;
}

/*
 * addr-spec, where a trailing comment becomes the name and a word not
 * followed by "@" is taken as a name when more words follow.
 */
static int
addr_spec(struct addrp *a)
{
	size_t	 len;
	int	 ret, ret2 = -2, quoted;

	assert(a->r.p < a->r.end);
	sb_trunc(&a->comment, 0);
	quoted = *a->r.p == '"';
	if ((ret = addr_local_part(a)) <= 0)
		a->invalid = 1;
	if (ret != 0 && a->r.p < a->r.end && *a->r.p == '@') {
		ret2 = addr_domain(a);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (a->comment.len > 0)
		af_set(a, A_NAME, sb_str(&a->comment));
	else if (ret2 == -2) {
		sb_addc(&a->str, ' ');
		len = a->str.len;
		(void)rfc_phrase(&a->r, &a->str);
		if (a->str.len != len) {
			free(a->f[A_MAILBOX]);
			a->f[A_MAILBOX] = NULL;
			af_set(a, A_NAME, sb_str(&a->str));
		} else if (!quoted)
			af_set(a, A_DOMAIN, "");
		a->invalid = 1;
		ret = -1;
	}
	return ret;
}

static int
addr_mailbox(struct addrp *a)
{
	const unsigned char	*start = a->r.p;
	int			 ret;

	if ((ret = addr_name_addr(a)) < 0) {
		a->r.p = start;
		ret = addr_spec(a);
		if (a->invalid && a->f[A_NAME] == NULL &&
		    a->f[A_MAILBOX] != NULL && a->f[A_DOMAIN] == NULL) {
			a->f[A_NAME] = a->f[A_MAILBOX];
			a->f[A_MAILBOX] = NULL;
		}
	}
	if (ret < 0)
		a->invalid = 1;
	addr_emit_fixed(a);
	return ret;
}

/* A group: (NIL NIL "name" NIL), its members, then (NIL NIL NIL NIL). */
static int
addr_group(struct addrp *a)
{
	int	 ret;

	sb_trunc(&a->str, 0);
	if (rfc_phrase(&a->r, &a->str) <= 0 || *a->r.p != ':')
		return -1;
	a->r.p++;
	ret = rfc_skip_lwsp(&a->r);
	af_set(a, A_MAILBOX, sb_str(&a->str));
	addr_emit(a);
	if (ret > 0 && *a->r.p != ';') {
		for (;;) {
			(void)addr_mailbox(a);
			if (a->r.p >= a->r.end || *a->r.p != ',')
				break;
			a->r.p++;
			if (rfc_skip_lwsp(&a->r) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (a->r.p >= a->r.end || *a->r.p != ';')
			ret = -1;
		else {
			a->r.p++;
			ret = rfc_skip_lwsp(&a->r);
		}
	}
	addr_emit(a);
	return ret == 0 ? 0 : 1;
}

/* Appends the addresses of one header value to out. */
int
mime_addr_parse(const char *v, size_t n, struct sbuf *out)
{
	struct addrp		 a;
	const unsigned char	*start;
	int			 ret, k;

	memset(&a, 0, sizeof(a));
	a.r.p = (const unsigned char *)v;
	a.r.end = a.r.p + n;
	a.r.comment = &a.comment;
	a.r.nulrepl = 1;
	a.out = out;
	if (rfc_skip_lwsp(&a.r) > 0) {
		for (;;) {
			start = a.r.p;
			if ((ret = addr_group(&a)) < 0) {
				a.r.p = start;
				ret = addr_mailbox(&a);
			}
			if (ret == 0)
				break;
			if (a.r.p >= a.r.end || *a.r.p != ',')
				break;
			a.r.p++;
			if ((ret = rfc_skip_lwsp(&a.r)) <= 0) {
				if (ret < 0)
					addr_emit_fixed(&a);
				break;
			}
		}
	}
	ret = a.err | a.str.err | a.comment.err;
	sb_free(&a.str);
	sb_free(&a.comment);
	for (k = 0; k < 4; k++)
		free(a.f[k]);
	return ret ? -1 : 0;
}

/*
 * RFC 2047 and dates, for the decoded top-level fields.
 */

/* Appends byte c of the given charset (0 UTF-8, 1 US-ASCII, 2 Latin-1). */
static void
put_char(struct sbuf *o, unsigned char c, int cs)
{
	if (c == '\0' || (c >= 0x80 && cs == 1))
		sb_adds(o, REPLACEMENT);
	else if (c >= 0x80 && cs == 2) {
		sb_addc(o, (char)(0xc0 | c >> 6));
		sb_addc(o, (char)(0x80 | (c & 0x3f)));
	} else
		sb_addc(o, (char)c);
}

/*
 * If s (n bytes) starts with an encoded word in a charset we decode,
 * appends its text to o and returns its length; returns 0 otherwise.
 */
static size_t
decode_word(struct sbuf *o, const char *s, size_t n)
{
	static const char *const charsets[] = {
		"utf-8", "us-ascii", "iso-8859-1"
	};
	size_t	 i, cs_end, t, end, bits = 0, cslen;
	unsigned acc = 0;
	int	 cs, enc, v;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	for (i = 2; i < n && s[i] != '?' && !IS_LWSP(s[i]); i++)
		;
	if (i + 4 > n || s[i] != '?' || s[i + 2] != '?')
		return 0;
	cs_end = i;
	enc = s[i + 1] | 0x20;
	if (enc != 'b' && enc != 'q')
		return 0;
	for (t = i + 3, end = t; end < n && s[end] != '?' && !IS_LWSP(s[end]);
	    end++)
		;
	if (end + 1 >= n || s[end] != '?' || s[end + 1] != '=')
		return 0;
	/* RFC 2231 section 5: charset*language */
	cslen = strcspn(s + 2, "*?");
	if (cslen > cs_end - 2)
		cslen = cs_end - 2;
	for (cs = 0; cs < 3; cs++)
		if (strlen(charsets[cs]) == cslen &&
		    strncasecmp(s + 2, charsets[cs], cslen) == 0)
			break;
	if (cs == 3)
		return 0;
	for (i = t; i < end; i++) {
		if (enc == 'q') {
			if (s[i] == '_')
				put_char(o, ' ', cs);
			else if (s[i] == '=' && i + 2 < end &&
			    crypto_hex_digit(s[i + 1]) >= 0 && crypto_hex_digit(s[i + 2]) >= 0) {
				put_char(o, (unsigned char)(crypto_hex_digit(s[i + 1]) *
				    16 + crypto_hex_digit(s[i + 2])), cs);
				i += 2;
			} else
				put_char(o, (unsigned char)s[i], cs);
			continue;
		}
		if (s[i] == '=')
			break;
		if ((v = crypto_base64_digit(s[i])) < 0)
			return 0;
		acc = acc << 6 | (unsigned)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			put_char(o, (unsigned char)(acc >> bits), cs);
		}
	}
	return end + 2;
}

/*
 * Appends s (n bytes) to o with encoded words decoded to UTF-8; words in
 * other charsets, and malformed ones, stay as written.  Blanks between
 * two decoded words are dropped (RFC 2047 section 6.2); CR and LF are
 * dropped (unfolding) and NULs become U+FFFD.
 */
void
mime_decode_2047(struct sbuf *o, const char *s, size_t n)
{
	size_t	 i = 0, ws = 0, ws_len = 0, w, mark;
	int	 prev_word = 0;

	while (i < n) {
		if (s[i] == '\r' || s[i] == '\n') {
			i++;	/* unfolding */
			continue;
		}
		if (IS_LWSP(s[i])) {
			for (ws = i; i < n && IS_LWSP(s[i]); i++)
				;
			ws_len = i - ws;
			continue;
		}
		mark = o->len;
		if (!(prev_word && ws_len > 0))
			sb_add(o, s + ws, ws_len);
		if ((w = decode_word(o, s + i, n - i)) > 0) {
			i += w;
			prev_word = 1;
		} else {
			if (prev_word && ws_len > 0) {
				sb_trunc(o, mark);
				sb_add(o, s + ws, ws_len);
			}
			put_char(o, (unsigned char)s[i++], 0);
			prev_word = 0;
		}
		ws_len = 0;
	}
	sb_add(o, s + ws, ws_len);
}

char *
mime_decode_words(const char *s, size_t n)
{
	struct sbuf	 o = { 0 };
	int		 oom = 0;

	mime_decode_2047(&o, s, n);
	if (o.s == NULL && !o.err)
		return strdup("");
	return sb_take(&o, &oom);
}

/* Lower-cases w and returns its index in list (3-letter names), or -1. */
static int
date_name(char *w, const char *list)
{
	const char	*m;
	size_t		 i;

	for (i = 0; w[i] != '\0'; i++)
		w[i] = (char)(w[i] | 0x20);
	if (i < 3)
		return -1;
	w[3] = '\0';
	if ((m = strstr(list, w)) == NULL || (m - list) % 3 != 0)
		return -1;
	return (int)(m - list) / 3;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * RFC 5322 date-time, obsolete forms included (two- and three-digit
 * years, named and military zones, comments anywhere, no seconds), to
 * seconds since the epoch; -1 when it does not parse.  A missing zone is
 * taken as UTC.  *zone_out gets the zone's offset east of UTC in seconds.
 */
static time_t
parse_date_zone(const char *s, size_t n, int *zone_out)
{
	static const char *const zones[] = {
		"ut", "gmt", "z", "est", "edt", "cst", "cdt", "mst", "mdt",
		"pst", "pdt"
	};
	static const int zone_hours[] = { 0, 0, 0, -5, -4, -6, -5, -7, -6,
	    -8, -7 };
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	char	 t[256], w[16], *c;
	size_t	 i, k = 0;
	int	 level = 0, day, mon, year, hh, mm, ss = 0, zone = 0;
	int	 a, b, e;

	/* comments out (each leaves a blank), folding made blanks */
	for (i = 0; i < n && k + 1 < sizeof(t); i++) {
		if (s[i] == '(') {
			if (level++ == 0)
				t[k++] = ' ';
		} else if (level > 0) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == ')')
				level--;
		} else
			t[k++] = s[i] == '\t' || s[i] == '\r' || s[i] == '\n' ?
			    ' ' : s[i];
	}
	t[k] = '\0';
	for (c = t; *c == ' '; c++)
		;
	if (sscanf(c, "%15[A-Za-z]%n", w, &e) == 1) {
		if (strlen(w) != 3 || date_name(w, "sunmontuewedthufrisat") < 0)
			return -1;
		for (c += e; *c == ' '; c++)
			;
		if (*c == ',')
			c++;
	}
	if (sscanf(c, "%2d %15[A-Za-z] %n%4d%n %2d : %2d%n", &day, w, &a, &year,
	    &b, &hh, &mm, &e) != 5 || c[a] < '0' || c[a] > '9' || b - a < 2 ||
	    (mon = date_name(w, "janfebmaraprmayjunjulaugsepoctnovdec")) < 0)
		return -1;
	if (b - a == 2)
		year += year < 50 ? 2000 : 1900;
	else if (b - a == 3)
		year += 1900;
	c += e;
	if (sscanf(c, " : %2d%n", &ss, &e) == 1)
		c += e;
	while (*c == ' ')
		c++;
	if (*c == '+' || *c == '-') {
		if (sscanf(c + 1, "%4d%n", &zone, &e) != 1 || e != 4 ||
		    c[1] < '0' || c[1] > '9' || zone % 100 > 59)
			return -1;
		zone = (*c == '-' ? -1 : 1) *
		    (zone / 100 * 3600 + zone % 100 * 60);
	} else if (sscanf(c, "%15[A-Za-z]", w) == 1) {
		for (i = 0; w[i] != '\0'; i++)
			w[i] = (char)(w[i] | 0x20);
		for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strcmp(w, zones[i]) == 0)
				zone = zone_hours[i] * 3600;
	}
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 &&
	    (year % 4 != 0 || (year % 100 == 0 && year % 400 != 0))) ||
	    hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return -1;
	*zone_out = zone;
	return (time_t)(days_from_civil(year, mon + 1, day) * 86400 +
	    hh * 3600 + mm * 60 + ss - zone);
}

time_t
mime_parse_date(const char *s, size_t n)
{
	int	 zone;

	return parse_date_zone(s, n, &zone);
}

time_t
mime_date_local(const char *s, size_t n)
{
	int	 zone = 0;
	time_t	 t = parse_date_zone(s, n, &zone);

	return t == -1 ? -1 : t + zone;
}

