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
	struct store_meta		 meta;
	struct store_blob_reader	*r = NULL;
	enum store_err			 err;
	size_t				 k;
	int				 over = 0;

	for (k = 0; k < STORE_FTS_NKINDS; k++)
		x->t[k].len = x->t[k].over = 0;
	if ((err = store_message_meta(st, b->guid, STORE_META_ALL, &meta)) ==
	    STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK)
		return store_fts_skip(st, b->id);
	if ((err = store_blob_open(st, b->guid, &r, NULL)) == STORE_OK &&
	    (extract_body(x, r, &meta) < 0 || extract_header(x, r,
	    &meta) < 0))
		err = STORE_IO;
	store_blob_close(r);
	if (err == STORE_OK)
		extract_fields(x, &meta);
	store_meta_free(&meta);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	for (k = 0; k < STORE_FTS_NKINDS; k++)
		over |= x->t[k].over || x->t[k].len > FTS_MAX_TEXT;
	if (over || err != STORE_OK)
		return store_fts_skip(st, b->id);
	for (k = 0; k < STORE_FTS_NKINDS && err == STORE_OK; k++) {
		if (x->t[k].len == 0)
			continue;
		text_sanitise(x->t[k].p, x->t[k].len);
		err = store_fts_add(st, b->id, (enum store_fts_kind)k,
		    x->t[k].p, x->t[k].len);
	}
	*indexed += err == STORE_OK;
	return err;
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
 * Indexes the blobs above the index's high-water mark, at most
 * FTS_STEP_BLOBS or FTS_STEP_USEC of them, in the transaction open or
 * a new one (first emptying an index by another extractor version).
 * Returns 1 when it indexed any.
 */
static int
index_batch(struct store *st)
{
	struct store_fts_blob	 blobs[FTS_STEP_BLOBS];
	struct store_fts_state	 state;
	struct extract		*x;
	enum store_err		 err;
	int64_t			 start, upto = 0, indexed = 0;
	size_t			 n = 0, i;

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
	if (err == STORE_OK)
		err = store_fts_pending(st, state.upto, blobs, FTS_STEP_BLOBS,
		    &n);
	start = log_clock_us();
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
	return err == STORE_OK && n > 0;
}

int64_t
search_index_step(struct store *st, int64_t now_ms)
{
	/* When the first of fewer than a batch was seen waiting. */
	static int64_t		 waiting;
	struct store_fts_blob	 blobs[FTS_STEP_BLOBS];
	struct store_fts_state	 state;
	size_t			 n = 0;
	int			 ok;

	/*
	 * Most iterations find nothing to do, without a transaction, and
	 * without a statement when no blob came since the last look (what
	 * waited then, fewer than a batch, still does).  On a full disk
	 * the index waits: its rows must not take the room that deletes
	 * need.
	 */
	ok = store_fts_enabled(st) && !store_room_tight(st);
	if (ok && !store_fts_due(st))
		n = waiting != 0;
	else if (ok && store_fts_state(st, &state) == STORE_OK) {
		if (state.version != EXTRACTOR_VERSION)
			n = FTS_STEP_BLOBS;	/* index_batch() starts anew */
		else if (store_fts_pending(st, state.upto, blobs,
		    FTS_STEP_BLOBS, &n) != STORE_OK)
			n = 0;
	}
	if (n == 0) {
		waiting = 0;
		return 0;
	}
	if (n < FTS_STEP_BLOBS) {
		if (waiting == 0)
			waiting = now_ms;
		if (now_ms - waiting < FTS_DELAY_MS)
			return waiting + FTS_DELAY_MS;
	}
	waiting = 0;
	return index_batch(st) ? now_ms : 0;
}

/* --- a SEARCH's prefilters ----------------------------------------------- */

/* The blobs that may hold one key's string: a bit per blob id. */
struct prefilter {
	struct node	*node;
	unsigned	 kinds;		/* 1 << store_fts_kind */
	uint8_t		*bits;		/* blob ids 0..upto */
	int64_t		 pos;		/* in the index */
	int		 done;
	int		 off;		/* unusable: every message is read */
};

struct search_fts {
	struct store		*store;
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
search_fts_new(struct store *st, struct search_prog *prog)
{
	struct store_fts_state	 state;
	struct search_fts	*f;
	struct node		*n;
	struct prefilter	*p;
	unsigned		 kinds;

	if (!store_fts_enabled(st) || store_fts_state(st, &state) !=
	    STORE_OK || state.version != EXTRACTOR_VERSION ||
	    state.upto == 0 || state.upto / 8 >= FTS_MAX_BITMAP ||
	    (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->store = st;
	f->generation = state.generation;
	f->upto = state.upto;
	for (n = prog->nodes; n != NULL && f->npf < IMAP_MAX_SEARCH_FTS;
	    n = n->all) {
		if ((kinds = node_kinds(n)) == 0 ||
		    !string_indexable(n->str, n->len))
			continue;
		p = &f->pf[f->npf];
		p->node = n;
		p->kinds = kinds;
		n->fts = ++f->npf;
		if ((p->bits = calloc((size_t)(f->upto / 8 + 1), 1)) == NULL)
			p->off = p->done = 1;
	}
	if (f->npf == 0 || read_skipped(f) < 0) {
		search_fts_free(f);
		return NULL;
	}
	return f;
}

void
search_fts_free(struct search_fts *f)
{
	size_t	 i;

	if (f == NULL)
		return;
	for (i = 0; i < f->npf; i++) {
		f->pf[i].node->fts = 0;
		free(f->pf[i].bits);
	}
	free(f->skipped);
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

	err = store_fts_match(f->store, f->generation, p->kinds, p->node->str,
	    p->node->len, &p->pos, f->ids, nitems(f->ids), &n, &p->done);
	if (err == STORE_NOTFOUND)
		for (i = 0; i < f->npf; i++)
			f->pf[i].off = f->pf[i].done = 1;
	else if (err != STORE_OK)
		p->off = p->done = 1;
	for (i = 0; err == STORE_OK && i < n && f->ids[i] <= f->upto; i++)
		p->bits[f->ids[i] / 8] |= (uint8_t)(1u << (f->ids[i] % 8));
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
	return 1;
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
 * The blob of message uid, from the batch of the mailbox's messages
 * that holds it (read when the batch read last is passed), or 0.
 */
static int64_t
blob_of(struct search_fts *f, int64_t mailbox_id, uint32_t uid)
{
	for (;;) {
		while (f->ib < f->nb && f->uids[f->ib] < uid)
			f->ib++;
		if (f->ib < f->nb)
			return f->uids[f->ib] == uid ? f->blobs[f->ib] : 0;
		f->ib = 0;
		if (store_message_blobs(f->store, mailbox_id, uid - 1,
		    f->uids, f->blobs, BLOB_BATCH, &f->nb) != STORE_OK ||
		    f->nb == 0)
			return 0;
	}
}

int
search_fts_excludes(struct search_fts *f, int64_t mailbox_id,
    const struct node *n, uint32_t uid)
{
	const struct prefilter	*p = &f->pf[n->fts - 1];
	int64_t			 blob;

	if (p->off || (blob = blob_of(f, mailbox_id, uid)) <= 0 ||
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
	printf("bytes: %lld\n", (long long)s.bytes);
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
