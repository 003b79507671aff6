/*
 * imap_search_compile.c — compiles the arguments of SEARCH (RFC 3501
 * 6.4.4, with MODSEQ of RFC 7162 and OLDER/YOUNGER of RFC 5032) into the
 * tree of tests that imap_search.c runs, and case-folds the strings they
 * compare (and the header blocks they are compared with).  Every key is a row of search_keys[]: its name, the function
 * that compiles its arguments, and what that function makes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_search.h"
#include "imap_search_prog.h"
#include "imap_session.h"
#include "store.h"

#define IS_DIGIT(c)	((c) >= '0' && (c) <= '9')
#define IS_WSP(c)	((c) == ' ' || (c) == '\t')

/* Where compiling is in one list of arguments. */
struct cursor {
	const struct imap_arg	*a;
	size_t			 n, i;
};

struct compiler {
	struct search_prog	*prog;
	char			*err;		/* the reply when refused */
	size_t			 errlen;
};

struct search_key;
typedef struct node	*(*key_fn)(struct compiler *, struct cursor *,
			    const struct search_key *);

/* A search key's name, its compiler, and what that compiler makes. */
struct search_key {
	const char	*name;
	key_fn		 compile;
	uint32_t	 mask, want;	/* key_flags */
	enum field	 field;		/* key_date, key_number */
	enum cmp	 cmp;
	const char	*header;	/* key_header: field, or NULL: arg */
	enum decoded	 decoded;
	int		 whole;		/* key_text */
	int		 neg;		/* key_keyword: UNKEYWORD */
};

static struct node	*compile_key(struct compiler *, struct cursor *,
			    const char *after);

/* --- case folding -------------------------------------------------------- */

int
search_fold_lead(unsigned char c)
{
	return c >= 0xc3 && c <= 0xc5;
}

/*
 * The lower-case form of a letter of U+00C0..U+017F, or cp itself.
 * Left alone besides the lower-case letters: U+0130 and U+0131 (the
 * Turkish i, whose other forms are ASCII and one byte shorter).
 */
static uint32_t
fold_latin(uint32_t cp)
{
	if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
		return cp + 0x20;
	if (cp == 0x178)
		return 0xff;
	/* Upper case even, lower case the odd code point after it. */
	if ((cp >= 0x100 && cp <= 0x12f) || (cp >= 0x132 && cp <= 0x137) ||
	    (cp >= 0x14a && cp <= 0x177))
		return cp | 1;
	/* Upper case odd, lower case the even one after it. */
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
		return cp + (cp & 1);
	return cp;
}

/*
 * Case-folds n bytes in place; the length never changes.  A lead byte
 * at the very end is left as it is: the caller holds it back until its
 * second byte has been read.
 */
void
search_fold(unsigned char *p, size_t n)
{
	uint32_t	 cp;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] += 'a' - 'A';
		else if (search_fold_lead(p[i]) && i + 1 < n &&
		    (p[i + 1] & 0xc0) == 0x80) {
			cp = fold_latin((uint32_t)(p[i] & 0x1f) << 6 |
			    (p[i + 1] & 0x3f));
			p[i] = (unsigned char)(0xc0 | cp >> 6);
			p[i + 1] = (unsigned char)(0x80 | (cp & 0x3f));
			i++;
		}
	}
}

/* --- header blocks ------------------------------------------------------- */

size_t
search_header_normalise(char *h, size_t len)
{
	size_t	 i, o = 0;

	for (i = 0; i < len; i++) {
		if (h[i] == '\r' && i + 2 < len && h[i + 1] == '\n' &&
		    IS_WSP(h[i + 2]))
			i++;
		else if (h[i] == '\n' && i + 1 < len && IS_WSP(h[i + 1]))
			;
		else
			h[o++] = h[i];
	}
	search_fold((unsigned char *)h, o);
	return o;
}

