/*
 * imap_search.c — SEARCH and UID SEARCH (RFC 3501 6.4.4), with the
 * MODSEQ search key of CONDSTORE (RFC 7162 3.1.5), OLDER and YOUNGER of
 * WITHIN (RFC 5032), and RETURN (...) of ESEARCH (RFC 4731), whose
 * response imap_esearch.c writes.
 *
 * The arguments are compiled once (imap_search_compile.c) into a tree of
 * small nodes: an AND or an OR of children, or one test.  Each test knows
 * what must be read before it can answer, cheapest first: the view
 * (sequence number, UID, \Recent), the message row (flags, keywords,
 * size, internal date, MODSEQ), the meta stored at delivery (header
 * fields, Date:), and last the message bytes (BODY, TEXT).  A message is
 * tried against the tree in three-valued logic with what has been read
 * so far; a test that needs more answers "unknown", and only while the
 * whole tree is unknown is the next thing read.  So "UID SEARCH UID
 * 1000:*" reads no row at all and "SUBJECT x SEEN" reads the meta of
 * seen messages only.
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
 *
 * Before the first message, each BODY, TEXT or header key whose string
 * the full-text index can look for asks it which blobs may hold the
 * string (imap_search_index.c, in steps too); a message whose blob the
 * index holds and does not name then answers NO to that key from the
 * view alone, and reads nothing for it.  Every other message is tried
 * as above, so the index changes what is read, never what is found.
 * When every match must pass such a key (an AND with one, an OR of
 * them, no NOT above), the messages tried are the index's candidates
 * alone, in UID order, and the others are not even looked at: a search
 * costs its candidates, not the mailbox.
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
#include "imap_context.h"
#include "imap_esearch.h"
#include "imap_search.h"
#include "imap_search_index.h"
#include "imap_search_prog.h"
#include "imap_session.h"
#include "mime.h"
#include "proto.h"
#include "store.h"

#define SCAN_CHUNK	IO_CHUNK	/* message bytes read at once */
#define REPLY_MAX	160		/* bytes of a compile error's reply */

#define IS_WSP(c)	((c) == ' ' || (c) == '\t')

enum tri {
	T_NO,
	T_YES,
	T_UNKNOWN,	/* the test needs more than has been read */
};

/*
 * What has been read of the message being tried, and what its N_TEXT
 * keys answered (T_UNKNOWN: not scanned yet), kept across steps.
 */
struct candidate {
	uint32_t			 seq, uid;
	uint32_t			 flags;	/* stored | SEARCH_RECENT */
	uint32_t			 known;	/* bits of flags known
						   before the row is read */
	struct store_message		 row;
	struct store_meta		 meta;
	struct store_blob_reader	*blob;
	enum need			 have;	/* read so far */
	int				 meta_read;	/* the meta is read */
	int64_t				 blob_id;	/* read with it, or 0 */
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
	struct mime_decoder	 d;
	size_t			 have, folded;	/* window_search()'s */
};

/* Which messages of the view a SEARCH tries. */
enum walk {
	WALK_ALL,
	WALK_UNSEEN,	/* the unseen ones (store_unseen_uids()) */
	WALK_INDEX,	/* the index's candidates (search_fts_candidates()) */
};

/* A running SEARCH, from its compiled keys to its last step. */
struct search {
	struct search_prog	 prog;
	struct search_fts	*fts;		/* the index's prefilters */
	int			 gathered;	/* read from the index */
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
	int			 cheap;		/* the last tried read nothing */
	uint64_t		 last_modseq;	/* of the last match */
	struct imap_esearch	 es;		/* SEARCH RETURN (...) */
	unsigned		 ret;		/* the RETURN options */
	struct imap_uidset	*result;	/* RETURN (UPDATE): the UIDs */
	int			 kept;		/* an updating search keeps
						   it: freed with that */
	int			 line;		/* a response line is open */
	struct imap_seqset	*save;		/* RETURN (SAVE): the UIDs */
	size_t			 save_cap;
	uint32_t		 save_last;	/* view index of the last */
	uint32_t		*hits;		/* SORT, THREAD: view indexes */
	size_t			 nhits, caphits;
	enum store_err		 err;		/* what stopped a test */
	/*
	 * When every match must be a message the index names, or must be
	 * unseen, the messages tried are those alone, their UIDs read a
	 * batch at a time.  An unseen one tried in the read snapshot its
	 * batch was read in is known to be unseen without its row: SEARCH
	 * UNSEEN reads the partial index message_unseen and nothing else.
	 */
	enum walk		 walk;
	uint32_t		 cand[IMAP_STEP_MESSAGES];	/* UIDs */
	size_t			 ncand, icand;	/* read, tried */
	int			 cand_end;	/* no more to read */
	int			 cand_now;	/* read in this step's snapshot */
	/* the row's keywords: the store's copy lasts one call */
	char			 keywords[STORE_MAX_KEYWORDS];
	unsigned char		*win;		/* decoded, folded bytes */
	unsigned char		*raw;		/* bytes as stored */
};

