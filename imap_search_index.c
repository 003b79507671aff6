/*
 * imap_search_index.c — what SEARCH's full-text index (store_fts.c)
 * holds, how the server keeps it, and how a SEARCH uses it.
 *
 * The index is a prefilter only.  For each blob it holds, per kind of
 * text, the very bytes the matcher of imap_search.c reads, folded the
 * same way (search_fold()): BODY's decoded ranges (search_text_range()),
 * the top-level header unfolded (TEXT's header and HEADER's fields), and
 * the values that FROM, TO, CC, BCC and SUBJECT look at (each field's
 * unfolded value, its address form, the RFC 2047 decoded one).  Bytes
 * that are not UTF-8 become blanks, so that the index's UTF-8 reading
 * never joins them to a character around them.  A key's string that is
 * valid UTF-8 of 3 or more characters without NUL, CR or LF is then in
 * a blob's text only if every one of its trigrams is in that blob's
 * row, whatever case folding the index adds (it applies to both sides
 * alike): a blob the index does not name cannot match, every other is
 * read and matched as before.  Shorter strings, messages indexed since
 * the search began or never (their text was too long), and every
 * message when the index is off or being rebuilt are read as before.
 * So the index changes how fast SEARCH answers, never what.
 *
 * When the search's shape says every match must pass a key with a
 * prefilter (enum walk, mark_narrows()), the search asks no more than
 * the mailbox's messages of the blobs the prefilters name, joined as
 * the keys are, and of the blobs the index cannot tell of (skipped,
 * or above its high-water mark): a look-up each in the message table's
 * blob index, then sorted by UID.  When they would be more than
 * 1/FTS_WALK_SHARE of the mailbox, or the index is far behind, every
 * message is tried instead, the prefilters still passing over most.
 *
 * The server indexes behind delivery: the blobs above the index's
 * high-water mark, a bounded batch once enough wait or the first has
 * waited a while, in a transaction of its own after the group commit
 * (search_index_step()).  A replica indexes what it applies the same
 * way: the index is never replicated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "imap_search.h"
#include "imap_search_index.h"
#include "log.h"
#include "mime.h"
#include "settings.h"

/*
 * What the rows hold; a store indexed by another version is indexed
 * again from nothing.  Bump it whenever the text indexed changes.
 */
#define EXTRACTOR_VERSION	1

#define SCAN_CHUNK	IO_CHUNK	/* message bytes read at once */
#define BLOB_BATCH	256		/* message blobs read at once */

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* A text being put together for one row, up to FTS_MAX_TEXT bytes. */
struct text {
	char	*p;
	size_t	 len, cap;
	int	 over;		/* it would pass FTS_MAX_TEXT */
};

/*
 * Makes room for n more bytes.  Returns 0, or -1 with the text marked
 * over (too long, or no memory): it is never indexed incomplete.
 */
static int
text_room(struct text *t, size_t n)
{
	size_t	 cap;
	char	*p;

	if (t->over || t->len + n > FTS_MAX_TEXT + MIME_DECODE_SLACK) {
		t->over = 1;
		return -1;
	}
	if (t->len + n <= t->cap)
		return 0;
	cap = t->cap > 0 ? t->cap : 4096;
	while (cap < t->len + n)
		cap *= 2;
	if ((p = realloc(t->p, cap)) == NULL) {
		t->over = 1;	/* incomplete: the blob is always read */
		return -1;
	}
	t->p = p;
	t->cap = cap;
	return 0;
}

/* Appends n bytes; a text that cannot take them is marked over. */
static void
text_add(struct text *t, const void *p, size_t n)
{
	if (n == 0 || text_room(t, n) < 0)
		return;
	memcpy(t->p + t->len, p, n);
	t->len += n;
}

/*
 * The length of the valid UTF-8 character at p (n bytes left), or 0
 * when the byte there begins none: a lead byte of 2, 3 or 4 bytes with
 * that many continuation bytes after it.
 */