int
imap_header_next(const char *h, size_t len, size_t *pos, const char *name,
    const char **val, size_t *vlen)
{
	const char	*line, *eol;
	size_t		 nlen = strlen(name), llen, p;

	while (*pos < len) {
		line = h + *pos;
		eol = memchr(line, '\n', len - *pos);
		llen = eol != NULL ? (size_t)(eol - line) : len - *pos;
		*pos += llen + (eol != NULL);
		/* continuation lines belong to the field */
		while (eol != NULL && *pos < len && IS_WSP(h[*pos])) {
			eol = memchr(h + *pos, '\n', len - *pos);
			*pos = eol != NULL ? (size_t)(eol - h) + 1 : len;
			llen = (eol != NULL ? (size_t)(eol - line) : len -
			    (size_t)(line - h));
		}
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen <= nlen || strncasecmp(line, name, nlen) != 0)
			continue;
		for (p = nlen; p < llen && IS_WSP(line[p]); p++)
			;
		if (p == llen || line[p] != ':')
			continue;
		for (p++; p < llen && IS_WSP(line[p]); p++)
			;
		*val = line + p;
		*vlen = llen - p;
		return 1;
	}
	return 0;
}

/* A NUL-terminated, case-folded copy of an argument, or NULL. */
static char *
fold_dup(const struct imap_arg *a)
{
	char	*s;

	if ((s = malloc(a->len + 1)) == NULL)
		return NULL;
	memcpy(s, a->str, a->len);
	s[a->len] = '\0';
	search_fold((unsigned char *)s, a->len);
	return s;
}

/* --- compiling ----------------------------------------------------------- */