static enum tri		 eval(struct search *, const struct node *,
			    struct candidate *, enum need);

/*
 * Gives each sequence set its meaning in the view: "*" is the last
 * sequence number, or for UIDs the highest UID (0 in an empty mailbox,
 * where nothing can match anyway); "$" the UIDs saved.  Returns 0, or
 * -1 without memory.
 */
static int
prog_resolve(struct search_prog *prog, const struct imap_view *v)
{
	struct node	*n;
	uint32_t	 maxuid = imap_view_last_uid(v);

	for (n = prog->nodes; n != NULL; n = n->all) {
		if (n->kind != N_SET)
			continue;
		if (n->saved && imap_view_saved(v, 1, &n->set) < 0)
			return -1;
		if (!n->saved)
			imap_seqset_resolve(&n->set, n->uid ? maxuid :
			    v->count);
	}
	return 0;
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

	if (meta->sent_date != -1 && imap_header_next(meta->header,
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
	case F_SAVED_DAY:
		v = utc_day(m->row.savedate);
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

size_t
search_address_strip(const char *v, size_t vlen, char *out)
{
	size_t	 i, k = 0;
	int	 level = 0;

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
	return k;
}

/*
 * Whether an address field value holds the node's string once its
 * comments are gone and so are the blanks beside '@' and '.'
 * (search_address_strip()).
 */
static int
address_has(const char *v, size_t vlen, const struct node *n)
{
	char	*out;
	size_t	 k;
	int	 found;

	if (!search_address_strippable(v, vlen))
		return 0;
	if ((out = malloc(vlen + 1)) == NULL)
		return 0;
	k = search_address_strip(v, vlen, out);
	found = memmem(out, k, n->str, n->len) != NULL;
	free(out);
	return found;
}

int
search_address_strippable(const char *v, size_t vlen)
{
	return memchr(v, '(', vlen) != NULL || memchr(v, '@', vlen) != NULL;
}

/* Whether id is the EMAILID of the message with guid (imap_fetch.c). */
static int
is_emailid(const char *id, const uint8_t *guid)
{
	char	 hex[2 * GUID_LEN + 1];

	crypto_hex(guid, GUID_LEN, hex);
	return id[0] == 'M' && strcmp(id + 1, hex) == 0;
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
	while (imap_header_next(meta->header, meta->header_len, &pos, n->name,
	    &v, &vlen))
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

	hold = !last && *have > *folded && search_fold_lead(w[*have - 1]);
	upto = *have - hold;
	search_fold(w + *folded, upto - *folded);
	if (memmem(w, upto, n->str, n->len) != NULL)
		return 1;
	keep = upto < n->len - 1 ? upto : n->len - 1;
	memmove(w, w + upto - keep, keep + hold);
	*have = keep + hold;
	*folded = keep;
	return 0;
}

int
imap_part_cte(struct store_blob_reader *blob, const struct mime_part *p,
    char *buf, size_t size, enum mime_cte *cte)
{
	uint64_t	 len = p->body_start - p->header_start;
	const char	*v;
	size_t		 pos = 0, vlen;
	ssize_t		 r;

	if (len > size)
		len = size;
	if ((r = store_blob_read(blob, p->header_start, buf, (size_t)len)) <
	    0 || (uint64_t)r != len)
		return -1;
	len = search_header_normalise(buf, (size_t)len);
	*cte = MIME_CTE_IDENTITY;
	if (imap_header_next(buf, (size_t)len, &pos,
	    "content-transfer-encoding", &v, &vlen))
		*cte = mime_cte_parse(v, vlen);
	return 0;
}

/* Starts reading [off, end) decoded as cte. */
static void
scan_set(struct scan *sc, uint64_t off, uint64_t end, enum mime_cte cte)
{
	sc->in_range = 1;
	sc->off = off;
	sc->end = end;
	memset(&sc->d, 0, sizeof(sc->d));
	sc->d.cte = cte;
	sc->have = sc->folded = 0;
}

int
search_text_range(struct store_blob_reader *blob, const struct store_meta *meta,
    int whole, size_t *part, char *buf, size_t size, struct search_range *r)
{
	const struct mime_part	*p;
	/* parts[1] repeats parts[0] when the message is a single part. */
	size_t			 first = meta->nparts > 1, i;

	if (*part == 0) {
		*part = 1;
		if (whole && meta->nparts > 0) {
			r->off = 0;
			r->end = meta->parts[0].body_start;
			r->cte = MIME_CTE_IDENTITY;
			return 1;
		}
	}
	/* The parts before parts[first + part - 1] are done. */
	for (i = first + *part - 1; i < meta->nparts; i++) {
		p = &meta->parts[i];
		(*part)++;
		if (p->is_multipart)
			continue;
		if (p->is_message) {
			r->off = p->body_start;
			r->end = p->inner_body_start;
			r->cte = MIME_CTE_IDENTITY;
		} else if (imap_part_cte(blob, p, buf, size, &r->cte) < 0)
			return -1;
		else {
			/* What it cannot decode is searched as it is. */
			r->off = p->body_start;
			r->end = p->body_end;
		}
		return 1;
	}
	return 0;
}

/*
 * Sets the scan on its next range (search_text_range()).  Returns 1
 * when a range is set, 0 when none is left, -1 on a store error
 * (se->err).
 */
static int
scan_next_range(struct search *se, struct candidate *m)
{
	struct scan		*sc = &se->scan;
	struct search_range	 r;
	int			 more;

	if ((more = search_text_range(m->blob, &m->meta, sc->node->whole,
	    &sc->part, (char *)se->raw, SCAN_CHUNK, &r)) < 0)
		se->err = STORE_IO;
	else if (more > 0)
		scan_set(sc, r.off, r.end, r.cte);
	return more;
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
			in = sc->d.cte == MIME_CTE_IDENTITY ? se->win +
			    sc->have : se->raw;
			if ((r = store_blob_read(m->blob, sc->off, in,
			    want)) <= 0) {
				se->err = STORE_IO;
				return -1;
			}
			sc->off += (uint64_t)r;
			sc->have += mime_decode(&sc->d, in, (size_t)r,
			    se->win + sc->have);
			if (sc->off == sc->end)
				sc->have += mime_decode_end(&sc->d,
				    se->win + sc->have);
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
	if (m->blob == NULL && (err = m->blob_id != 0 ?
	    store_blob_open_id(se->store, m->blob_id, m->row.size, &m->blob) :
	    store_blob_open(se->store, m->row.guid, &m->blob, NULL)) !=
	    STORE_OK) {
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
	if (se->paused)
		return T_UNKNOWN;
	if (n->fts != 0 && search_fts_excludes(se->fts, n, m->uid, m->blob_id))
		return tri_of(n->neg);
	if (n->kind != N_AND && n->kind != N_OR && n->need > have &&
	    (n->kind != N_FLAGS || (n->mask & ~m->known) != 0))
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
	case N_EMAILID:
		r = tri_of(is_emailid(n->str, m->row.guid));
		break;
	}
	if (n->neg && r != T_UNKNOWN)
		r = tri_of(r == T_NO);
	return r;
}

/* --- running ------------------------------------------------------------- */

/* What a search reads of the meta: never the ENVELOPE and its kin. */
#define SEARCH_META	(STORE_META_SECTIONS | STORE_META_SEARCH)

/* Makes the candidate's meta searchable in place: unfolded, folded. */
static void
meta_normalise(struct store_meta *meta)
{
	if (meta->header != NULL)
		meta->header_len = search_header_normalise(meta->header,
		    meta->header_len);
	if (meta->from != NULL)
		search_fold((unsigned char *)meta->from, strlen(meta->from));
	if (meta->to != NULL)
		search_fold((unsigned char *)meta->to, strlen(meta->to));
	if (meta->subject != NULL)
		search_fold((unsigned char *)meta->subject,
		    strlen(meta->subject));
}

/*
 * Reads what `need` adds to the candidate: its row, or its meta (made
 * searchable in place).  The index's candidates are tried because a
 * header or text key may match them, which reads the meta: their row
 * and meta are read in one look-up.  The message bytes are opened by
 * the test that reads them.
 */
static enum store_err
candidate_read(struct search *se, struct candidate *m, enum need need)
{
	enum store_err		 err;

	switch (need) {
	case NEED_VIEW:
	case NEED_BYTES:
		break;
	case NEED_ROW:
		if (se->walk == WALK_INDEX) {
			err = store_message_get_meta(se->store, se->mailbox,
			    m->uid, SEARCH_META, &m->row, &m->meta, &m->blob_id);
			m->meta_read = err == STORE_OK;
		} else
			err = store_message_get(se->store, se->mailbox, m->uid,
			    &m->row);
		if (err != STORE_OK)
			return err;
		m->flags |= m->row.flags;
		snprintf(se->keywords, sizeof(se->keywords), "%s",
		    m->row.keywords != NULL ? m->row.keywords : "");
		if (m->meta_read)
			meta_normalise(&m->meta);
		break;
	case NEED_META:
		if (m->meta_read)
			break;
		if ((err = store_message_meta(se->store, m->row.guid,
		    SEARCH_META, &m->meta)) != STORE_OK)
			return err;
		m->meta_read = 1;
		meta_normalise(&m->meta);
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

/* Begins trying message uid, of which `have` is known already. */
static void
candidate_begin(struct search *se, uint32_t uid, enum need have)
{
	struct candidate	*m = &se->cur;
	size_t			 k;

	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->have = have;
	for (k = 0; k < IMAP_MAX_SEARCH_TEXT; k++)
		m->text[k] = T_UNKNOWN;
	se->trying = 1;
}

/*
 * Tries the candidate begun (by an earlier step, or now), reading no
 * more than the keys need.  Returns 1 when it matches, 0 when not (or
 * it is gone), 2 when the step's time ran out in the middle of it (the
 * next step goes on), -1 on a store error (in se->err).
 */
static int
search_cur(struct search *se)
{
	struct candidate	*m = &se->cur;
	enum tri		 r;
	enum store_err		 err = STORE_OK;

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
	se->cheap = m->have == NEED_VIEW;
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

/* Tries message i of the view (search_cur()). */
static int
search_one(struct search *se, const struct imap_view *v, uint32_t i)
{
	uint32_t	 uid = imap_view_uid(v, i + 1);

	if (imap_view_is_gone(v, uid))
		return 0;
	if (!se->trying) {
		candidate_begin(se, uid, NEED_VIEW);
		se->cur.seq = i + 1;
		se->cur.flags = imap_view_is_recent(v, uid) ? SEARCH_RECENT : 0;
		se->cur.known = SEARCH_RECENT;
		if (se->walk == WALK_UNSEEN && se->cand_now)
			se->cur.known |= FLAG_SEEN;	/* clear: read so */
	}
	return search_cur(se);
}

static void
search_free(void *arg)
{
	struct search	*se = arg;

	candidate_end(se);
	search_fts_free(se->fts);
	search_prog_free(&se->prog);
	if (se->save != NULL)
		imap_seqset_free(se->save);
	free(se->save);
	if (se->result != NULL)
		imap_uidset_free(se->result);
	free(se->result);
	free(se->hits);
	free(se->win);
	free(se->raw);
	free(se);
}

/*
 * Keeps the match at view index `index` for RETURN (SAVE).  Matches next
 * to each other in the view make one range of UIDs (a UID between two
 * of them names no message: it was expunged, and UIDs are never given
 * again).  Returns 0, or -1 without memory.
 */
static int
save_match(struct search *se, const struct imap_view *v, uint32_t index)
{
	struct imap_seqset	*set = se->save;
	struct imap_range	*r;
	uint32_t		 uid = imap_view_uid(v, index + 1);

	if (set->n > 0 && se->save_last + 1 == index)
		set->r[set->n - 1].hi = uid;
	else {
		if (set->n == se->save_cap) {
			r = reallocarray(set->r, se->save_cap * 2,
			    sizeof(*r));
			if (r == NULL)
				return -1;
			set->r = r;
			se->save_cap *= 2;
		}
		set->r[set->n].lo = set->r[set->n].hi = uid;
		set->n++;
	}
	se->save_last = index;
	return 0;
}

/*
 * RETURN (SAVE) is done: "$" becomes what was found, or only the MIN
 * and MAX messages when those were all that was asked (RFC 5182 2.4).
 */
static void
save_done(struct session *s, struct search *se)
{
	struct imap_seqset	*set = se->save;
	uint32_t		 min, max;

	if ((se->ret & (ESEARCH_ALL | ESEARCH_COUNT)) == 0 &&
	    (se->ret & (ESEARCH_MIN | ESEARCH_MAX)) != 0 && set->n > 0) {
		min = set->r[0].lo;
		max = set->r[set->n - 1].hi;
		set->n = 0;
		if (se->ret & ESEARCH_MIN) {
			set->r[set->n].lo = set->r[set->n].hi = min;
			set->n++;
		}
		if ((se->ret & ESEARCH_MAX) && (set->n == 0 || max != min)) {
			set->r[set->n].lo = set->r[set->n].hi = max;
			set->n++;
		}
	}
	imap_view_save(imap_of(s)->view, set);
	se->save = NULL;
}

/*
 * The search failed: the line begun is ended, "$" is emptied when it
 * was to be saved (RFC 5182 2.1), and the reply says why.
 */
static void
search_failed(struct session *s, struct search *se)
{
	if (se->line)
		session_printf(s, "\r\n");
	if (se->ret & ESEARCH_SAVE)
		imap_view_save(imap_of(s)->view, NULL);
	imap_reply_store_error(s, se->err, IMAP_MISSING_MESSAGE, "SEARCH");
}

/*
 * Whether a message that passes the test n is certainly unseen: a
 * \Seen-clear flag test, an AND with such a child, or an OR of two.
 */
static int
only_unseen(const struct node *n)
{
	const struct node	*c;

	switch (n->kind) {
	case N_FLAGS:
		if (n->neg)
			return n->mask == FLAG_SEEN && n->want == FLAG_SEEN;
		return (n->mask & FLAG_SEEN) && !(n->want & FLAG_SEEN);
	case N_AND:
		if (n->neg)
			return 0;
		for (c = n->child; c != NULL; c = c->next)
			if (only_unseen(c))
				return 1;
		return 0;
	case N_OR:
		return !n->neg && only_unseen(n->child) &&
		    only_unseen(n->child->next);
	default:
		return 0;
	}
}

/*
 * Reads the next batch of the UIDs to try after `after` into se->cand.
 * Returns 0, or -1 on a store error (in se->err).
 */
static int
read_candidates(struct search *se, uint32_t after)
{
	se->icand = 0;
	if (se->walk == WALK_INDEX)
		search_fts_candidates(se->fts, after, se->cand,
		    IMAP_STEP_MESSAGES, &se->ncand);
	else if ((se->err = store_unseen_uids(se->store, se->mailbox, after,
	    se->cand, IMAP_STEP_MESSAGES, &se->ncand)) != STORE_OK)
		return -1;
	se->cand_end = se->ncand < IMAP_STEP_MESSAGES;
	se->cand_now = 1;
	return 0;
}

/*
 * Moves se->next to the view index of the next message to try that
 * was not tried yet (to the view's end when none is left), reading the
 * next batch of their UIDs when one is used up.  Returns 0, or -1 on a
 * store error (in se->err).  A message the view does not hold
 * (delivered since, expunged and announced) is passed over, and those
 * above its last UID are not read on; one unseen only since its batch
 * was read is not tried.
 */
static int
next_candidate(struct search *se, const struct imap_view *v)
{
	uint32_t	 seq;

	for (;;) {
		if (se->icand == se->ncand) {
			if (se->cand_end) {
				se->next = v->count;
				return 0;
			}
			if (read_candidates(se, se->ncand > 0 ?
			    se->cand[se->ncand - 1] : 0) < 0)
				return -1;
			continue;
		}
		if (se->cand[se->icand] > imap_view_last_uid(v)) {
			se->cand_end = 1;	/* the rest came since */
			se->ncand = se->icand;
			continue;
		}
		if ((seq = imap_view_seq(v, se->cand[se->icand])) != 0) {
			se->next = seq - 1;
			return 0;
		}
		se->icand++;
	}
}

/*
 * Tries messages until the mailbox is done (1) or the step's budget is
 * used up, maybe in the middle of a message (0), calling found() for
 * each match with its index in the view.  -1: a store error (se->err).
 * Once the index has said which messages may match, only those are
 * tried when it can tell (search_fts_candidates()).
 */
static int
search_run(struct session *s, struct search *se,
    int (*found)(struct session *, struct search *, uint32_t))
{
	const struct imap_view	*v = imap_of(s)->view;
	int			 r;

	imap_step_begin(&se->budget);
	se->cand_now = 0;	/* a batch read before: in another snapshot */
	if (se->fts != NULL && !se->gathered) {
		if (!search_fts_gather(se->fts, &se->budget))
			return 0;
		se->gathered = 1;
		if (search_fts_walks(se->fts))
			se->walk = WALK_INDEX;
	}
	for (;;) {
		if (se->walk != WALK_ALL && !se->trying &&
		    next_candidate(se, v) < 0)
			return -1;
		if (se->next >= v->count)
			return 1;
		if (!imap_step_more(s, &se->budget))
			return 0;
		if ((r = search_one(se, v, se->next)) == 2)
			return 0;
		/* What the view alone answered (the index) costs nothing. */
		se->budget.done += !se->cheap;
		if (r < 0 || (r > 0 && found(s, se, se->next) < 0))
			return -1;
		se->next++;
		se->icand += se->walk != WALK_ALL;
	}
}

/*
 * search_run() inside one read snapshot, so that the look-ups of a
 * step share one lock of the store (as FETCH's steps do).
 */
static int
search_run_step(struct session *s, struct search *se,
    int (*found)(struct session *, struct search *, uint32_t))
{
	int	 r;

	store_read_begin(se->store);
	r = search_run(s, se, found);
	store_read_end(se->store);
	return r;
}

/*
 * A match of SEARCH: kept for "$", and written onto the "* SEARCH" line
 * or into the ESEARCH result.  Returns 0, or -1 without memory.
 */
static int
search_write_match(struct session *s, struct search *se, uint32_t i)
{
	const struct imap_view	*v = imap_of(s)->view;
	uint32_t		 n = se->uid ? imap_view_uid(v, i + 1) : i + 1;

	if ((se->save != NULL && save_match(se, v, i) < 0) ||
	    (se->result != NULL && imap_uidset_add(se->result,
	    imap_view_uid(v, i + 1)) < 0)) {
		se->err = STORE_IO;
		return -1;
	}
	if (se->line && se->ret != 0)
		imap_esearch_add(s, &se->es, n, se->last_modseq);
	else if (se->line)
		session_printf(s, " %u", n);
	return 0;
}

int
imap_search_pin_sets(struct search *se, const struct imap_view *v)
{
	struct node	*n;

	free(se->hits);		/* SORT's matches: taken already */
	se->hits = NULL;
	se->nhits = se->caphits = 0;

	for (n = se->prog.nodes; n != NULL; n = n->all)
		if (n->kind == N_SET && !n->uid && !n->saved) {
			if (imap_view_seqs_to_uids(v, &n->set) < 0)
				return -1;
			n->uid = 1;
		}
	return 0;
}

/*
 * RETURN (UPDATE) is done: the search and its result become an updating
 * search of the view (imap_context.c).  Without memory the client hears
 * NOUPDATE instead.
 */
static void
search_keep(struct session *s, struct search *se)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_uidset	*result = se->result;

	se->result = NULL;
	if (imap_search_pin_sets(se, ims->view) == 0 &&
	    imap_context_add(ims->view, ims->tag, se->uid, se, result, NULL,
	    NULL, 0) == 0)
		se->kept = 1;
	else
		imap_say_noupdate(s, "Out of memory");
	imap_uidset_free(result);
	free(result);
}

/*
 * One step of SEARCH: tries messages until the mailbox is done or the
 * step's budget is used up (in the middle of a message, maybe), writing
 * each match onto the "* SEARCH" line (or the ESEARCH one, or keeping it
 * for "$").  Returns 1 once the reply is recorded, else 0.
 */
static int
search_step(struct session *s, void *arg)
{
	struct search	*se = arg;
	int		 r;

	if ((r = search_run_step(s, se, search_write_match)) == 0)
		return 0;
	if (r < 0) {
		search_failed(s, se);
		return 1;
	}
	if (se->save != NULL)
		save_done(s, se);
	if (se->result != NULL)
		search_keep(s, se);
	if (se->line && se->ret != 0)
		imap_esearch_end(s, &se->es, se->prog.modseq);
	else if (se->line) {
		if (se->prog.modseq && se->found > 0)
			session_printf(s, " (MODSEQ %llu)",
			    (unsigned long long)se->highest);
		session_printf(s, "\r\n");
	}
	imap_reply(s, "OK %sSEARCH completed", se->uid ? "UID " : "");
	return 1;
}

/*
 * Gets the search ready to run: its program resolved in the view, and
 * for RETURN (SAVE) the set that will become "$".  Returns 0, or -1
 * without memory.
 */
static int
search_ready(struct search *se, const struct imap_view *v)
{
	if (prog_resolve(&se->prog, v) < 0)
		return -1;
	if ((se->ret & ESEARCH_SAVE) == 0)
		return 0;
	se->save_cap = 16;
	if ((se->save = calloc(1, sizeof(*se->save))) == NULL ||
	    (se->save->r = calloc(se->save_cap, sizeof(*se->save->r))) ==
	    NULL)
		return -1;
	return 0;
}

/* The scan's buffers, when a key reads text.  Returns 0, or -1. */
static int
search_buffers(struct search *se)
{
	if (se->prog.maxlen == 0)
		return 0;
	if ((se->win = malloc(SCAN_CHUNK + se->prog.maxlen +
	    MIME_DECODE_SLACK)) == NULL ||
	    (se->raw = malloc(SCAN_CHUNK)) == NULL)
		return -1;
	return 0;
}

/*
 * Compiles the search keys args (an optional CHARSET first, which a
 * UTF8=ACCEPT client may no longer send: RFC 6855 3; no NEW, OLD or
 * RECENT from an IMAP4rev2 client) for the selected mailbox, with
 * RETURN options ret.  Returns the search, or NULL with the reply made.
 */
static struct search *
search_new(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid, unsigned ret)
{
	struct imap_session	*ims = imap_of(s);
	struct search		*se;
	char			 err[REPLY_MAX];

	if (ims->utf8 && nargs > 0 && args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[0].str, "CHARSET") == 0) {
		imap_reply(s, "BAD No CHARSET after ENABLE UTF8=ACCEPT");
		return NULL;
	}
	if ((se = calloc(1, sizeof(*se))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return NULL;
	}
	if (search_compile(&se->prog, args, nargs, err, sizeof(err)) < 0) {
		imap_reply(s, "%s", err);
		free(se);
		return NULL;
	}
	if (se->prog.recent && ims->rev2) {
		imap_reply(s, "BAD NEW, OLD and RECENT are no search keys of "
		    "IMAP4rev2 (RFC 9051 has no \\Recent)");
		search_prog_free(&se->prog);
		free(se);
		return NULL;
	}
	se->ret = ret;
	if (search_buffers(se) < 0 || search_ready(se, ims->view) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		search_free(se);
		return NULL;
	}
	se->store = s->srv->store;
	se->mailbox = ims->view->mb.id;
	se->fts = search_fts_new(se->store, &se->prog, se->mailbox,
	    ims->view->count);
	se->walk = only_unseen(se->prog.root) ? WALK_UNSEEN : WALK_ALL;
	se->uid = uid;
	if (se->prog.modseq)
		imap_condstore_enable(s);
	return se;
}

/* The steps are over: the search goes, unless an updating one kept it. */
static void
search_step_free(void *arg)
{
	struct search	*se = arg;

	if (!se->kept)
		search_free(se);
}

/*
 * Parses "RETURN (options)" (ESEARCH, RFC 4731; CONTEXT, RFC 5267) if
 * args begin with it, into *o, and moves *args and *nargs past it.
 * Returns 0, or -1 with the BAD reply made.
 */
int
imap_search_return(struct session *s, const struct imap_arg **args,
    size_t *nargs, struct esearch_opts *o)
{
	const char	*why;
	int		 ok;

	memset(o, 0, sizeof(*o));
	if (*nargs == 0 || (*args)[0].type != IMAP_ARG_ATOM ||
	    strcasecmp((*args)[0].str, "RETURN") != 0)
		return 0;
	if (*nargs < 2 || (*args)[1].type != IMAP_ARG_LIST) {
		imap_reply(s, "BAD RETURN wants a list of options");
		return -1;
	}
	if (imap_esearch_parse(&(*args)[1], o, &why) < 0) {
		imap_reply(s, "BAD %s", why);
		return -1;
	}
	/* a tag in use by an updating search is not used again (5267 4.3) */
	if ((o->ret & ESEARCH_UPDATE) && (ok = imap_context_check(
	    imap_of(s)->view, imap_of(s)->tag)) <= 0) {
		if (ok == 0) {
			imap_reply(s, "BAD The tag names an updating search "
			    "already");
			return -1;
		}
		imap_say_noupdate(s, "Too many updating searches");
		o->ret &= ~ESEARCH_UPDATE;
		o->ret |= ESEARCH_NOUPDATE;
	}
	*args += 2;
	*nargs -= 2;
	return 0;
}

void
imap_cmd_search(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct search		*se;
	struct esearch_opts	 o;

	if (imap_search_return(s, &args, &nargs, &o) < 0)
		return;
	/* IMAP4rev2 answers ESEARCH: no RETURN is RETURN (ALL) (RFC 9051
	   6.4.4) */
	if (o.ret == 0 && imap_of(s)->rev2)
		o.ret = ESEARCH_ALL;
	/* A SEARCH meant to save that fails leaves "$" empty. */
	if (o.ret & ESEARCH_SAVE)
		imap_view_save(imap_of(s)->view, NULL);
	if ((se = search_new(s, args, nargs, uid, o.ret)) == NULL)
		return;
	if ((o.ret & ESEARCH_UPDATE) &&
	    (se->result = calloc(1, sizeof(*se->result))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		search_free(se);
		return;
	}
	se->line = (o.ret & ESEARCH_OUTPUT) != 0 || o.ret == 0;
	if (se->line && o.ret != 0)
		imap_esearch_begin(s, &se->es, &o, uid);
	else if (se->line)
		session_printf(s, "* SEARCH");
	/* A small mailbox is done at once, without waiting for the loop. */
	if (search_step(s, se))
		search_step_free(se);
	else
		imap_start_steps(s, search_step, search_step_free, se);
}

/* --- the matches kept, for SORT and THREAD ------------------------------- */

struct search *
imap_search_matches_new(struct session *s, const struct imap_arg *args,
    size_t nargs)
{
	return search_new(s, args, nargs, 0, 0);
}

/* Keeps a match's view index. */
static int
search_keep_match(struct session *s, struct search *se, uint32_t i)
{
	uint32_t	*hits;
	size_t		 cap;

	(void)s;
	if (se->nhits == se->caphits) {
		cap = se->caphits > 0 ? se->caphits * 2 : 256;
		if ((hits = reallocarray(se->hits, cap, sizeof(*hits))) ==
		    NULL) {
			se->err = STORE_IO;
			return -1;
		}
		se->hits = hits;
		se->caphits = cap;
	}
	se->hits[se->nhits++] = i;
	return 0;
}

int
imap_search_matches(struct session *s, struct search *se,
    const uint32_t **hits, size_t *n)
{
	int	 r;

	if ((r = search_run_step(s, se, search_keep_match)) == 1) {
		*hits = se->hits;
		*n = se->nhits;
	} else if (r < 0)
		imap_reply(s, "NO [UNAVAILABLE] SEARCH failed: %s",
		    store_strerror(se->err));
	return r;
}

void
imap_search_matches_free(struct search *se)
{
	search_free(se);
}

int
imap_search_try(struct session *s, struct search *se,
    const struct imap_step_budget *b, uint32_t uid)
{
	const struct imap_view	*v = imap_of(s)->view;
	uint32_t		 seq = imap_view_seq(v, uid);

	/* a message begun and left for another: start again on this one */
	if (se->trying && se->cur.uid != uid)
		candidate_end(se);
	if (seq == 0)
		return -1;
	se->budget = *b;
	return search_one(se, v, seq - 1);
}

/* --- messages of any mailbox, named by their rows (the web API) ---------- */

/*
 * The keys a search of rows cannot answer: sequence sets, "$", \Recent,
 * keywords, MODSEQ and save dates have no meaning or are not in the
 * rows given.  NULL when there is none.
 */
static const char *
rows_refusal(const struct search_prog *prog)
{
	const struct node	*n;

	if (prog->recent || prog->modseq)
		return "NEW, OLD, RECENT and MODSEQ need a mailbox";
	for (n = prog->nodes; n != NULL; n = n->all)
		if (n->kind == N_SET || n->kind == N_KEYWORD ||
		    (n->kind == N_CMP && n->field == F_SAVED_DAY))
			return "sequence sets, keywords and save dates need "
			    "a mailbox";
	return NULL;
}

struct search *
search_rows_new(struct store *st, const struct imap_arg *args, size_t nargs,
    char *err, size_t errlen)
{
	struct search	*se;
	const char	*why;

	if ((se = calloc(1, sizeof(*se))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (search_compile(&se->prog, args, nargs, err, errlen) < 0) {
		free(se);
		return NULL;
	}
	if ((why = rows_refusal(&se->prog)) != NULL ||
	    search_buffers(se) < 0) {
		snprintf(err, errlen, "%s", why != NULL ? why :
		    "out of memory");
		search_free(se);
		return NULL;
	}
	se->store = st;
	se->fts = search_fts_new(st, &se->prog, 0, 0);
	return se;
}

void
search_rows_step(struct search *se)
{
	imap_step_begin(&se->budget);
}

int
search_rows_time_left(const struct search *se)
{
	return imap_step_time_left(&se->budget);
}

int
search_rows_ready(struct search *se)
{
	if (se->fts != NULL && !se->gathered)
		se->gathered = search_fts_gather(se->fts, &se->budget);
	return se->fts == NULL || se->gathered;
}

int
search_rows_try(struct search *se, int64_t mailbox_id,
    const struct store_message *row, int64_t blob_id)
{
	struct candidate	*m = &se->cur;

	if (se->trying && (se->mailbox != mailbox_id || m->uid != row->uid))
		candidate_end(se);
	if (!se->trying) {
		candidate_begin(se, row->uid, NEED_ROW);
		m->row = *row;
		m->row.keywords = NULL;
		m->flags = row->flags;
		m->blob_id = blob_id;
		se->keywords[0] = '\0';
		se->mailbox = mailbox_id;
	}
	return search_cur(se);
}

void
search_rows_free(struct search *se)
{
	if (se != NULL)
		search_free(se);
}