static size_t
utf8_char(const unsigned char *p, size_t n)
{
	size_t	 len, i;

	if (p[0] < 0x80)
		return 1;
	len = p[0] >= 0xc0 && p[0] < 0xe0 ? 2 : p[0] >= 0xe0 && p[0] < 0xf0 ?
	    3 : p[0] >= 0xf0 && p[0] < 0xf8 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/*
 * Turns each byte that begins no UTF-8 character into a blank, in
 * place.  A string that is valid UTF-8 and found in the bytes before
 * starts at a character's first byte, so it is found after as well.
 */
static void
text_sanitise(char *s, size_t n)
{
	size_t	 i = 0, k;

	while (i < n) {
		if ((k = utf8_char((unsigned char *)s + i, n - i)) == 0)
			s[i++] = ' ';
		else
			i += k;
	}
}

/*
 * Whether the index can look for a key's (folded) string: valid UTF-8
 * of 3 or more characters, without NUL, CR or LF (the header rows are
 * unfolded).
 */
static int
string_indexable(const char *s, size_t n)
{
	size_t	 i = 0, k, nc = 0;

	if (memchr(s, '\0', n) != NULL || memchr(s, '\r', n) != NULL ||
	    memchr(s, '\n', n) != NULL)
		return 0;
	for (; i < n; i += k, nc++)
		if ((k = utf8_char((const unsigned char *)s + i, n - i)) == 0)
			return 0;
	return nc >= 3;
}

/* --- what a blob's rows hold --------------------------------------------- */

/* The texts of one blob, a buffer per kind, kept across a step. */
struct extract {
	struct text	 t[STORE_FTS_NKINDS];
	unsigned char	 raw[SCAN_CHUNK];
};

/* The header fields with rows of their own, and what SEARCH reads. */
static const struct {
	const char		*name;
	enum store_fts_kind	 kind;
	int			 address;	/* also as search_address_strip() */
} fields[] = {
	{ "from", STORE_FTS_FROM, 1 },
	{ "to", STORE_FTS_TO, 1 },
	{ "cc", STORE_FTS_CC, 1 },
	{ "bcc", STORE_FTS_BCC, 1 },
	{ "subject", STORE_FTS_SUBJECT, 0 },
};

/*
 * BODY's text: each range search_text_range() gives, decoded and
 * folded, a line end between two.  Returns 0, or -1 when the blob could
 * not be read.
 */
static int
extract_body(struct extract *x, struct store_blob_reader *b,
    const struct store_meta *meta)
{
	struct text		*t = &x->t[STORE_FTS_BODY];
	struct search_range	 r;
	struct mime_decoder	 d;
	size_t			 part = 0, start, want;
	ssize_t			 n;
	int			 more = 0;

	while (!t->over && (more = search_text_range(b, meta, 0, &part,
	    (char *)x->raw, sizeof(x->raw), &r)) > 0) {
		mime_decoder_init(&d, r.cte);
		start = t->len;
		while (r.off < r.end && !t->over) {
			want = r.end - r.off < sizeof(x->raw) ?
			    (size_t)(r.end - r.off) : sizeof(x->raw);
			if ((n = store_blob_read(b, r.off, x->raw, want)) <= 0)
				return -1;
			r.off += (uint64_t)n;
			if (text_room(t, (size_t)n + MIME_DECODE_SLACK) == 0)
				t->len += mime_decode(&d, x->raw, (size_t)n,
				    (unsigned char *)t->p + t->len);
		}
		if (text_room(t, MIME_DECODE_SLACK + 1) == 0) {
			t->len += mime_decode_end(&d,
			    (unsigned char *)t->p + t->len);
			search_fold((unsigned char *)t->p + start,
			    t->len - start);
			t->p[t->len++] = '\n';
		}
	}
	return more < 0 && !t->over ? -1 : 0;
}

/*
 * The top-level header as SEARCH reads it: the bytes before the first
 * part's body (TEXT's range), or the header kept at delivery when the
 * message has no parts; unfolded and folded.  Returns 0, or -1 when
 * the blob could not be read.
 */
static int
extract_header(struct extract *x, struct store_blob_reader *b,
    const struct store_meta *meta)
{
	struct text	*t = &x->t[STORE_FTS_HEADER];
	uint64_t	 off = 0, end;
	ssize_t		 n;

	if (meta->nparts == 0) {
		if (meta->header != NULL)
			text_add(t, meta->header, meta->header_len);
		end = 0;
	} else
		end = meta->parts[0].body_start;
	while (off < end && !t->over) {
		n = end - off < sizeof(x->raw) ? (ssize_t)(end - off) :
		    (ssize_t)sizeof(x->raw);
		if ((n = store_blob_read(b, off, x->raw, (size_t)n)) <= 0)
			return -1;
		off += (uint64_t)n;
		text_add(t, x->raw, (size_t)n);
	}
	if (!t->over)
		t->len = search_header_normalise(t->p, t->len);
	return 0;
}

/* Appends a decoded value (FROM, TO, SUBJECT's) folded, and a line end. */
static void
add_folded(struct text *t, const char *v)
{
	size_t	 start = t->len;

	if (v == NULL)
		return;
	text_add(t, v, strlen(v));
	text_add(t, "\n", 1);
	if (!t->over)
		search_fold((unsigned char *)t->p + start, t->len - start);
}

/*
 * The rows of the fields in fields[]: every value of each in the header
 * kept at delivery (normalised in place here, as SEARCH reads it), the
 * address form of an address field's, and the decoded value.
 */
static void
extract_fields(struct extract *x, struct store_meta *meta)
{
	const char	*v;
	size_t		 i, pos, vlen, len;
	struct text	*t;

	len = meta->header != NULL ? search_header_normalise(meta->header,
	    meta->header_len) : 0;
	for (i = 0; i < nitems(fields); i++) {
		t = &x->t[fields[i].kind];
		pos = 0;
		while (imap_header_next(meta->header, len, &pos,
		    fields[i].name, &v, &vlen)) {
			text_add(t, v, vlen);
			text_add(t, "\n", 1);
			if (fields[i].address &&
			    search_address_strippable(v, vlen) &&
			    text_room(t, vlen + 1) == 0) {
				t->len += search_address_strip(v, vlen,
				    t->p + t->len);
				t->p[t->len++] = '\n';
			}
		}
	}
	add_folded(&x->t[STORE_FTS_FROM], meta->from);
	add_folded(&x->t[STORE_FTS_TO], meta->to);
	add_folded(&x->t[STORE_FTS_SUBJECT], meta->subject);
}

/*
 * The texts of one blob into x, as they are indexed.  Returns 0; 1 when
 * a text is too long or the blob cannot be read (then it has no rows);
 * -1 when the blob is gone.
 */
static int
extract_blob(struct store *st, struct extract *x, const struct store_fts_blob *b)
{
	struct store_meta		 meta;
	struct store_blob_reader	*r = NULL;
	enum store_err			 err;
	size_t				 k;
	int				 over = 0;

	for (k = 0; k < STORE_FTS_NKINDS; k++)
		x->t[k].len = x->t[k].over = 0;
	if ((err = store_message_meta(st, b->guid, STORE_META_ALL, &meta)) ==
	    STORE_NOTFOUND)
		return -1;
	if (err != STORE_OK)
		return 1;
	if ((err = store_blob_open(st, b->guid, &r, NULL)) == STORE_OK &&
	    (extract_body(x, r, &meta) < 0 || extract_header(x, r,
	    &meta) < 0))
		err = STORE_IO;
	store_blob_close(r);
	if (err == STORE_OK)
		extract_fields(x, &meta);
	store_meta_free(&meta);
	if (err == STORE_NOTFOUND)
		return -1;
	for (k = 0; k < STORE_FTS_NKINDS; k++) {
		over |= x->t[k].over || x->t[k].len > FTS_MAX_TEXT;
		if (!over)
			text_sanitise(x->t[k].p, x->t[k].len);
	}
	return over || err != STORE_OK;
}

/*
 * Indexes one blob: its rows, or its id in fts_skipped when a text is
 * too long or the blob cannot be read (SEARCH then reads it, and meets
 * what is wrong with it itself).  A blob gone since it was listed is
 * passed over.  *indexed counts the blobs given rows.  Returns what
 * failed writing the index.
 */
static enum store_err
index_blob(struct store *st, struct extract *x, const struct store_fts_blob *b,
    int64_t *indexed)
{
	enum store_err	 err = STORE_OK;
	size_t		 k;
	int		 r;

	if ((r = extract_blob(st, x, b)) != 0)
		return r < 0 ? STORE_OK : store_fts_skip(st, b->id);
	for (k = 0; k < STORE_FTS_NKINDS && err == STORE_OK; k++)
		if (x->t[k].len > 0)
			err = store_fts_add(st, b->id, (enum store_fts_kind)k,
			    x->t[k].p, x->t[k].len);
	*indexed += err == STORE_OK;
	return err;
}

/*
 * Deletes the rows of a blob about to go (no message uses it any
 * more): its texts read once more, as they were indexed, for the
 * contentless table to take them back; then the blob may go
 * (store_fts_forgot()).  Texts that do not come back the same (cannot
 * be: the blob and its meta never change) leave its rows, which name
 * no message.  Returns what failed writing the index.
 */
static enum store_err
forget_blob(struct store *st, struct extract *x, const struct store_fts_blob *b)
{
	enum store_err	 err = STORE_OK;
	size_t		 k;
	int		 r;

	if ((r = extract_blob(st, x, b)) < 0)
		return STORE_OK;
	if (r > 0)
		log_warn("search.index", "msg=\"rows of a deleted message "
		    "left in the index\" blob=%lld", (long long)b->id);
	for (k = 0; r == 0 && k < STORE_FTS_NKINDS && err == STORE_OK; k++)
		if (x->t[k].len > 0)
			err = store_fts_forget(st, b->id,
			    (enum store_fts_kind)k, x->t[k].p, x->t[k].len);
	return err == STORE_OK ? store_fts_forgot(st, b->id) : err;
}

static void
extract_free(struct extract *x)
{
	size_t	 k;

	for (k = 0; k < STORE_FTS_NKINDS; k++)
		free(x->t[k].p);
	free(x);
}

/*
 * Forgets the blobs that deletes left to it, then indexes the blobs
 * above the index's high-water mark, at most FTS_STEP_BLOBS of each or
 * FTS_STEP_USEC in all, in the transaction open or a new one (first
 * emptying an index by another extractor version).  Returns 1 when it
 * did any.
 */
static int
index_batch(struct store *st)
{
	struct store_fts_blob	 blobs[FTS_STEP_BLOBS];
	struct store_fts_state	 state;
	struct extract		*x;
	enum store_err		 err;
	int64_t			 start, upto = 0, indexed = 0;
	size_t			 n = 0, i, forgot;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return 0;
	if (store_fts_begin(st) != STORE_OK) {
		extract_free(x);
		return 0;
	}
	/* Read under the write lock: `index rebuild` may index too. */
	if ((err = store_fts_state(st, &state)) == STORE_OK &&
	    state.version != EXTRACTOR_VERSION) {
		log_info("search.index", "msg=\"index built anew\" "
		    "version=%u was=%u", EXTRACTOR_VERSION, state.version);
		err = store_fts_reset(st, EXTRACTOR_VERSION);
		state.upto = 0;
	}
	start = log_clock_us();
	if (err == STORE_OK)
		err = store_fts_forgettable(st, state.upto, blobs,
		    FTS_STEP_BLOBS, &n);
	for (i = 0; i < n && err == STORE_OK && (i == 0 ||
	    log_clock_us() - start < FTS_STEP_USEC); i++)
		err = forget_blob(st, x, &blobs[i]);
	forgot = i;
	n = 0;
	if (err == STORE_OK && log_clock_us() - start < FTS_STEP_USEC)
		err = store_fts_pending(st, state.upto, blobs, FTS_STEP_BLOBS,
		    &n);
	for (i = 0; i < n && err == STORE_OK && (i == 0 ||
	    log_clock_us() - start < FTS_STEP_USEC); i++) {
		err = index_blob(st, x, &blobs[i], &indexed);
		upto = blobs[i].id;
	}
	if (err != STORE_OK)
		log_error("search.index", "msg=\"indexing failed\" blob=%lld "
		    "err=%s", (long long)upto, store_strerror(err));
	err = store_fts_end(st, upto, indexed, err);
	extract_free(x);
	return err == STORE_OK && (n > 0 || forgot > 0);
}

int64_t
search_index_step(struct store *st, int64_t now_ms)
{
	/* When the first of fewer than a batch was seen waiting. */
	static int64_t		 waiting;
	/* store_fts_changes() at the last look, or -1. */
	static int64_t		 looked = -1;
	struct store_fts_blob	 blobs[FTS_STEP_BLOBS];
	struct store_fts_state	 state;
	size_t			 n = 0, gone = 0;
	int64_t			 changes;
	enum store_err		 err;

	/*
	 * Most iterations find nothing to do: without a statement when
	 * no row changed since the last look (what waited then still
	 * does), else with three in one read snapshot (one each cost two
	 * locks each, in every iteration: ~8% of a delivery's CPU).  On
	 * a full disk the index waits: its rows must not take the room
	 * that deletes need.
	 */
	if (!store_fts_enabled(st) || store_room_tight(st)) {
		waiting = 0;
		looked = -1;
		return 0;
	}
	changes = store_fts_changes(st);
	if (changes == looked && (waiting == 0 ||
	    now_ms - waiting < FTS_DELAY_MS))
		return waiting != 0 ? waiting + FTS_DELAY_MS : 0;
	looked = changes;
	if ((err = store_fts_look(st, EXTRACTOR_VERSION, &state, blobs,
	    FTS_STEP_BLOBS, &n, &gone)) != STORE_OK ||
	    (state.version == EXTRACTOR_VERSION && n == 0 && gone == 0)) {
		if (err != STORE_OK)
			looked = -1;	/* look again next time */
		waiting = 0;
		return 0;
	}
	/* What deletes wait for goes at once; new mail a batch at a time. */
	if (state.version == EXTRACTOR_VERSION && gone == 0 &&
	    n < FTS_STEP_BLOBS) {
		if (waiting == 0)
			waiting = now_ms;
		if (now_ms - waiting < FTS_DELAY_MS)
			return waiting + FTS_DELAY_MS;
	}
	waiting = 0;
	if (index_batch(st))
		return now_ms;
	looked = -1;	/* it failed (a busy write lock): try again */
	return 0;
}

/* --- a SEARCH's prefilters ----------------------------------------------- */

/*
 * The blobs that may hold one key's string (or an OR's of keys of one
 * string): a bit per blob id.
 */
struct prefilter {
	struct node	*node;
	const struct node *str;		/* whose string (node, or under it) */
	unsigned	 kinds;		/* 1 << store_fts_kind */
	uint8_t		*bits;		/* blob ids 0..upto */
	int64_t		 pos;		/* in the index */
	int		 done;
	int		 off;		/* unusable: every message is read */
};

/* What a search does with the prefilters once they are read. */
enum walk {
	WALK_COUNT,	/* counting the blobs a match may have */
	WALK_LOOKUP,	/* reading this mailbox's messages of those blobs */
	WALK_SKIPPED,	/* ... and of the blobs never indexed */
	WALK_PENDING,	/* ... and of those indexed since the search began */
	WALK_READY,	/* only the candidates are tried */
	WALK_OFF,	/* every message is tried */
};

/* A message that may match: the index names its blob, or cannot tell. */
struct candidate_msg {
	uint32_t	 uid;
	int64_t		 blob;
};

struct search_fts {
	struct store		*store;
	struct node		*root;
	struct node		*nodes;		/* every node (prog->nodes) */
	int64_t			 mailbox;	/* 0: none, blobs given */
	int64_t			 generation;
	int64_t			 upto;		/* indexed when the search began */
	int64_t			*skipped;	/* never indexed, ascending */
	size_t			 nskipped;
	struct prefilter	 pf[IMAP_MAX_SEARCH_FTS];
	size_t			 npf, gathered;
	int64_t			 ids[FTS_GATHER_ROWS];	/* one batch */
	/* The mailbox's messages and their blobs, a batch at a time. */
	uint32_t		 uids[BLOB_BATCH];
	int64_t			 blobs[BLOB_BATCH];
	size_t			 nb, ib;
	/* The candidates, when every match must be one of them. */
	enum walk		 walk;
	size_t			 limit;		/* more: every message is tried */
	size_t			 word;		/* of the bitmaps, walked so far */
	size_t			 count;		/* blobs counted */
	int64_t			 last;		/* the highest blob id */
	struct candidate_msg	*cand;		/* ascending UIDs when ready */
	size_t			 ncand, capcand;
};

/* The kinds of row that hold what node n reads, or 0. */
static unsigned
node_kinds(const struct node *n)
{
	size_t	 i;

	if (n->kind == N_TEXT)
		return 1u << STORE_FTS_BODY |
		    (n->whole ? 1u << STORE_FTS_HEADER : 0);
	if (n->kind != N_HEADER)
		return 0;
	for (i = 0; i < nitems(fields); i++)
		if (strcasecmp(n->name, fields[i].name) == 0)
			return 1u << fields[i].kind;
	return 1u << STORE_FTS_HEADER;
}

/*
 * Whether every test under n (an OR of ORs) looks for the string of
 * `first`, the first such test found (*first NULL on entry), through
 * the index, none negated below n.  Then *kinds gathers the kinds of
 * row they read: one prefilter, their union, serves n (the web API's
 * free text is an OR of a word in the subject, the addresses and the
 * body).
 */
static int
group_kinds(const struct node *n, const struct node **first, unsigned *kinds)
{
	const struct node	*c;
	unsigned		 k;

	if (n->kind == N_OR) {
		for (c = n->child; c != NULL; c = c->next)
			if (c->neg || !group_kinds(c, first, kinds))
				return 0;
		return 1;
	}
	if ((k = node_kinds(n)) == 0 || (*first != NULL && (n->len !=
	    (*first)->len || memcmp(n->str, (*first)->str, n->len) != 0)))
		return 0;
	if (*first == NULL)
		*first = n;
	*kinds |= k;
	return 1;
}

/* Gives node n and every node under it prefilter number `fts`. */
static void
group_mark(struct node *n, size_t fts)
{
	struct node	*c;

	n->fts = fts;
	for (c = n->child; c != NULL; c = c->next)
		group_mark(c, fts);
}

/*
 * A new prefilter for node n, which reads the rows of `kinds` looking
 * for str: n and the nodes under it answer from it.  Returns 0, or -1
 * when no more fit.
 */
static int
prefilter_add(struct search_fts *f, struct node *n, const struct node *str,
    unsigned kinds)
{
	struct prefilter	*p;

	if (f->npf == IMAP_MAX_SEARCH_FTS)
		return -1;
	p = &f->pf[f->npf];
	p->node = n;
	p->str = str;
	p->kinds = kinds;
	group_mark(n, ++f->npf);
	if ((p->bits = calloc((size_t)(f->upto / 8 + 1), 1)) == NULL)
		p->off = p->done = 1;
	return 0;
}

/*
 * The prefilters of the ORs at or under n whose tests all look for one
 * string (group_kinds()), outermost first: a union of kinds is one
 * look-up of the index instead of one a test, and it narrows the OR.
 */
static void
add_groups(struct search_fts *f, struct node *n)
{
	const struct node	*first = NULL;
	struct node		*c;
	unsigned		 kinds = 0;

	if (n->kind == N_OR && group_kinds(n, &first, &kinds) &&
	    first != NULL && string_indexable(first->str, first->len)) {
		(void)prefilter_add(f, n, first, kinds);
		return;
	}
	for (c = n->child; c != NULL; c = c->next)
		add_groups(f, c);
}

/* Reads the skipped blobs up to f->upto.  Returns 0, or -1. */
static int
read_skipped(struct search_fts *f)
{
	size_t	 n, cap = 0;
	int64_t	*p;

	do {
		if (f->nskipped == cap) {
			cap = cap > 0 ? cap * 2 : BLOB_BATCH;
			if (cap > FTS_MAX_BITMAP / sizeof(*p) || (p =
			    reallocarray(f->skipped, cap, sizeof(*p))) == NULL)
				return -1;
			f->skipped = p;
		}
		if (store_fts_skipped(f->store, f->nskipped > 0 ?
		    f->skipped[f->nskipped - 1] : 0, f->skipped + f->nskipped,
		    cap - f->nskipped, &n) != STORE_OK)
			return -1;
		f->nskipped += n;
	} while (n > 0 && f->skipped[f->nskipped - 1] <= f->upto);
	return 0;
}

struct search_fts *
search_fts_new(struct store *st, struct search_prog *prog, int64_t mailbox_id,
    uint32_t messages)
{
	struct store_fts_state	 state;
	struct search_fts	*f;
	struct node		*n;
	unsigned		 kinds;

	if (!store_fts_enabled(st) || store_fts_state(st, &state) !=
	    STORE_OK || state.version != EXTRACTOR_VERSION ||
	    state.upto == 0 || state.upto / 8 >= FTS_MAX_BITMAP ||
	    (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->store = st;
	f->root = prog->root;
	f->nodes = prog->nodes;
	f->mailbox = mailbox_id;
	f->limit = messages / FTS_WALK_SHARE;
	f->generation = state.generation;
	f->upto = state.upto;
	/* Without a mailbox the caller names each message's blob. */
	if (mailbox_id == 0)
		f->walk = WALK_OFF;
	add_groups(f, prog->root);
	for (n = prog->nodes; n != NULL; n = n->all)
		if (n->fts == 0 && (kinds = node_kinds(n)) != 0 &&
		    string_indexable(n->str, n->len) &&
		    prefilter_add(f, n, n, kinds) < 0)
			break;
	if (f->npf == 0 || read_skipped(f) < 0) {
		search_fts_free(f);
		return NULL;
	}
	return f;
}

void
search_fts_free(struct search_fts *f)
{
	struct node	*n;
	size_t		 i;

	if (f == NULL)
		return;
	for (n = f->nodes; n != NULL; n = n->all)
		n->fts = 0;
	for (i = 0; i < f->npf; i++)
		free(f->pf[i].bits);
	free(f->skipped);
	free(f->cand);
	free(f);
}

/*
 * Reads a batch of one prefilter's blobs.  An index rebuilt since the
 * search began turns every prefilter off, any other failure its own.
 */
static void
gather_one(struct search_fts *f, struct prefilter *p)
{
	enum store_err	 err;
	size_t		 i, n;

	err = store_fts_match(f->store, f->generation, p->kinds, p->str->str,
	    p->str->len, &p->pos, f->ids, nitems(f->ids), &n, &p->done);
	if (err == STORE_NOTFOUND)
		for (i = 0; i < f->npf; i++)
			f->pf[i].off = f->pf[i].done = 1;
	else if (err != STORE_OK)
		p->off = p->done = 1;
	for (i = 0; err == STORE_OK && i < n && f->ids[i] <= f->upto; i++)
		p->bits[f->ids[i] / 8] |= (uint8_t)(1u << (f->ids[i] % 8));
}

/*
 * Marks each node under n that narrows the search: every message that
 * passes it has a blob some prefilter under it names (or one the index
 * cannot tell of).  Such are a key with a usable prefilter, not
 * negated; an AND with such a child; an OR of such children.  A NOT,
 * or an OR with another key, may pass any message.  Returns n's mark.
 */
static int
mark_narrows(const struct search_fts *f, struct node *n)
{
	struct node	*c;
	int		 any = 0, all = 1;

	for (c = n->child; c != NULL; c = c->next) {
		if (mark_narrows(f, c))
			any = 1;
		else
			all = 0;
	}
	if (n->neg)
		n->narrows = 0;
	else if (n->kind == N_AND)
		n->narrows = any;
	else if (n->kind == N_OR)
		n->narrows = all && n->child != NULL;
	else
		n->narrows = n->fts != 0 && !f->pf[n->fts - 1].off;
	return n->narrows;
}

/*
 * Byte `byte` of the bitmap of the blobs a message that passes node n
 * (marked as narrowing) may have: the prefilters' bitmaps joined as the
 * keys are; a key that does not narrow passes every blob.
 */
static uint8_t
narrow_byte(const struct search_fts *f, const struct node *n, size_t byte)
{
	const struct node	*c;
	uint8_t			 b;

	if (!n->narrows)
		return 0xff;
	switch (n->kind) {
	case N_AND:
		b = 0xff;
		for (c = n->child; c != NULL && b != 0; c = c->next)
			b &= narrow_byte(f, c, byte);
		return b;
	case N_OR:
		b = 0;
		for (c = n->child; c != NULL; c = c->next)
			b |= narrow_byte(f, c, byte);
		return b;
	default:
		return f->pf[n->fts - 1].bits[byte];
	}
}

/*
 * Appends this mailbox's messages of blob `blob` to the candidates.
 * Returns 0, or -1 when they are too many or cannot be read: then every
 * message is tried.
 */
static int
add_candidates(struct search_fts *f, int64_t blob)
{
	struct candidate_msg	*c;
	size_t			 n, i, room, cap;

	if (f->ncand > f->limit)
		return -1;
	if (f->capcand - f->ncand < BLOB_BATCH) {
		cap = f->capcand > 0 ? f->capcand * 2 : BLOB_BATCH;
		if ((c = reallocarray(f->cand, cap, sizeof(*c))) == NULL)
			return -1;
		f->cand = c;
		f->capcand = cap;
	}
	room = f->limit + 1 - f->ncand < BLOB_BATCH ?
	    f->limit + 1 - f->ncand : BLOB_BATCH;
	if (store_blob_messages(f->store, f->mailbox, blob, f->uids, room,
	    &n) != STORE_OK || n == room)
		return -1;
	for (i = 0; i < n; i++) {
		f->cand[f->ncand].uid = f->uids[i];
		f->cand[f->ncand++].blob = blob;
	}
	return 0;
}

static int
cand_cmp(const void *a, const void *b)
{
	const struct candidate_msg	*x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Sorts the candidates by UID, each once. */
static void
cand_sort(struct search_fts *f)
{
	size_t	 i, o;

	if (f->ncand == 0)
		return;
	qsort(f->cand, f->ncand, sizeof(*f->cand), cand_cmp);
	for (i = o = 0; i < f->ncand; i++)
		if (o == 0 || f->cand[o - 1].uid != f->cand[i].uid)
			f->cand[o++] = f->cand[i];
	f->ncand = o;
}

/*
 * One move of the walk's set-up (enum walk): a bounded run of bitmap
 * bytes, or the look-up of one blob's messages.  Returns 1 once the
 * walk is ready or off.
 */
static int
walk_move(struct search_fts *f)
{
	size_t	 nbytes = (size_t)(f->upto / 8 + 1), i;
	uint8_t	 b;

	switch (f->walk) {
	case WALK_COUNT:
		for (i = 0; i < FTS_WALK_BYTES && f->word < nbytes; i++)
			f->count += (size_t)__builtin_popcount(
			    narrow_byte(f, f->root, f->word++));
		if (f->word == nbytes) {
			f->word = 0;
			f->walk = f->count + f->nskipped > f->limit ?
			    WALK_OFF : WALK_LOOKUP;
		}
		return 0;
	case WALK_LOOKUP:
		/* f->word counts bits here: the next blob id to look at. */
		for (i = 0; i < FTS_WALK_BYTES * 8 && f->word < nbytes * 8;
		    i++, f->word++) {
			b = narrow_byte(f, f->root, f->word / 8);
			if (b == 0) {
				f->word |= 7;
				continue;
			}
			if ((b & 1u << f->word % 8) == 0)
				continue;
			if (add_candidates(f, (int64_t)f->word++) < 0)
				f->walk = WALK_OFF;
			return 0;
		}
		if (f->word >= nbytes * 8) {
			f->word = 0;
			f->walk = WALK_SKIPPED;
		}
		return 0;
	case WALK_SKIPPED:
		if (f->word < f->nskipped && f->skipped[f->word] <= f->upto) {
			if (add_candidates(f, f->skipped[f->word++]) < 0)
				f->walk = WALK_OFF;
			return 0;
		}
		/* Few wait, or the index is behind: then every message. */
		if (store_blob_last(f->store, &f->last) != STORE_OK ||
		    f->last - f->upto > FTS_WALK_PENDING)
			f->walk = WALK_OFF;
		else
			f->walk = WALK_PENDING;
		f->word = (size_t)f->upto + 1;
		return 0;
	case WALK_PENDING:
		if ((int64_t)f->word <= f->last) {
			if (add_candidates(f, (int64_t)f->word++) < 0)
				f->walk = WALK_OFF;
			return 0;
		}
		cand_sort(f);
		f->walk = WALK_READY;
		return 1;
	case WALK_READY:
	case WALK_OFF:
		break;
	}
	return 1;
}

int
search_fts_gather(struct search_fts *f, const struct imap_step_budget *b)
{
	while (f->gathered < f->npf) {
		if (!imap_step_time_left(b))
			return 0;
		if (f->pf[f->gathered].done)
			f->gathered++;
		else
			gather_one(f, &f->pf[f->gathered]);
	}
	if (f->walk == WALK_COUNT && !mark_narrows(f, f->root))
		f->walk = WALK_OFF;
	while (!walk_move(f))
		if (!imap_step_time_left(b))
			return 0;
	if (f->walk == WALK_OFF) {
		free(f->cand);
		f->cand = NULL;
		f->ncand = f->capcand = 0;
	}
	return 1;
}

/* The candidate of UID uid, or NULL. */
static const struct candidate_msg *
cand_find(const struct search_fts *f, uint32_t uid)
{
	size_t	 lo = 0, hi = f->ncand, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (f->cand[mid].uid == uid)
			return &f->cand[mid];
		if (f->cand[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
search_fts_walks(const struct search_fts *f)
{
	return f->walk == WALK_READY;
}

void
search_fts_candidates(const struct search_fts *f, uint32_t after,
    uint32_t *uids, size_t max, size_t *n)
{
	size_t	 lo = 0, hi = f->ncand, mid;

	*n = 0;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (f->cand[mid].uid <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < f->ncand && *n < max; lo++)
		uids[(*n)++] = f->cand[lo].uid;
}

/* Whether a sorted array holds v. */
static int
ids_have(const int64_t *ids, size_t n, int64_t v)
{
	size_t	 lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ids[mid] == v)
			return 1;
		if (ids[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/*
 * The blob of message uid: from the candidates when only they are
 * tried, else from the batch of the mailbox's messages that holds it
 * (read when the batch read last is passed); 0 when unknown.
 */
static int64_t
blob_of(struct search_fts *f, uint32_t uid)
{
	const struct candidate_msg	*c;

	if (f->walk == WALK_READY)
		return (c = cand_find(f, uid)) != NULL ? c->blob : 0;
	for (;;) {
		while (f->ib < f->nb && f->uids[f->ib] < uid)
			f->ib++;
		if (f->ib < f->nb)
			return f->uids[f->ib] == uid ? f->blobs[f->ib] : 0;
		f->ib = 0;
		if (store_message_blobs(f->store, f->mailbox, uid - 1,
		    f->uids, f->blobs, BLOB_BATCH, &f->nb) != STORE_OK ||
		    f->nb == 0)
			return 0;
	}
}

int
search_fts_excludes(struct search_fts *f, const struct node *n, uint32_t uid,
    int64_t blob)
{
	const struct prefilter	*p = &f->pf[n->fts - 1];

	if (p->off || (blob <= 0 && (blob = blob_of(f, uid)) <= 0) ||
	    blob > f->upto || ids_have(f->skipped, f->nskipped, blob))
		return 0;
	return (p->bits[blob / 8] & 1u << (blob % 8)) == 0;
}

/* --- mailrepd index ------------------------------------------------------ */

/* `mailrepd index status`: how far the index is, and its size. */
static int
index_status(struct store *st)
{
	struct store_fts_state	 s;

	if (store_fts_status(st, &s) != STORE_OK) {
		fprintf(stderr, "mailrepd: index status: cannot read the "
		    "index\n");
		return 1;
	}
	printf("version: %u%s\n", s.version, s.version == EXTRACTOR_VERSION ?
	    "" : " (the server builds it anew)");
	printf("blobs: %lld\nindexed: %lld\npending: %lld\nskipped: %lld\n",
	    (long long)s.stored, (long long)(s.stored - s.pending -
	    s.skipped), (long long)s.pending, (long long)s.skipped);
	printf("bytes: %lld\norphaned: %lld\n", (long long)s.bytes,
	    (long long)s.orphaned);
	return 0;
}

/*
 * `mailrepd index rebuild`: empties the index (a running server sees
 * it and starts over too) and builds it here, a step a transaction.
 */
static int
index_rebuild(struct store *st)
{
	enum store_err	 err;

	if ((err = store_fts_begin(st)) == STORE_OK)
		err = store_fts_end(st, 0, 0, store_fts_reset(st,
		    EXTRACTOR_VERSION));
	if (err == STORE_OK)
		err = store_commit(st);
	while (err == STORE_OK && index_batch(st))
		err = store_commit(st);
	if (err == STORE_OK)
		err = store_commit(st);
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: index rebuild: %s\n",
		    store_strerror(err));
		return 1;
	}
	return index_status(st);
}

static const struct {
	const char	*verb;
	int		(*run)(struct store *);
} index_verbs[] = {
	{ "status", index_status },
	{ "rebuild", index_rebuild },
};

static int
index_run(struct store *st, char **words, int nwords,
    const struct cmd_option *opts)
{
	size_t	 i;

	(void)opts;
	for (i = 0; nwords == 1 && i < nitems(index_verbs); i++)
		if (strcmp(words[0], index_verbs[i].verb) == 0)
			return index_verbs[i].run(st);
	return EXIT_USAGE;
}

int
search_index_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	const struct admin_tool tool = {
		"usage: mailrepd index status --data DIR\n"
		"       mailrepd index rebuild --data DIR\n\n"
		"SEARCH's full-text index: how far it is, or build it anew "
		"(also while the\nserver runs, which keeps it behind "
		"delivery and builds it after an upgrade).\n\n",
		opts, 1, index_run
	};

	return admin_tool_main(&tool, argc, argv);
}