/* Records the tagged reply for a refused SEARCH; the first one wins. */
static struct node *
fail(struct compiler *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct node *
fail(struct compiler *c, const char *fmt, ...)
{
	va_list	 ap;

	if (c->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

static struct node *
oom(struct compiler *c)
{
	return fail(c, "NO [UNAVAILABLE] Out of memory");
}

/* A new node, owned by the program from the start. */
static struct node *
node_new(struct compiler *c, enum node_kind kind, enum need need)
{
	struct node	*n;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return oom(c);
	n->kind = kind;
	n->need = need;
	n->all = c->prog->nodes;
	c->prog->nodes = n;
	return n;
}

/* The next argument as an astring (an atom or a string), or NULL. */
static const struct imap_arg *
arg_string(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	if (cur->i == cur->n || cur->a[cur->i].type == IMAP_ARG_LIST) {
		fail(c, "BAD %s needs a string", k->name);
		return NULL;
	}
	return &cur->a[cur->i++];
}

/* The next argument when it is an atom (NIL is one too), or NULL. */
static const struct imap_arg *
arg_atom(struct compiler *c, struct cursor *cur, const struct search_key *k,
    const char *what)
{
	if (cur->i == cur->n || (cur->a[cur->i].type != IMAP_ARG_ATOM &&
	    cur->a[cur->i].type != IMAP_ARG_NIL)) {
		fail(c, "BAD %s needs %s", k->name, what);
		return NULL;
	}
	return &cur->a[cur->i++];
}

/* Parses a decimal number of at most max.  Returns 0, or -1. */
static int
parse_number(const struct imap_arg *a, uint64_t max, uint64_t *out)
{
	uint64_t	 v = 0, d;
	size_t		 i;

	if (a->len == 0)
		return -1;
	for (i = 0; i < a->len; i++) {
		if (!IS_DIGIT(a->str[i]))
			return -1;
		d = (uint64_t)(a->str[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t		 era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/*
 * Parses an RFC 3501 date, "1-Feb-1994" or "01-Feb-1994" (month names
 * without regard to case), into days from 1970.  Returns 0, or -1.
 */
static int
parse_date(const char *s, size_t len, int64_t *day)
{
	static const char	 months[] =
				    "janfebmaraprmayjunjulaugsepoctnovdec";
	static const unsigned	 mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31,
				    30, 31, 30, 31 };
	const char		*end = s + len;
	unsigned		 d = 0, y = 0, mon, i;
	int			 leap;

	for (i = 0; i < 2 && s < end && IS_DIGIT(*s); i++)
		d = d * 10 + (unsigned)(*s++ - '0');
	/* What is left must be "-Mon-YYYY". */
	if (i == 0 || end - s != 9 || *s++ != '-')
		return -1;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(s, months + 3 * mon, 3) == 0)
			break;
	if (mon == 12 || s[3] != '-')
		return -1;
	for (s += 4; s < end; s++) {
		if (!IS_DIGIT(*s))
			return -1;
		y = y * 10 + (unsigned)(*s - '0');
	}
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d < 1 || d > mdays[mon] + (mon == 1 && leap))
		return -1;
	*day = days_from_civil(y, mon + 1, d);
	return 0;
}

/* ALL, ANSWERED, ..., NEW, OLD, RECENT, UNSEEN: a test of flag bits. */
static struct node *
key_flags(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	struct node	*n;

	(void)cur;
	n = node_new(c, N_FLAGS, (k->mask & ~SEARCH_RECENT) != 0 ? NEED_ROW :
	    NEED_VIEW);
	if (n != NULL) {
		n->mask = k->mask;
		n->want = k->want;
	}
	c->prog->recent |= (k->mask & SEARCH_RECENT) != 0;
	return n;
}

/* KEYWORD flag, UNKEYWORD flag. */
static struct node *
key_keyword(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;
	struct node		*n;

	if ((a = arg_atom(c, cur, k, "a keyword")) == NULL ||
	    (n = node_new(c, N_KEYWORD, NEED_ROW)) == NULL)
		return NULL;
	n->neg = k->neg;
	n->len = a->len;
	if ((n->str = strdup(a->str)) == NULL)
		return oom(c);
	return n;
}

/* BEFORE, ON, SINCE and their SENT and SAVED forms: date. */
static struct node *
key_date(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;
	struct node		*n;
	int64_t			 day;

	if ((a = arg_string(c, cur, k)) == NULL)
		return NULL;
	if (parse_date(a->str, a->len, &day) < 0)
		return fail(c, "BAD %s needs a date such as 1-Feb-1994",
		    k->name);
	if ((n = node_new(c, N_CMP, k->field == F_SENT_DAY ? NEED_META :
	    NEED_ROW)) == NULL)
		return NULL;
	n->field = k->field;
	n->cmp = k->cmp;
	n->num = day;
	return n;
}

/* LARGER n, SMALLER n; OLDER n, YOUNGER n (WITHIN, RFC 5032). */
static struct node *
key_number(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;
	struct node		*n;
	uint64_t		 v;

	if ((a = arg_atom(c, cur, k, "a number")) == NULL)
		return NULL;
	if (parse_number(a, INT64_MAX, &v) < 0)
		return fail(c, "BAD %s needs a number", k->name);
	if ((n = node_new(c, N_CMP, NEED_ROW)) == NULL)
		return NULL;
	n->field = k->field;
	n->cmp = k->cmp;
	n->num = (int64_t)v;
	return n;
}

/*
 * MODSEQ ["/flags/..." priv|shared|all] n (RFC 7162 3.1.5).  Every
 * change has one MODSEQ here, so the entry, when given, is checked for
 * syntax only, as Dovecot does.
 */
static struct node *
key_modseq(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;
	struct node		*n;
	uint64_t		 v;

	if (cur->i < cur->n && cur->a[cur->i].type == IMAP_ARG_STRING) {
		a = &cur->a[cur->i++];
		if (strncasecmp(a->str, "/flags/", 7) != 0 || a->len == 7)
			return fail(c, "BAD MODSEQ entry must be "
			    "\"/flags/<flag>\"");
		if ((a = arg_atom(c, cur, k, "priv, shared or all after its "
		    "entry")) == NULL)
			return NULL;
		if (strcasecmp(a->str, "priv") != 0 &&
		    strcasecmp(a->str, "shared") != 0 &&
		    strcasecmp(a->str, "all") != 0)
			return fail(c, "BAD MODSEQ entry type must be priv, "
			    "shared or all");
	}
	if ((a = arg_atom(c, cur, k, "a mod-sequence")) == NULL)
		return NULL;
	if (parse_number(a, INT64_MAX, &v) < 0)
		return fail(c, "BAD MODSEQ needs a mod-sequence");
	if ((n = node_new(c, N_CMP, NEED_ROW)) == NULL)
		return NULL;
	n->field = k->field;
	n->cmp = k->cmp;
	n->num = (int64_t)v;
	c->prog->modseq = 1;
	return n;
}

/* FROM, TO, CC, BCC, SUBJECT: string; HEADER field string. */
static struct node *
key_header(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*name = NULL, *str;
	struct node		*n;

	if ((k->header == NULL && (name = arg_string(c, cur, k)) == NULL) ||
	    (str = arg_string(c, cur, k)) == NULL ||
	    (n = node_new(c, N_HEADER, NEED_META)) == NULL)
		return NULL;
	n->decoded = k->decoded;
	n->len = str->len;
	if ((n->name = strdup(name != NULL ? name->str : k->header)) == NULL ||
	    (n->str = fold_dup(str)) == NULL)
		return oom(c);
	return n;
}

/* BODY string, TEXT string. */
static struct node *
key_text(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;
	struct node		*n;

	if (c->prog->ntext == IMAP_MAX_SEARCH_TEXT)
		return fail(c, "BAD [LIMIT] More than %d BODY or TEXT keys",
		    IMAP_MAX_SEARCH_TEXT);
	if ((a = arg_string(c, cur, k)) == NULL ||
	    (n = node_new(c, N_TEXT, NEED_BYTES)) == NULL)
		return NULL;
	n->whole = k->whole;
	n->text = c->prog->ntext++;
	n->len = a->len;
	if ((n->str = fold_dup(a)) == NULL)
		return oom(c);
	if (a->len > c->prog->maxlen)
		c->prog->maxlen = a->len;
	return n;
}

/*
 * A sequence set, of sequence numbers (a bare set) or of UIDs; "$" is
 * the saved result, of UIDs whatever the key (filled in at resolve).
 */
static struct node *
compile_set(struct compiler *c, const char *text, int uid)
{
	struct imap_seqset	 set = { NULL, 0 };
	struct node		*n;
	int			 saved = strcmp(text, "$") == 0;

	if (!saved && imap_seqset_parse(text, &set) < 0)
		return fail(c, "BAD Invalid %ssequence set %.40s",
		    uid ? "UID " : "", text);
	if ((n = node_new(c, N_SET, NEED_VIEW)) == NULL) {
		imap_seqset_free(&set);
		return NULL;
	}
	n->set = set;
	n->uid = uid || saved;
	n->saved = saved;
	return n;
}

/* UID set. */
static struct node *
key_uid(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	const struct imap_arg	*a;

	if ((a = arg_atom(c, cur, k, "a UID set")) == NULL)
		return NULL;
	return compile_set(c, a->str, 1);
}

/*
 * An object id's node (RFC 8474 6): the message whose EMAILID is match,
 * the argument itself or, for THREADID, "" that no message has.
 */
static struct node *
objectid_node(struct compiler *c, struct cursor *cur,
    const struct search_key *k, const char *match)
{
	struct node	*n;

	if (arg_atom(c, cur, k, "an object id") == NULL ||
	    (n = node_new(c, N_EMAILID, NEED_ROW)) == NULL)
		return NULL;
	if (match == NULL)
		match = cur->a[cur->i - 1].str;
	if ((n->str = strdup(match)) == NULL)
		return oom(c);
	return n;
}

/* EMAILID objectid. */
static struct node *
key_emailid(struct compiler *c, struct cursor *cur,
    const struct search_key *k)
{
	return objectid_node(c, cur, k, NULL);
}

/* THREADID objectid: no thread ids are kept, so no message has one. */
static struct node *
key_threadid(struct compiler *c, struct cursor *cur,
    const struct search_key *k)
{
	return objectid_node(c, cur, k, "");
}

/* NOT key: the key's own node, negated. */
static struct node *
key_not(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	struct node	*n;

	if ((n = compile_key(c, cur, k->name)) != NULL)
		n->neg = !n->neg;
	return n;
}

/* OR key1 key2. */
static struct node *
key_or(struct compiler *c, struct cursor *cur, const struct search_key *k)
{
	struct node	*a, *b, *n;

	if ((a = compile_key(c, cur, k->name)) == NULL ||
	    (b = compile_key(c, cur, k->name)) == NULL ||
	    (n = node_new(c, N_OR, NEED_VIEW)) == NULL)
		return NULL;
	n->child = a;
	a->next = b;
	return n;
}

static const struct search_key search_keys[] = {
	{ .name = "ALL", .compile = key_flags },
	{ .name = "ANSWERED", .compile = key_flags, .mask = FLAG_ANSWERED,
	    .want = FLAG_ANSWERED },
	{ .name = "DELETED", .compile = key_flags, .mask = FLAG_DELETED,
	    .want = FLAG_DELETED },
	{ .name = "DRAFT", .compile = key_flags, .mask = FLAG_DRAFT,
	    .want = FLAG_DRAFT },
	{ .name = "FLAGGED", .compile = key_flags, .mask = FLAG_FLAGGED,
	    .want = FLAG_FLAGGED },
	{ .name = "SEEN", .compile = key_flags, .mask = FLAG_SEEN,
	    .want = FLAG_SEEN },
	{ .name = "RECENT", .compile = key_flags, .mask = SEARCH_RECENT,
	    .want = SEARCH_RECENT },
	{ .name = "NEW", .compile = key_flags,
	    .mask = SEARCH_RECENT | FLAG_SEEN, .want = SEARCH_RECENT },
	{ .name = "OLD", .compile = key_flags, .mask = SEARCH_RECENT },
	{ .name = "UNANSWERED", .compile = key_flags, .mask = FLAG_ANSWERED },
	{ .name = "UNDELETED", .compile = key_flags, .mask = FLAG_DELETED },
	{ .name = "UNDRAFT", .compile = key_flags, .mask = FLAG_DRAFT },
	{ .name = "UNFLAGGED", .compile = key_flags, .mask = FLAG_FLAGGED },
	{ .name = "UNSEEN", .compile = key_flags, .mask = FLAG_SEEN },
	{ .name = "KEYWORD", .compile = key_keyword },
	{ .name = "UNKEYWORD", .compile = key_keyword, .neg = 1 },
	{ .name = "BEFORE", .compile = key_date, .field = F_DAY,
	    .cmp = CMP_LT },
	{ .name = "ON", .compile = key_date, .field = F_DAY, .cmp = CMP_EQ },
	{ .name = "SINCE", .compile = key_date, .field = F_DAY, .cmp = CMP_GE },
	{ .name = "SAVEDBEFORE", .compile = key_date, .field = F_SAVED_DAY,
	    .cmp = CMP_LT },
	{ .name = "SAVEDON", .compile = key_date, .field = F_SAVED_DAY,
	    .cmp = CMP_EQ },
	{ .name = "SAVEDSINCE", .compile = key_date, .field = F_SAVED_DAY,
	    .cmp = CMP_GE },
	/* every mailbox keeps save dates: all its messages */
	{ .name = "SAVEDATESUPPORTED", .compile = key_flags },
	{ .name = "SENTBEFORE", .compile = key_date, .field = F_SENT_DAY,
	    .cmp = CMP_LT },
	{ .name = "SENTON", .compile = key_date, .field = F_SENT_DAY,
	    .cmp = CMP_EQ },
	{ .name = "SENTSINCE", .compile = key_date, .field = F_SENT_DAY,
	    .cmp = CMP_GE },
	{ .name = "LARGER", .compile = key_number, .field = F_SIZE,
	    .cmp = CMP_GT },
	{ .name = "SMALLER", .compile = key_number, .field = F_SIZE,
	    .cmp = CMP_LT },
	{ .name = "MODSEQ", .compile = key_modseq, .field = F_MODSEQ,
	    .cmp = CMP_GE },
	{ .name = "OLDER", .compile = key_number, .field = F_AGE,
	    .cmp = CMP_GT },
	{ .name = "YOUNGER", .compile = key_number, .field = F_AGE,
	    .cmp = CMP_LE },
	{ .name = "FROM", .compile = key_header, .header = "from",
	    .decoded = DEC_FROM },
	{ .name = "TO", .compile = key_header, .header = "to",
	    .decoded = DEC_TO },
	{ .name = "SUBJECT", .compile = key_header, .header = "subject",
	    .decoded = DEC_SUBJECT },
	{ .name = "CC", .compile = key_header, .header = "cc",
	    .decoded = DEC_ADDRESS },
	{ .name = "BCC", .compile = key_header, .header = "bcc",
	    .decoded = DEC_ADDRESS },
	{ .name = "HEADER", .compile = key_header },
	{ .name = "BODY", .compile = key_text },
	{ .name = "TEXT", .compile = key_text, .whole = 1 },
	{ .name = "UID", .compile = key_uid },
	{ .name = "EMAILID", .compile = key_emailid },
	{ .name = "THREADID", .compile = key_threadid },
	{ .name = "NOT", .compile = key_not },
	{ .name = "OR", .compile = key_or },
};

static struct node	*compile_and(struct compiler *, struct cursor *);

/*
 * Compiles the key at the cursor and moves past it and its arguments.
 * `after` names the key that wanted this one, for the error when none
 * is left.  Returns its node, or NULL with the reply in c->err.
 */
static struct node *
compile_key(struct compiler *c, struct cursor *cur, const char *after)
{
	const struct imap_arg	*a;
	struct cursor		 sub;
	size_t			 i;

	if (cur->i == cur->n)
		return fail(c, "BAD %s needs a search key after it", after);
	if (++c->prog->nkeys > IMAP_MAX_SEARCH_KEYS)
		return fail(c, "BAD [LIMIT] More than %d search keys",
		    IMAP_MAX_SEARCH_KEYS);
	a = &cur->a[cur->i++];
	if (a->type == IMAP_ARG_LIST) {
		if (a->nlist == 0)
			return fail(c, "BAD Empty list of search keys");
		sub.a = a->list;
		sub.n = a->nlist;
		sub.i = 0;
		return compile_and(c, &sub);
	}
	if (a->type == IMAP_ARG_STRING)
		return fail(c, "BAD Expected a search key, got a string");
	for (i = 0; i < sizeof(search_keys) / sizeof(*search_keys); i++)
		if (strcasecmp(a->str, search_keys[i].name) == 0)
			return search_keys[i].compile(c, cur, &search_keys[i]);
	if (IS_DIGIT(a->str[0]) || a->str[0] == '*' || a->str[0] == '$')
		return compile_set(c, a->str, 0);
	return fail(c, "BAD Unknown search key %.40s", a->str);
}

/* Every key left at the cursor, ANDed. */
static struct node *
compile_and(struct compiler *c, struct cursor *cur)
{
	struct node	*n, *k, **tail;

	if ((n = node_new(c, N_AND, NEED_VIEW)) == NULL)
		return NULL;
	for (tail = &n->child; cur->i < cur->n; tail = &k->next) {
		if ((k = compile_key(c, cur, NULL)) == NULL)
			return NULL;
		*tail = k;
	}
	return n;
}

void
search_prog_free(struct search_prog *prog)
{
	struct node	*n;

	while ((n = prog->nodes) != NULL) {
		prog->nodes = n->all;
		if (n->kind == N_SET)
			imap_seqset_free(&n->set);
		free(n->str);
		free(n->name);
		free(n);
	}
	memset(prog, 0, sizeof(*prog));
}

const char *
imap_search_charset_refusal(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_LIST && strlen(a->str) == a->len &&
	    (strcasecmp(a->str, "UTF-8") == 0 ||
	    strcasecmp(a->str, "US-ASCII") == 0))
		return NULL;
	return "NO [BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 and US-ASCII "
	    "are supported";
}

int
search_compile(struct search_prog *prog, const struct imap_arg *args,
    size_t nargs, char *err, size_t errlen)
{
	struct compiler	 c = { prog, err, errlen };
	struct cursor	 cur = { args, nargs, 0 };
	const char	*why;

	memset(prog, 0, sizeof(*prog));
	err[0] = '\0';
	if (nargs > 0 && args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[0].str, "CHARSET") == 0) {
		if (nargs < 2) {
			fail(&c, "BAD CHARSET needs a charset name");
			return -1;
		}
		if ((why = imap_search_charset_refusal(&args[1])) != NULL) {
			fail(&c, "%s", why);
			return -1;
		}
		cur.i = 2;
	}
	if (cur.i == cur.n)
		fail(&c, "BAD SEARCH needs a search key");
	else
		prog->root = compile_and(&c, &cur);
	if (prog->root == NULL) {
		search_prog_free(prog);
		return -1;
	}
	return 0;
}

