/*
 * imap_search.c — SEARCH and UID SEARCH (RFC 3501 6.4.4), with the
 * MODSEQ search key of CONDSTORE (RFC 7162 3.1.5), OLDER and YOUNGER of
 * WITHIN (RFC 5032), and RETURN (...) of ESEARCH (RFC 4731), whose
 * response imap_esearch.c writes.
 *
 * The arguments are compiled once into a tree of small nodes: an AND or
 * an OR of children, or one test.  Each test knows what must be read
 * before it can answer, cheapest first: the view (sequence number, UID,
 * \Recent), the message row (flags, keywords, size, internal date,
 * MODSEQ), the meta stored at delivery (header fields, Date:), and last
 * the message bytes (BODY, TEXT).  A message is tried against the tree
 * in three-valued logic with what has been read so far; a test that
 * needs more answers "unknown", and only while the whole tree is unknown
 * is the next thing read.  So "UID SEARCH UID 1000:*" reads no row at
 * all and "SUBJECT x SEEN" reads the meta of seen messages only.
 *
 * Strings match as substrings after case folding: ASCII, and in UTF-8
 * the letters of Latin-1 Supplement and Latin Extended-A, whose folded
 * forms have the same length, so folding happens in place.  Header keys
 * look at unfolded field values; FROM, TO and SUBJECT also at the RFC
 * 2047 decoded values kept in the meta.  BODY and TEXT read each part's
 * body in chunks, decoding base64 and quoted-printable, and keep the
 * last bytes of a chunk (one less than the string's length) in front of
 * the next, so that a match across two chunks is found.
 *
 * A big mailbox is searched in steps of bounded work (imap_step_more()),
 * writing the "* SEARCH" line as it grows, so that other clients are
 * served meanwhile and the output buffer stays below its high-water
 * mark.  A big message is too: BODY and TEXT read the message once per
 * key, so a step may end in the middle of one key's scan (struct scan)
 * and the next step resumes it; what the keys already scanned answered
 * is kept with the message tried (struct candidate), so no byte is
 * read twice for one key.  IMAP_MAX_SEARCH_TEXT bounds how many times
 * one SEARCH reads each message.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "imap_esearch.h"
#include "imap_session.h"
#include "mime.h"
#include "proto.h"
#include "store.h"

#define SCAN_CHUNK	IO_CHUNK	/* message bytes read at once */
#define SCAN_SLACK	4		/* decoded bytes beyond those read */
#define REPLY_MAX	160		/* bytes of a compile error's reply */

/* \Recent lives in the view; it sits beside the stored flags here. */
#define SEARCH_RECENT	0x80000000u

#define IS_WSP(c)	((c) == ' ' || (c) == '\t')
#define IS_DIGIT(c)	((c) >= '0' && (c) <= '9')

/* What a test needs read before it can answer, in the order read. */
enum need {
	NEED_VIEW,	/* sequence number, UID, \Recent */
	NEED_ROW,	/* flags, keywords, size, internal date, MODSEQ */
	NEED_META,	/* header fields, Date: */
	NEED_BYTES,	/* the message text */
};

enum tri {
	T_NO,
	T_YES,
	T_UNKNOWN,	/* the test needs more than has been read */
};

enum node_kind {
	N_AND,		/* every child; without children, ALL */
	N_OR,		/* either child */
	N_FLAGS,	/* (flags & mask) == want */
	N_KEYWORD,	/* str is one of the message's keywords */
	N_SET,		/* the sequence number (or UID) is in set */
	N_CMP,		/* a number of the message against num */
	N_HEADER,	/* str in the value of a header field */
	N_TEXT,		/* str in the body (with `whole`, the header too) */
};

/* The numbers N_CMP compares; days are counted in UTC from 1970. */
enum field {
	F_SIZE,
	F_DAY,		/* of the internal date */
	F_SENT_DAY,	/* of Date:, else of the internal date (as Dovecot) */
	F_MODSEQ,
	F_AGE,		/* seconds from the internal date to now (WITHIN) */
};

enum cmp {
	CMP_LT,
	CMP_LE,
	CMP_EQ,
	CMP_GE,
	CMP_GT,
};

/* The RFC 2047 decoded value a header key also looks at. */
enum decoded {
	DEC_NONE,
	DEC_FROM,
	DEC_TO,
	DEC_SUBJECT,
	DEC_ADDRESS,	/* none, but an address field (CC, BCC) */
};

/*
 * One node of a compiled search.  Strings are the node's own copies
 * (the command's arguments are freed when its handler returns); N_TEXT
 * and N_HEADER strings are case-folded.
 */
