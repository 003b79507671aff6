/*
 * imap_sort.c — the keys SORT (RFC 5256, and RFC 5957's DISPLAYFROM and
 * DISPLAYTO) orders messages by, and the base subject that SORT SUBJECT
 * and THREAD compare.
 *
 * A message's keys are read once, before sorting: the row gives
 * ARRIVAL and SIZE, the meta stored at delivery gives the Date: field
 * and the decoded subject, and the envelope (parsed again with the IMAP
 * parser: it is the ENVELOPE FETCH sends) gives the addresses.  Strings
 * compare as RFC 5256 asks, with the i;ascii-casemap collation: ASCII
 * letters without case, every other byte as it is.  Messages equal
 * under every criterion keep the order of their sequence numbers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_search.h"
#include "imap_sort.h"
#include "mime.h"
#include "store.h"

#define IS_WSP(c)	((c) == ' ' || (c) == '\t')

/* The address fields of an ENVELOPE, counted from 0. */
#define ENV_FROM	2
#define ENV_TO		5
#define ENV_CC		6
#define ENV_IN_REPLY_TO	8

/* A sort key's name, and the envelope address list it reads (or -1). */
static const struct {
	const char	*name;
	enum sort_key	 key;
	int		 env;
} sort_keys[] = {
	{ "ARRIVAL",	 SORT_ARRIVAL,	   -1 },
	{ "DATE",	 SORT_DATE,	   -1 },
	{ "SIZE",	 SORT_SIZE,	   -1 },
	{ "SUBJECT",	 SORT_SUBJECT,	   -1 },
	{ "FROM",	 SORT_FROM,	   ENV_FROM },
	{ "TO",		 SORT_TO,	   ENV_TO },
	{ "CC",		 SORT_CC,	   ENV_CC },
	{ "DISPLAYFROM", SORT_DISPLAYFROM, ENV_FROM },
	{ "DISPLAYTO",	 SORT_DISPLAYTO,   ENV_TO },
};

int
imap_sort_parse(const struct imap_arg *list, struct sort_criteria *c,
    const char **why)
{
	const struct imap_arg	*a;
	size_t			 i, k;
	int			 reverse = 0;

	memset(c, 0, sizeof(*c));
	if (list->type != IMAP_ARG_LIST || list->nlist == 0) {
		*why = "SORT needs a list of sort criteria";
		return -1;
	}
	for (i = 0; i < list->nlist; i++) {
		a = &list->list[i];
		if (a->type != IMAP_ARG_ATOM) {
			*why = "Sort criteria are atoms";
			return -1;
		}
		if (strcasecmp(a->str, "REVERSE") == 0 && !reverse) {
			reverse = 1;
			continue;
		}
		for (k = 0; k < sizeof(sort_keys) / sizeof(sort_keys[0]); k++)
			if (strcasecmp(a->str, sort_keys[k].name) == 0)
				break;
		if (k == sizeof(sort_keys) / sizeof(sort_keys[0])) {
			*why = "Unknown sort criterion";
			return -1;
		}
		if (c->n == IMAP_MAX_SORT_KEYS) {
			*why = "Too many sort criteria";
			return -1;
		}
		c->key[c->n] = sort_keys[k].key;
		c->reverse[c->n++] = reverse;
		reverse = 0;
	}
	if (reverse) {
		*why = "REVERSE must be followed by a sort key";
		return -1;
	}
	return 0;
}

/* --- base subject -------------------------------------------------------- */