struct node {
	enum node_kind		 kind;
	enum need		 need;		/* leaves only */
	int			 neg;		/* NOT */
	struct node		*child;		/* N_AND, N_OR */
	struct node		*next;		/* sibling under N_AND, N_OR */
	uint32_t		 mask, want;	/* N_FLAGS */
	struct imap_seqset	 set;		/* N_SET */
	int			 uid;		/* N_SET: of UIDs */
	enum field		 field;		/* N_CMP */
	enum cmp		 cmp;
	int64_t			 num;
	char			*str;		/* N_KEYWORD N_HEADER N_TEXT */
	size_t			 len;
	char			*name;		/* N_HEADER: the field */
	enum decoded		 decoded;	/* N_HEADER */
	int			 whole;		/* N_TEXT: TEXT, not BODY */
	size_t			 text;		/* N_TEXT: its number */
	struct node		*all;		/* every node, for freeing */
};

struct search_prog {
	struct node	*root;
	struct node	*nodes;		/* every node, linked by `all` */
	size_t		 nkeys;
	size_t		 ntext;		/* N_TEXT nodes */
	size_t		 maxlen;	/* longest N_TEXT string */
	int		 modseq;	/* the MODSEQ key is used */
};

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

enum cte {
	CTE_IDENTITY,
	CTE_BASE64,
	CTE_QP,
};

enum qp_state {
	QP_TEXT,
	QP_EQUALS,	/* after "=" */
	QP_HEX,		/* after "=" and one hex digit */
	QP_CR,		/* after "=" CR, a soft line break */
};

/* A content-transfer decoder's state across the chunks of one part. */
struct decoder {
	enum cte	 cte;
	uint32_t	 acc;		/* base64: bits not yet written */
	int		 nbits;
	enum qp_state	 qp;
	unsigned char	 hex;		/* QP_HEX: the first digit */
};

/*
 * What has been read of the message being tried, and what its N_TEXT
 * keys answered (T_UNKNOWN: not scanned yet), kept across steps.
 */
struct candidate {
	uint32_t			 seq, uid;
	uint32_t			 flags;	/* stored | SEARCH_RECENT */
	struct store_message		 row;
	struct store_meta		 meta;
	struct store_blob_reader	*blob;
	enum need			 have;	/* read so far */
	enum tri			 text[IMAP_MAX_SEARCH_TEXT];
};

/*
 * Where the scan of one N_TEXT key through the candidate is: the range
 * being read (the top-level header, then each leaf part's body, part by
 * part) and the decoder's and window's state, so that a step can end in
 * the middle and the next one go on.
 */
struct scan {
	const struct node	*node;		/* NULL: none under way */
	size_t			 part;		/* the next range: 0 header,
						   then part - 1 */
	int			 in_range;	/* [off, end) being read */
	uint64_t		 off, end;
	struct decoder		 d;
	size_t			 have, folded;	/* window_search()'s */
};

/* A running SEARCH, from its compiled keys to its last step. */
struct search {
	struct search_prog	 prog;
	struct store		*store;
	int64_t			 mailbox;
	int			 uid;		/* UID SEARCH */
	uint32_t		 next;		/* view index tried next */
	uint32_t		 found;
	uint64_t		 highest;	/* MODSEQ of what was found */
	struct imap_step_budget	 budget;	/* of this step */
	struct candidate	 cur;		/* view index `next` */
	int			 trying;	/* cur is under way */
	struct scan		 scan;
	int			 paused;	/* a scan ran out of budget */
	uint64_t		 last_modseq;	/* of the last match */
	struct imap_esearch	 es;		/* SEARCH RETURN (...) */
	enum store_err		 err;		/* what stopped a test */
	/* the row's keywords: the store's copy lasts one call */
	char			 keywords[STORE_MAX_KEYWORDS];
	unsigned char		*win;		/* decoded, folded bytes */
	unsigned char		*raw;		/* bytes as stored */
};

static struct node	*compile_key(struct compiler *, struct cursor *,
			    const char *after);
static enum tri		 eval(struct search *, const struct node *,
			    struct candidate *, enum need);

/* --- case folding -------------------------------------------------------- */

/* Whether c may start a UTF-8 letter that fold() changes. */
static int
fold_lead(unsigned char c)
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
static void
fold(unsigned char *p, size_t n)
{
	uint32_t	 cp;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] += 'a' - 'A';
		else if (fold_lead(p[i]) && i + 1 < n &&
		    (p[i + 1] & 0xc0) == 0x80) {
			cp = fold_latin((uint32_t)(p[i] & 0x1f) << 6 |
			    (p[i + 1] & 0x3f));
			p[i] = (unsigned char)(0xc0 | cp >> 6);
			p[i + 1] = (unsigned char)(0x80 | (cp & 0x3f));
			i++;
		}
	}
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
	fold((unsigned char *)s, a->len);
	return s;
}