/* A copy of s with each run of white space and line breaks one space. */
static char *
collapse_space(const char *s)
{
	char	*out, *o;
	int	 space = 0;

	if ((out = malloc(strlen(s) + 1)) == NULL)
		return NULL;
	for (o = out; *s != '\0'; s++) {
		if (IS_WSP(*s) || *s == '\r' || *s == '\n') {
			space = 1;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = 0;
		*o++ = *s;
	}
	if (space)
		*o++ = ' ';
	*o = '\0';
	return out;
}

/* The length of a subj-blob at p, "[" *BLOBCHAR "]" *WSP; or 0. */
static size_t
blob_len(const char *p)
{
	const char	*q;

	if (*p != '[')
		return 0;
	for (q = p + 1; *q != '\0' && *q != '[' && *q != ']'; q++)
		;
	if (*q != ']')
		return 0;
	for (q++; IS_WSP(*q); q++)
		;
	return q - p;
}

/*
 * The length of a subj-leader at p: one WSP, or *subj-blob subj-refwd,
 * where subj-refwd is ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; or 0.
 */
static size_t
leader_len(const char *p)
{
	static const char *const refwd[] = { "re", "fwd", "fw" };
	const char	*q = p;
	size_t		 i, n;

	if (IS_WSP(*p))
		return 1;
	while ((n = blob_len(q)) > 0)
		q += n;
	for (i = 0; i < sizeof(refwd) / sizeof(refwd[0]); i++)
		if (strncasecmp(q, refwd[i], strlen(refwd[i])) == 0)
			break;
	if (i == sizeof(refwd) / sizeof(refwd[0]))
		return 0;
	for (q += strlen(refwd[i]); IS_WSP(*q); q++)
		;
	q += blob_len(q);
	return *q == ':' ? (size_t)(q + 1 - p) : 0;
}

/*
 * RFC 5256 section 2.1, steps 2 to 6 on a collapsed copy: trailers off
 * the end, then leaders and blobs off the front until none is left, and
 * a "[fwd: ...]" wrapper starts it all again.
 */
char *
imap_base_subject(const char *subject, int *reply)
{
	char	*s, *b, *e;
	size_t	 n;
	int	 again, was_reply = 0;

	if ((s = collapse_space(subject)) == NULL)
		return NULL;
	b = s;
	e = s + strlen(s);
	for (;;) {
		for (;;) {
			if (e > b && IS_WSP(e[-1]))
				e--;
			else if (e - b >= 5 && strncasecmp(e - 5, "(fwd)", 5) ==
			    0) {
				e -= 5;
				was_reply = 1;
			}
			else
				break;
		}
		*e = '\0';
		do {
			for (again = 0; (n = leader_len(b)) > 0; again = 1) {
				was_reply |= n > 1 || !IS_WSP(*b);
				b += n;
			}
			/* A blob goes only when a subject is left after it. */
			if ((n = blob_len(b)) > 0 && b[n] != '\0') {
				b += n;
				again = 1;
			}
		} while (again);
		if (e - b >= 6 && strncasecmp(b, "[fwd:", 5) == 0 &&
		    e[-1] == ']') {
			b += 5;
			*--e = '\0';
			was_reply = 1;
			continue;
		}
		break;
	}
	memmove(s, b, e - b + 1);
	if (reply != NULL)
		*reply = was_reply;
	return s;
}

/* --- reading the keys ---------------------------------------------------- */

/* An address of an envelope: its name, mailbox and host; NULL for NIL. */
struct address {
	char	*name, *mailbox, *host;
};

static void
address_free(struct address *a)
{
	free(a->name);
	free(a->mailbox);
	free(a->host);
	memset(a, 0, sizeof(*a));
}

static const char *
skip_space(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/*
 * Reads the nstring at *p (NIL, a quoted string or a literal, as FETCH
 * writes them) into *out, a malloc'd string or NULL for NIL, and moves
 * past it.  Returns 0, or -1 when it is none of those or memory ran out.
 */
static int
read_nstring(const char **pp, char **out)
{
	const char	*p = skip_space(*pp), *end;
	char		*o;
	uint64_t	 n;

	*out = NULL;
	if (strncmp(p, "NIL", 3) == 0) {
		*pp = p + 3;
		return 0;
	}
	if (*p == '{') {
		p++;
		if (imap_parse_uint(&p, IMAP_MAX_LINE, &n) < 0 ||
		    strncmp(p, "}\r\n", 3) != 0 || strnlen(p + 3, n) < n)
			return -1;
		if ((*out = strndup(p + 3, n)) == NULL)
			return -1;
		*pp = p + 3 + n;
		return 0;
	}
	if (*p != '"' || (o = *out = malloc(strlen(p))) == NULL)
		return -1;
	for (end = p + 1; *end != '"' && *end != '\0'; end++) {
		if (*end == '\\' && end[1] != '\0')
			end++;
		*o++ = *end;
	}
	*o = '\0';
	if (*end != '"') {
		free(*out);
		*out = NULL;
		return -1;
	}
	*pp = end + 1;
	return 0;
}

/* Moves past one value at *p: an nstring or a list.  Returns 0 or -1. */
static int
skip_value(const char **pp, int depth)
{
	const char	*p = skip_space(*pp);
	char		*s;

	if (*p != '(') {
		if (read_nstring(&p, &s) < 0)
			return -1;
		free(s);
		*pp = p;
		return 0;
	}
	if (depth == IMAP_MAX_DEPTH)
		return -1;
	for (p++; *(p = skip_space(p)) != ')';)
		if (skip_value(&p, depth + 1) < 0)
			return -1;
	*pp = p + 1;
	return 0;
}

/*
 * Sets *p to field `field` of an ENVELOPE "(date subject from ...)".
 * Returns 0, or -1 when the envelope does not parse that far.
 */
static int
envelope_field(const char *envelope, int field, const char **p)
{
	int	 i;

	*p = skip_space(envelope);
	if (**p != '(')
		return -1;
	for ((*p)++, i = 0; i < field; i++)
		if (skip_value(p, 1) < 0)
			return -1;
	return 0;
}

/*
 * Reads the first address of the envelope's field `field` into *a, all
 * NULL when there is none.  An RFC 5322 group's start counts: it is the
 * list's first address, with the group's name as its mailbox and no
 * host.  Returns 0, or -1 when the envelope does not parse.
 */
static int
first_address(const char *envelope, int field, struct address *a)
{
	const char	*p;
	char		*adl = NULL;

	memset(a, 0, sizeof(*a));
	if (envelope_field(envelope, field, &p) < 0)
		return -1;
	if (*(p = skip_space(p)) != '(')
		return skip_value(&p, 0);	/* NIL: no address */
	if (*(p = skip_space(p + 1)) != '(')
		return *p == ')' ? 0 : -1;
	p++;
	if (read_nstring(&p, &a->name) == 0 && read_nstring(&p, &adl) == 0 &&
	    read_nstring(&p, &a->mailbox) == 0 &&
	    read_nstring(&p, &a->host) == 0 && *skip_space(p) == ')') {
		free(adl);
		return 0;
	}
	free(adl);
	address_free(a);
	return -1;
}

/*
 * What key k sorts by of an address: its addr-mailbox; for the display
 * keys (RFC 5957 section 3) its decoded display name, else its
 * addr-spec, else (a group's start) its addr-mailbox.  A malloc'd
 * string, or NULL when memory ran out.
 */
static char *
address_key(const struct address *a, enum sort_key k)
{
	char	*s;

	if (k != SORT_DISPLAYFROM && k != SORT_DISPLAYTO)
		return strdup(a->mailbox != NULL ? a->mailbox : "");
	if (a->name != NULL && *a->name != '\0') {
		s = mime_decode_words(a->name, strlen(a->name));
		if (s == NULL || *s != '\0')
			return s;
		free(s);
	}
	if (a->mailbox == NULL || a->host == NULL)
		return strdup(a->mailbox != NULL ? a->mailbox : "");
	if (asprintf(&s, "%s@%s", a->mailbox, a->host) < 0)
		return NULL;
	return s;
}

/*
 * Fills the address keys the criteria name from an envelope as FETCH
 * sends it; one that does not parse has no addresses.
 * Returns STORE_OK, or STORE_IO when memory ran out.
 */
static enum store_err
load_addresses(const char *envelope, const struct sort_criteria *c,
    struct sort_msg *m)
{
	struct address	 a;
	size_t		 i, k;
	enum sort_key	 key;

	for (i = 0; i < c->n; i++) {
		key = c->key[i];
		for (k = 0; sort_keys[k].key != key; k++)
			;
		if (sort_keys[k].env < 0 || m->str[key] != NULL)
			continue;
		if (first_address(envelope, sort_keys[k].env, &a) < 0)
			memset(&a, 0, sizeof(a));
		m->str[key] = address_key(&a, key);
		address_free(&a);
		if (m->str[key] == NULL)
			return STORE_IO;
	}
	return STORE_OK;
}

/*
 * Reads what THREAD links messages by: the Message-ID, and References:
 * or else In-Reply-To: (the envelope's field).  STORE_IO: no memory.
 */
static enum store_err
load_message_ids(const struct store_meta *meta, struct sort_msg *m)
{
	const char	*v, *p;
	size_t		 vlen, pos = 0;

	if (meta->message_id != NULL &&
	    (m->message_id = strdup(meta->message_id)) == NULL)
		return STORE_IO;
	if (meta->header != NULL && imap_header_next(meta->header,
	    meta->header_len, &pos, "References", &v, &vlen))
		return (m->references = strndup(v, vlen)) == NULL ?
		    STORE_IO : STORE_OK;
	if (meta->envelope == NULL ||
	    envelope_field(meta->envelope, ENV_IN_REPLY_TO, &p) < 0)
		return STORE_OK;
	if (read_nstring(&p, &m->references) < 0)
		m->references = NULL;
	return STORE_OK;
}

/* Whether the criteria (NULL: THREAD's) need the meta stored at delivery. */
static int
needs_meta(const struct sort_criteria *c)
{
	size_t	 i;

	for (i = 0; c != NULL && i < c->n; i++)
		if (c->key[i] != SORT_ARRIVAL && c->key[i] != SORT_SIZE)
			return 1;
	return c == NULL;
}

enum store_err
imap_sort_load(struct store *st, int64_t mbox, const struct sort_criteria *c,
    struct sort_msg *m)
{
	struct store_message	 msg;
	struct store_meta	 meta;
	enum store_err		 err;

	if ((err = store_message_get(st, mbox, m->uid, &msg)) != STORE_OK)
		return err;
	m->arrival = m->date = msg.internaldate;
	m->size = msg.size;
	if (!needs_meta(c))
		return STORE_OK;
	if ((err = store_message_meta(st, msg.guid, c == NULL ? STORE_META_ALL :
	    STORE_META_STRUCT | STORE_META_SEARCH, &meta)) != STORE_OK)
		return err;
	if (meta.sent_date != -1)
		m->date = meta.sent_date;
	if ((m->str[SORT_SUBJECT] = imap_base_subject(meta.subject != NULL ?
	    meta.subject : "", &m->reply)) == NULL)
		err = STORE_IO;
	if (err == STORE_OK && c != NULL && meta.envelope != NULL)
		err = load_addresses(meta.envelope, c, m);
	if (err == STORE_OK && c == NULL)
		err = load_message_ids(&meta, m);
	store_meta_free(&meta);
	return err;
}

/* --- ordering ------------------------------------------------------------ */

int
imap_casemap_cmp(const char *a, const char *b)
{
	int	 x, y;

	for (;; a++, b++) {
		x = toupper((unsigned char)*a);
		y = toupper((unsigned char)*b);
		if (x != y || x == '\0')
			return x - y;
	}
}

static int
compare_numbers(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

int
imap_sort_cmp(const struct sort_msg *a, const struct sort_msg *b,
    const struct sort_criteria *c)
{
	size_t	 i;
	int	 r;

	for (i = 0; i < c->n; i++) {
		switch (c->key[i]) {
		case SORT_ARRIVAL:
			r = compare_numbers(a->arrival, b->arrival);
			break;
		case SORT_DATE:
			r = compare_numbers(a->date, b->date);
			break;
		case SORT_SIZE:
			r = compare_numbers((int64_t)a->size, (int64_t)b->size);
			break;
		default:
			r = imap_casemap_cmp(a->str[c->key[i]] != NULL ?
			    a->str[c->key[i]] : "", b->str[c->key[i]] != NULL ?
			    b->str[c->key[i]] : "");
			break;
		}
		if (r != 0)
			return c->reverse[i] ? -r : r;
	}
	return compare_numbers(a->seq, b->seq);
}

/* qsort_r()'s comparison. */
static int
compare_msgs(const void *pa, const void *pb, void *arg)
{
	return imap_sort_cmp(pa, pb, arg);
}

void
imap_sort_msgs(struct sort_msg *m, size_t n, const struct sort_criteria *c)
{
	if (n > 1)
		qsort_r(m, n, sizeof(*m), compare_msgs, (void *)c);
}

void
imap_sort_msg_free(struct sort_msg *m)
{
	size_t	 k;

	for (k = 0; k < SORT_NKEYS; k++)
		free(m->str[k]);
	memset(m->str, 0, sizeof(m->str));
	free(m->message_id);
	free(m->references);
	m->message_id = m->references = NULL;
}