/* --- header blocks ------------------------------------------------------- */

/*
 * Makes a header block searchable in place: each continuation line is
 * joined to its field by dropping the line end before it (RFC 5322
 * unfolding) and the letters are case-folded.  Returns the new length.
 */
static size_t
header_normalise(char *h, size_t len)
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
	fold((unsigned char *)h, o);
	return o;
}

/*
 * Finds the next field called `name` in a normalised header block,
 * from *pos on.  Sets *val and *vlen to its value (leading blanks
 * skipped, line end left out) and moves *pos past its line.  Returns 0
 * when there is no further such field.
 */
static int
header_next(const char *h, size_t len, size_t *pos, const char *name,
    const char **val, size_t *vlen)
{
	const char	*line, *eol;
	size_t		 nlen = strlen(name), llen, p;

	while (*pos < len) {
		line = h + *pos;
		eol = memchr(line, '\n', len - *pos);
		llen = eol != NULL ? (size_t)(eol - line) : len - *pos;
		*pos += llen + (eol != NULL);
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

/* BEFORE, ON, SINCE and their SENT forms: date. */
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

/* A sequence set, of sequence numbers (a bare set) or of UIDs. */
static struct node *
compile_set(struct compiler *c, const char *text, int uid)
{
	struct imap_seqset	 set;
	struct node		*n;

	if (imap_seqset_parse(text, &set) < 0)
		return fail(c, "BAD Invalid %ssequence set %.40s",
		    uid ? "UID " : "", text);
	if ((n = node_new(c, N_SET, NEED_VIEW)) == NULL) {
		imap_seqset_free(&set);
		return NULL;
	}
	n->set = set;
	n->uid = uid;
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
	if (IS_DIGIT(a->str[0]) || a->str[0] == '*')
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

static void
prog_free(struct search_prog *prog)
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

/* Whether a CHARSET argument names one we search in. */
static int
charset_ok(const struct imap_arg *a)
{
	return a->type != IMAP_ARG_LIST && strlen(a->str) == a->len &&
	    (strcasecmp(a->str, "UTF-8") == 0 ||
	    strcasecmp(a->str, "US-ASCII") == 0);
}

/*
 * Compiles SEARCH's arguments, an optional CHARSET then the keys, into
 * *prog.  Returns 0; or -1 with the whole tagged reply ("BAD ...") in
 * err and nothing left to free.  The program copies what it keeps.
 */
static int
search_compile(struct search_prog *prog, const struct imap_arg *args,
    size_t nargs, char *err, size_t errlen)
{
	struct compiler	 c = { prog, err, errlen };
	struct cursor	 cur = { args, nargs, 0 };

	memset(prog, 0, sizeof(*prog));
	err[0] = '\0';
	if (nargs > 0 && args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[0].str, "CHARSET") == 0) {
		if (nargs < 2) {
			fail(&c, "BAD CHARSET needs a charset name");
			return -1;
		}
		if (!charset_ok(&args[1])) {
			fail(&c, "NO [BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 "
			    "and US-ASCII are supported");
			return -1;
		}
		cur.i = 2;
	}
	if (cur.i == cur.n)
		fail(&c, "BAD SEARCH needs a search key");
	else
		prog->root = compile_and(&c, &cur);
	if (prog->root == NULL) {
		prog_free(prog);
		return -1;
	}
	return 0;
}

/*
 * Gives each sequence set its meaning in the view: "*" is the last
 * sequence number, or for UIDs the highest UID (0 in an empty mailbox,
 * where nothing can match anyway).
 */
static void
prog_resolve(struct search_prog *prog, const struct imap_view *v)
{
	struct node	*n;
	uint32_t	 maxuid = imap_view_last_uid(v);

	for (n = prog->nodes; n != NULL; n = n->all)
		if (n->kind == N_SET)
			imap_seqset_resolve(&n->set, n->uid ? maxuid :
			    v->count);
}

/* --- decoding ------------------------------------------------------------ */

/*
 * Base64: bytes outside the alphabet (line ends, padding, garbage) are
 * skipped, as a lenient reader does.  Writes at most n * 3 / 4 + 1.
 */
static size_t
decode_base64(struct decoder *d, const unsigned char *in, size_t n,
    unsigned char *out)
{
	size_t	 i, o = 0;
	int	 v;

	for (i = 0; i < n; i++) {
		if ((v = crypto_base64_digit(in[i])) < 0)
			continue;
		d->acc = d->acc << 6 | (uint32_t)v;
		if ((d->nbits += 6) >= 8) {
			d->nbits -= 8;
			out[o++] = (unsigned char)(d->acc >> d->nbits);
		}
	}
	return o;
}

/*
 * Quoted-printable: "=XX" is a byte, "=" at a line end a soft break; an
 * "=" followed by anything else stays as written.  Writes at most n + 2
 * (an "=X" held from the last chunk).
 */
static size_t
decode_qp(struct decoder *d, const unsigned char *in, size_t n,
    unsigned char *out)
{
	size_t		 i, o = 0;
	unsigned char	 c;

	for (i = 0; i < n; i++) {
		c = in[i];
		switch (d->qp) {
		case QP_TEXT:
			break;
		case QP_EQUALS:
			d->qp = QP_TEXT;
			if (crypto_hex_digit(c) >= 0) {
				d->hex = c;
				d->qp = QP_HEX;
				continue;
			}
			if (c == '\n')
				continue;
			if (c == '\r') {
				d->qp = QP_CR;
				continue;
			}
			out[o++] = '=';
			break;
		case QP_HEX:
			d->qp = QP_TEXT;
			if (crypto_hex_digit(c) >= 0) {
				out[o++] = (unsigned char)((unsigned)
				    crypto_hex_digit(d->hex) << 4 |
				    (unsigned)crypto_hex_digit(c));
				continue;
			}
			out[o++] = '=';
			out[o++] = d->hex;
			break;
		case QP_CR:
			d->qp = QP_TEXT;
			if (c == '\n')
				continue;
			break;
		}
		if (c == '=')
			d->qp = QP_EQUALS;
		else
			out[o++] = c;
	}
	return o;
}

/* --- matching ------------------------------------------------------------ */

/* T_YES or T_NO. */
static enum tri
tri_of(int yes)
{
	return yes ? T_YES : T_NO;
}

/* Whether kw is one of a space-separated list (keywords ignore case). */
static int
has_keyword(const char *list, const char *kw, size_t len)
{
	size_t	 n;

	while (*list != '\0') {
		n = strcspn(list, " ");
		if (n == len && strncasecmp(list, kw, n) == 0)
			return 1;
		list += n;
		list += strspn(list, " ");
	}
	return 0;
}

/* Days since 1970-01-01 of a time, in UTC, rounding down. */
static int64_t
utc_day(int64_t t)
{
	return t >= 0 ? t / 86400 : (t - 86399) / 86400;
}

/*
 * The Date: field's time on the sender's clock, whose day SENTON and its
 * kin compare "disregarding time and timezone"; else the internal date.
 */
static int64_t
sent_local(const struct store_meta *meta, int64_t internaldate)
{
	const char	*v;
	size_t		 pos = 0, vlen;
	time_t		 t;

	if (meta->sent_date != -1 && header_next(meta->header,
	    meta->header_len, &pos, "date", &v, &vlen) &&
	    (t = mime_date_local(v, vlen)) != -1)
		return t;
	return meta->sent_date != -1 ? meta->sent_date : internaldate;
}

/* An N_CMP node against the candidate (its row, for F_SENT_DAY meta). */
static enum tri
match_cmp(const struct node *n, const struct candidate *m)
{
	int64_t	 v = 0;

	switch (n->field) {
	case F_SIZE:
		v = (int64_t)m->row.size;
		break;
	case F_DAY:
		v = utc_day(m->row.internaldate);
		break;
	case F_SENT_DAY:
		v = utc_day(sent_local(&m->meta, m->row.internaldate));
		break;
	case F_MODSEQ:
		v = (int64_t)m->row.modseq;
		break;
	case F_AGE:
		v = (int64_t)time(NULL) - m->row.internaldate;
		break;
	}
	switch (n->cmp) {
	case CMP_LT:
		return tri_of(v < n->num);
	case CMP_LE:
		return tri_of(v <= n->num);
	case CMP_EQ:
		return tri_of(v == n->num);
	case CMP_GE:
		return tri_of(v >= n->num);
	case CMP_GT:
		return tri_of(v > n->num);
	}
	return T_NO;
}

/*
 * Whether an address field value holds the node's string once its
 * comments are gone and so are the blanks beside '@' and '.': the
 * address as ENVELOPE shows it, so that "a (x)@ (y) b.org" is found by
 * "a@b.org".
 */
static int
address_has(const char *v, size_t vlen, const struct node *n)
{
	char	*out;
	size_t	 i, k = 0;
	int	 level = 0, found;

	if (memchr(v, '(', vlen) == NULL && memchr(v, '@', vlen) == NULL)
		return 0;
	if ((out = malloc(vlen + 1)) == NULL)
		return 0;
	for (i = 0; i < vlen; i++) {
		if (v[i] == '(')
			level++;
		else if (level > 0 && v[i] == '\\')
			i++;
		else if (level > 0)
			level -= v[i] == ')';
		else if (IS_WSP(v[i]) && (k > 0 && (out[k - 1] == '@' ||
		    out[k - 1] == '.' || IS_WSP(out[k - 1]))))
			continue;
		else if ((v[i] == '@' || v[i] == '.') && k > 0 &&
		    IS_WSP(out[k - 1])) {
			while (k > 0 && IS_WSP(out[k - 1]))
				k--;
			out[k++] = v[i];
		} else
			out[k++] = v[i];
	}
	found = memmem(out, k, n->str, n->len) != NULL;
	free(out);
	return found;
}

/*
 * An N_HEADER node: the string in the RFC 2047 decoded value (FROM, TO,
 * SUBJECT), or in the unfolded value of any field of that name.  The
 * meta was normalised when it was read.  An empty string matches every
 * message that has the field.
 */
static enum tri
match_header(const struct node *n, const struct store_meta *meta)
{
	const char	*d = NULL, *v;
	size_t		 pos = 0, vlen;

	switch (n->decoded) {
	case DEC_NONE:
		break;
	case DEC_FROM:
		d = meta->from;
		break;
	case DEC_TO:
		d = meta->to;
		break;
	case DEC_SUBJECT:
		d = meta->subject;
		break;
	case DEC_ADDRESS:
		break;
	}
	if (d != NULL && n->len > 0 &&
	    memmem(d, strlen(d), n->str, n->len) != NULL)
		return T_YES;
	while (header_next(meta->header, meta->header_len, &pos, n->name, &v,
	    &vlen))
		if (memmem(v, vlen, n->str, n->len) != NULL ||
		    (n->decoded != DEC_SUBJECT && n->decoded != DEC_NONE &&
		    address_has(v, vlen, n)))
			return T_YES;
	return T_NO;
}

/*
 * Folds what was added to the window and searches it.  The window
 * holds `*have` bytes, the first `*folded` of them folded already; on
 * return it keeps only the last len - 1 folded bytes (a match may start
 * there) and a UTF-8 lead byte whose second byte is still to be read,
 * unless `last`.  Returns whether the string was found.
 */
static int
window_search(unsigned char *w, size_t *have, size_t *folded,
    const struct node *n, int last)
{
	size_t	 hold, upto, keep;

	hold = !last && *have > *folded && fold_lead(w[*have - 1]);
	upto = *have - hold;
	fold(w + *folded, upto - *folded);
	if (memmem(w, upto, n->str, n->len) != NULL)
		return 1;
	keep = upto < n->len - 1 ? upto : n->len - 1;
	memmove(w, w + upto - keep, keep + hold);
	*have = keep + hold;
	*folded = keep;
	return 0;
}

/*
 * Reads a part's Content-Transfer-Encoding from its MIME header (the
 * first SCAN_CHUNK bytes of it).  Returns 0, or -1 on a store error.
 */
static int
part_cte(struct search *se, struct candidate *m, const struct mime_part *p,
    enum cte *cte)
{
	uint64_t	 len = p->body_start - p->header_start;
	const char	*v;
	size_t		 pos = 0, vlen;
	ssize_t		 r;

	if (len > SCAN_CHUNK)
		len = SCAN_CHUNK;
	if ((r = store_blob_read(m->blob, p->header_start, se->raw,
	    (size_t)len)) < 0 || (uint64_t)r != len) {
		se->err = STORE_IO;
		return -1;
	}
	len = header_normalise((char *)se->raw, (size_t)len);
	*cte = CTE_IDENTITY;
	if (!header_next((char *)se->raw, (size_t)len, &pos,
	    "content-transfer-encoding", &v, &vlen))
		return 0;
	while (vlen > 0 && IS_WSP(v[vlen - 1]))
		vlen--;
	if (vlen == 6 && memcmp(v, "base64", 6) == 0)
		*cte = CTE_BASE64;
	else if (vlen == 16 && memcmp(v, "quoted-printable", 16) == 0)
		*cte = CTE_QP;
	return 0;
}

/* Starts reading [off, end) decoded as cte. */
static void
scan_set(struct scan *sc, uint64_t off, uint64_t end, enum cte cte)
{
	sc->in_range = 1;
	sc->off = off;
	sc->end = end;
	memset(&sc->d, 0, sizeof(sc->d));
	sc->d.cte = cte;
	sc->have = sc->folded = 0;
}

/*
 * Sets the scan on its next range.  BODY looks at each leaf part's
 * decoded body and at the header of each encapsulated message (text a
 * reader sees); TEXT also at the top-level header.  Preambles, epilogues
 * and MIME part headers are not searched, as in Dovecot.  Returns 1 when
 * a range is set, 0 when none is left, -1 on a store error (se->err).
 */
static int
scan_next_range(struct search *se, struct candidate *m)
{
	struct scan		*sc = &se->scan;
	const struct mime_part	*p;
	enum cte		 cte;
	/* parts[1] repeats parts[0] when the message is a single part. */
	size_t			 first = m->meta.nparts > 1, i;

	if (sc->part == 0) {
		sc->part = 1;
		if (sc->node->whole && m->meta.nparts > 0) {
			scan_set(sc, 0, m->meta.parts[0].body_start,
			    CTE_IDENTITY);
			return 1;
		}
	}
	/* The parts before parts[first + part - 1] are done. */
	for (i = first + sc->part - 1; i < m->meta.nparts; i++) {
		p = &m->meta.parts[i];
		sc->part++;
		if (p->is_multipart)
			continue;
		if (p->is_message)
			scan_set(sc, p->body_start, p->inner_body_start,
			    CTE_IDENTITY);
		else if (part_cte(se, m, p, &cte) < 0)
			return -1;
		else
			scan_set(sc, p->body_start, p->body_end, cte);
		return 1;
	}
	return 0;
}

/*
 * Runs the scan of an N_TEXT node's string through the message, after
 * decoding: returns 1 when found, 0 when every range is read without
 * finding it, 2 when the step's time is up (the next step goes on from
 * here), -1 on a store error (in se->err).
 */
static int
scan_run(struct search *se, struct candidate *m)
{
	struct scan	*sc = &se->scan;
	size_t		 want;
	unsigned char	*in;
	ssize_t		 r;
	int		 more;

	for (;;) {
		if (!sc->in_range && (more = scan_next_range(se, m)) <= 0)
			return more;
		while (sc->off < sc->end) {
			if (!imap_step_time_left(&se->budget))
				return 2;
			want = sc->end - sc->off < SCAN_CHUNK ?
			    (size_t)(sc->end - sc->off) : SCAN_CHUNK;
			in = sc->d.cte == CTE_IDENTITY ? se->win + sc->have :
			    se->raw;
			if ((r = store_blob_read(m->blob, sc->off, in,
			    want)) <= 0) {
				se->err = STORE_IO;
				return -1;
			}
			sc->off += (uint64_t)r;
			if (sc->d.cte == CTE_BASE64)
				sc->have += decode_base64(&sc->d, in,
				    (size_t)r, se->win + sc->have);
			else if (sc->d.cte == CTE_QP)
				sc->have += decode_qp(&sc->d, in, (size_t)r,
				    se->win + sc->have);
			else
				sc->have += (size_t)r;
			if (window_search(se->win, &sc->have, &sc->folded,
			    sc->node, sc->off == sc->end))
				return 1;
		}
		sc->in_range = 0;
	}
}

/*
 * An N_TEXT node: what its scan of this message answered, or the scan,
 * begun or resumed.  A scan that runs out of the step's time leaves
 * se->paused set and answers T_UNKNOWN.
 */
static enum tri
match_text(struct search *se, const struct node *n, struct candidate *m)
{
	enum store_err	 err;
	int		 r;

	if (n->len == 0)
		return T_YES;
	if (m->text[n->text] != T_UNKNOWN)
		return m->text[n->text];
	if (m->blob == NULL && (err = store_blob_open(se->store, m->row.guid,
	    &m->blob, NULL)) != STORE_OK) {
		se->err = err;
		return T_NO;
	}
	if (se->scan.node != n) {
		memset(&se->scan, 0, sizeof(se->scan));
		se->scan.node = n;
	}
	if ((r = scan_run(se, m)) == 2) {
		se->paused = 1;
		return T_UNKNOWN;
	}
	se->scan.node = NULL;
	return m->text[n->text] = tri_of(r > 0);
}

/* An AND stops at the first NO, an OR at the first YES. */
static enum tri
eval_group(struct search *se, const struct node *n, struct candidate *m,
    enum need have)
{
	const struct node	*c;
	enum tri		 stop = n->kind == N_OR ? T_YES : T_NO, r;
	enum tri		 res = n->kind == N_OR ? T_NO : T_YES;

	for (c = n->child; c != NULL; c = c->next) {
		if ((r = eval(se, c, m, have)) == stop)
			return stop;
		if (r == T_UNKNOWN)
			res = T_UNKNOWN;
	}
	return res;
}

/*
 * Tries the candidate against node n with what `have` says is read.  A
 * store error is left in se->err (the answer is then meaningless).
 */
static enum tri
eval(struct search *se, const struct node *n, struct candidate *m,
    enum need have)
{
	enum tri	 r = T_NO;

	/* A paused scan is resumed first, before any other is begun. */
	if (se->paused || (n->kind != N_AND && n->kind != N_OR &&
	    n->need > have))
		return T_UNKNOWN;
	switch (n->kind) {
	case N_AND:
	case N_OR:
		r = eval_group(se, n, m, have);
		break;
	case N_FLAGS:
		r = tri_of((m->flags & n->mask) == n->want);
		break;
	case N_KEYWORD:
		r = tri_of(has_keyword(se->keywords, n->str, n->len));
		break;
	case N_SET:
		r = tri_of(imap_seqset_has(&n->set, n->uid ? m->uid : m->seq));
		break;
	case N_CMP:
		r = match_cmp(n, m);
		break;
	case N_HEADER:
		r = match_header(n, &m->meta);
		break;
	case N_TEXT:
		r = match_text(se, n, m);
		break;
	}
	if (n->neg && r != T_UNKNOWN)
		r = tri_of(r == T_NO);
	return r;
}

/* --- running ------------------------------------------------------------- */

/*
 * Reads what `need` adds to the candidate: its row, or its meta (made
 * searchable in place).  The message bytes are opened by the test that
 * reads them.
 */
static enum store_err
candidate_read(struct search *se, struct candidate *m, enum need need)
{
	struct store_meta	*meta = &m->meta;
	enum store_err		 err;

	switch (need) {
	case NEED_VIEW:
	case NEED_BYTES:
		break;
	case NEED_ROW:
		if ((err = store_message_get(se->store, se->mailbox, m->uid,
		    &m->row)) != STORE_OK)
			return err;
		m->flags |= m->row.flags;
		snprintf(se->keywords, sizeof(se->keywords), "%s",
		    m->row.keywords != NULL ? m->row.keywords : "");
		break;
	case NEED_META:
		err = store_message_meta(se->store, m->row.guid,
		    STORE_META_ALL, meta);
		if (err != STORE_OK)
			return err;
		if (meta->header != NULL)
			meta->header_len = header_normalise(meta->header,
			    meta->header_len);
		if (meta->from != NULL)
			fold((unsigned char *)meta->from, strlen(meta->from));
		if (meta->to != NULL)
			fold((unsigned char *)meta->to, strlen(meta->to));
		if (meta->subject != NULL)
			fold((unsigned char *)meta->subject,
			    strlen(meta->subject));
		break;
	}
	return STORE_OK;
}

/* The candidate is done with: what it read is let go. */
static void
candidate_end(struct search *se)
{
	store_blob_close(se->cur.blob);
	store_meta_free(&se->cur.meta);
	memset(&se->cur, 0, sizeof(se->cur));
	se->scan.node = NULL;
	se->trying = 0;
}

/* Begins trying message i of the view. */
static void
candidate_begin(struct search *se, const struct imap_view *v, uint32_t i)
{
	struct candidate	*m = &se->cur;
	size_t			 k;

	memset(m, 0, sizeof(*m));
	m->seq = i + 1;
	m->uid = imap_view_uid(v, i + 1);
	m->flags = imap_view_is_recent(v, m->uid) ? SEARCH_RECENT : 0;
	m->have = NEED_VIEW;
	for (k = 0; k < IMAP_MAX_SEARCH_TEXT; k++)
		m->text[k] = T_UNKNOWN;
	se->trying = 1;
}

/*
 * Tries message i of the view (begun by an earlier step, or now),
 * reading no more than the keys need.  Returns 1 when it matches, 0
 * when not (or it is gone), 2 when the step's time ran out in the
 * middle of it (the next step goes on), -1 on a store error (in
 * se->err).
 */
static int
search_one(struct search *se, const struct imap_view *v, uint32_t i)
{
	struct candidate	*m = &se->cur;
	enum tri		 r;
	enum store_err		 err = STORE_OK;

	if (imap_view_is_gone(v, imap_view_uid(v, i + 1)))
		return 0;
	if (!se->trying)
		candidate_begin(se, v, i);
	se->err = STORE_OK;
	se->paused = 0;
	while ((r = eval(se, se->prog.root, m, m->have)) == T_UNKNOWN &&
	    se->err == STORE_OK && !se->paused) {
		assert(m->have < NEED_BYTES);
		m->have++;
		if ((err = candidate_read(se, m, m->have)) != STORE_OK)
			break;
	}
	if (se->paused && err == STORE_OK && se->err == STORE_OK)
		return 2;
	/* The highest MODSEQ of the matches needs the row. */
	if (err == STORE_OK && se->err == STORE_OK && r == T_YES &&
	    se->prog.modseq && m->have < NEED_ROW)
		err = candidate_read(se, m, NEED_ROW);
	if (err == STORE_OK)
		err = se->err;
	if (err == STORE_OK && r == T_YES) {
		se->found++;
		se->last_modseq = m->row.modseq;
		if (m->row.modseq > se->highest)
			se->highest = m->row.modseq;
	}
	candidate_end(se);
	if (err == STORE_NOTFOUND)
		return 0;	/* expunged since the view was made */
	if (err != STORE_OK) {
		se->err = err;
		return -1;
	}
	return r == T_YES;
}

static void
search_free(void *arg)
{
	struct search	*se = arg;

	candidate_end(se);
	prog_free(&se->prog);
	free(se->win);
	free(se->raw);
	free(se);
}

/*
 * One step: tries messages until the mailbox is done or the step's
 * budget is used up (in the middle of a message, maybe), writing each
 * match onto the "* SEARCH" line.  Returns 1 once the reply is recorded, else 0.
 */
static int
search_step(struct session *s, void *arg)
{
	struct search		*se = arg;
	const struct imap_view	*v = imap_of(s)->view;
	int			 r;

	imap_step_begin(&se->budget);
	for (; se->next < v->count; se->next++) {
		if (!imap_step_more(s, &se->budget))
			return 0;
		se->budget.done++;
		if ((r = search_one(se, v, se->next)) == 2)
			return 0;
		if (r < 0) {
			session_printf(s, "\r\n");
			imap_reply(s, "NO [UNAVAILABLE] SEARCH failed: %s",
			    store_strerror(se->err));
			return 1;
		}
		if (r > 0 && se->es.ret != 0)
			imap_esearch_add(s, &se->es, se->uid ?
			    imap_view_uid(v, se->next + 1) : se->next + 1,
			    se->last_modseq);
		else if (r > 0)
			session_printf(s, " %u", se->uid ?
			    imap_view_uid(v, se->next + 1) : se->next + 1);
	}
	if (se->es.ret != 0) {
		imap_esearch_end(s, &se->es, se->prog.modseq);
		imap_reply(s, "OK %sSEARCH completed", se->uid ? "UID " : "");
		return 1;
	}
	if (se->prog.modseq && se->found > 0)
		session_printf(s, " (MODSEQ %llu)",
		    (unsigned long long)se->highest);
	session_printf(s, "\r\n");
	imap_reply(s, "OK %sSEARCH completed", se->uid ? "UID " : "");
	return 1;
}

void
imap_cmd_search(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct imap_session	*ims = imap_of(s);
	struct search		*se;
	char			 err[REPLY_MAX];
	unsigned		 ret = 0;

	/* ESEARCH (RFC 4731): "RETURN (options)" before the criteria. */
	if (nargs > 0 && args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[0].str, "RETURN") == 0) {
		if (nargs < 2 || args[1].type != IMAP_ARG_LIST ||
		    imap_esearch_parse(&args[1], &ret) < 0) {
			imap_reply(s, "BAD Invalid SEARCH return options");
			return;
		}
		args += 2;
		nargs -= 2;
	}
	if ((se = calloc(1, sizeof(*se))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	if (search_compile(&se->prog, args, nargs, err, sizeof(err)) < 0) {
		imap_reply(s, "%s", err);
		free(se);
		return;
	}
	if (se->prog.maxlen > 0 &&
	    ((se->win = malloc(SCAN_CHUNK + se->prog.maxlen + SCAN_SLACK)) ==
	    NULL || (se->raw = malloc(SCAN_CHUNK)) == NULL)) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		search_free(se);
		return;
	}
	se->store = s->srv->store;
	se->mailbox = ims->view->mb.id;
	se->uid = uid;
	prog_resolve(&se->prog, ims->view);
	if (se->prog.modseq)
		imap_condstore_enable(s);
	if (ret != 0)
		imap_esearch_begin(s, &se->es, ret, uid);
	else
		session_printf(s, "* SEARCH");
	/* A small mailbox is done at once, without waiting for the loop. */
	if (search_step(s, se))
		search_free(se);
	else
		imap_start_steps(s, search_step, search_free, se);
}
