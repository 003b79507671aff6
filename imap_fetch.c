/*
 * imap_fetch.c — FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8), with
 * CONDSTORE's MODSEQ item and CHANGEDSINCE modifier (RFC 7162 3.1.4),
 * and BINARY's items (RFC 3516 4.2).
 *
 * The command is parsed once into a list of items; a step function then
 * writes one response per message as the client reads.  A response reads
 * only what its items need: the message row always, the pre-parsed MIME
 * data (ENVELOPE, BODYSTRUCTURE, section offsets) for those items, and
 * the blob only for section bytes.  Section bytes go out as a literal one
 * chunk at a time, and a step may stop in the middle of one, so a 50 MiB
 * message costs a chunk of memory, not 50 MiB.
 *
 * BINARY[part] is the part's body with its Content-Transfer-Encoding
 * undone.  Its length comes before its bytes, so a part is decoded
 * twice: once to count (and to see whether it holds a NUL, which only a
 * literal8 "~{n}" may carry), a chunk per turn of the step, then again
 * as it is sent.  BINARY.SIZE[part] is the count alone.
 *
 * Where the RFCs leave a choice we answer as Dovecot 2.3 does: a section
 * that names nothing (BODY[9], BODY[1.HEADER] of a part that is not a
 * message) is an empty string; NULs in a literal are sent as 0x80; a
 * response names a section as the client wrote it, upper-cased.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "imap_fetch.h"
#include "imap_search.h"
#include "imap_session.h"
#include "mime.h"
#include "proto.h"
#include "store.h"

#define MAX_DATE	253402300799LL	/* 31-Dec-9999 23:59:59 +0000 */

/* Releases what the current message loaded; its response is over. */
static void
msg_end(struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->have_meta)
		store_meta_free(&fm->meta);
	fm->have_meta = 0;
	store_blob_close(fm->blob);
	fm->blob = NULL;
	free(fm->membuf);
	fm->membuf = NULL;
	memset(&fm->lit, 0, sizeof(fm->lit));
	memset(&fm->bin, 0, sizeof(fm->bin));
	j->active = 0;
}

/* Frees a job in any state: the step_free of imap_start_steps(). */
static void
fetch_free(void *arg)
{
	struct fetch_job	*j = arg;
	size_t			 i;

	if (j == NULL)
		return;
	msg_end(j);
	for (i = 0; i < j->nitems; i++) {
		free(j->items[i].atom);
		free(j->items[i].fields);
		free(j->items[i].fieldbuf);
	}
	imap_seqset_free(&j->set);
	free(j->rows.kwbuf);
	free(j->raw);
	free(j->dec);
	free(j);
}

/*
 * Checks that the MIME data has the strings the items write as they
 * are: those of the groups loaded (STORE_META_*).
 */
static int
meta_complete(const struct store_meta *meta, unsigned what)
{
	if ((what & STORE_META_STRUCT) && (meta->envelope == NULL ||
	    meta->bodystructure == NULL || meta->body == NULL))
		return 0;
	return (what & STORE_META_SECTIONS) == 0 ||
	    (meta->header != NULL && meta->nparts > 0);
}

/* Appends a row to the read-ahead: a store_message_rows() callback. */
static int
rows_add(void *arg, const struct store_message *m)
{
	struct imap_rows	*r = arg;
	const char		*kw = m->keywords != NULL ? m->keywords : "";
	size_t			 len = strlen(kw) + 1, cap;
	char			*p;

	if (r->kwcap - r->kwlen < len) {
		cap = r->kwcap > 0 ? r->kwcap * 2 : 4096;
		while (cap - r->kwlen < len)
			cap *= 2;
		if ((p = realloc(r->kwbuf, cap)) == NULL) {
			r->failed = 1;
			return 1;
		}
		r->kwbuf = p;
		r->kwcap = cap;
	}
	memcpy(r->kwbuf + r->kwlen, kw, len);
	r->kw[r->n] = r->kwlen;
	r->kwlen += len;
	r->m[r->n++] = *m;
	return r->n == FETCH_ROW_BATCH;
}

int
imap_rows_find(struct store *st, const struct imap_view *v,
    struct imap_rows *r, uint32_t uid, uint32_t upto, struct store_message *m)
{
	size_t	 lo = 0, hi, mid;

	if (!r->valid || uid <= r->after || uid > r->upto) {
		r->n = r->kwlen = 0;
		r->failed = 0;
		r->after = uid - 1;
		r->upto = upto;
		if (store_message_rows(st, v->mb.id, r->after, r->upto,
		    FETCH_ROW_BATCH, rows_add, r) != STORE_OK || r->failed)
			return -1;
		if (r->n == FETCH_ROW_BATCH)
			r->upto = r->m[r->n - 1].uid;
		r->valid = 1;
	}
	hi = r->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->m[mid].uid == uid) {
			*m = r->m[mid];
			m->keywords = r->kwbuf + r->kw[mid];
			return 1;
		}
		if (r->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/*
 * Loads message seq: its row, its MIME data when an item needs it, then
 * sets \Seen when an item asks (before the response, RFC 3501 6.4.5).
 * Returns 1, 0 to skip it (expunged elsewhere, or not changed since
 * CHANGEDSINCE), or -1 on a store error (in j->err).
 */
static int
msg_load(struct session *s, struct fetch_job *j, uint32_t seq)
{
	struct imap_view	*v = imap_of(s)->view;
	struct store		*st = s->srv->store;
	struct fetch_msg	*fm = &j->msg;
	uint32_t		 uid = imap_view_uid(v, seq);
	int			 found;

	fm->seq = seq;
	fm->seen_set = 0;
	if (j->rows_only && (found = imap_rows_find(st, v, &j->rows, uid,
	    imap_view_last_uid(v), &fm->m)) >= 0)
		j->err = found ? STORE_OK : STORE_NOTFOUND;
	/* The row and the MIME data in one look-up, but for CHANGEDSINCE. */
	else if (j->need_meta && !j->changedsince) {
		j->err = store_message_get_meta(st, v->mb.id, uid,
		    j->need_meta, &fm->m, &fm->meta, NULL);
		fm->have_meta = j->err == STORE_OK;
	} else
		j->err = store_message_get(st, v->mb.id, uid, &fm->m);
	if (j->err != STORE_OK)
		return j->err == STORE_NOTFOUND ? 0 : -1;
	if (j->changedsince && fm->m.modseq <= j->since)
		return 0;
	/* m.keywords lives only until the next store call */
	snprintf(fm->keywords, sizeof(fm->keywords), "%s",
	    fm->m.keywords != NULL ? fm->m.keywords : "");
	fm->m.keywords = fm->keywords;
	if (j->need_meta && !fm->have_meta) {
		j->err = store_message_meta(st, fm->m.guid, j->need_meta,
		    &fm->meta);
		if (j->err != STORE_OK)
			return -1;
		fm->have_meta = 1;
	}
	if (j->need_meta && !meta_complete(&fm->meta, j->need_meta)) {
		j->err = STORE_IO;
		return -1;
	}
	if (j->seen && !v->readonly && (fm->m.flags & FLAG_SEEN) == 0) {
		j->err = store_message_set_flags(st, v->mb.id, fm->m.uid,
		    fm->m.flags | FLAG_SEEN, fm->keywords, &fm->m.modseq);
		if (j->err != STORE_OK)
			return j->err == STORE_NOTFOUND ? 0 : -1;
		fm->m.flags |= FLAG_SEEN;
		fm->seen_set = 1;
		imap_view_own_change(v, fm->m.modseq, fm->m.uid);
	}
	return 1;
}

/* Writes a string as it is: FETCH output goes through no printf. */
static void
put_str(struct session *s, const char *str)
{
	session_write(s, str, strlen(str));
}

/* Writes prefix, then v in decimal. */
static void
put_uint(struct session *s, const char *prefix, uint64_t v)
{
	char	 digits[20], *p = digits + sizeof(digits);

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put_str(s, prefix);
	session_write(s, p, digits + sizeof(digits) - p);
}

/* Writes one space between two items of a response. */
static void
item_sep(struct session *s, struct fetch_msg *fm)
{
	if (fm->written++ > 0)
		session_write(s, " ", 1);
}

/* FLAGS, with \Recent when this session is the first to see it. */
static void
put_flags(struct session *s, const struct fetch_msg *fm)
{
	const struct imap_view	*v = imap_of(s)->view;

	session_write(s, "FLAGS ", 6);
	imap_put_flags(s, fm->m.flags, fm->keywords,
	    imap_view_is_recent(v, fm->m.uid));
}

/* MODSEQ (RFC 7162 3.1.4): the message's, after any \Seen we set. */
static void
put_modseq(struct session *s, const struct fetch_msg *fm)
{
	put_uint(s, "MODSEQ (", fm->m.modseq);
	session_write(s, ")", 1);
}

/*
 * A date-time item, INTERNALDATE or SAVEDATE: name "02-Dec-2026
 * 01:02:03 +0000" (the store keeps UTC).
 */
static void
put_date_time(struct session *s, const char *name, int64_t when)
{
	static const char	 months[12][4] = { "Jan", "Feb", "Mar", "Apr",
				    "May", "Jun", "Jul", "Aug", "Sep", "Oct",
				    "Nov", "Dec" };
	time_t			 t = when >= 0 && when <= MAX_DATE ? when : 0;
	struct tm		 tm;

	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	session_printf(s, "%s \"%02d-%s-%04d %02d:%02d:%02d +0000\"", name,
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

/*
 * Opens the response line of the loaded message with what comes first:
 * the UID, then, when this FETCH set \Seen, the new FLAGS (RFC 3501
 * 6.4.5) and with CONDSTORE the UID and MODSEQ that RFC 7162 3.1 wants
 * in every FETCH response it causes.
 */
static void
msg_open(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;
	int			 condstore = fm->seen_set &&
				    imap_of(s)->condstore;

	/* A keyword set elsewhere since the last update: FLAGS first. */
	imap_view_keywords(s, imap_of(s)->view, fm->keywords);
	put_uint(s, "* ", fm->seq);
	put_str(s, " FETCH (");
	j->active = 1;
	fm->next = 0;
	fm->written = 0;
	if (j->uid || condstore) {
		item_sep(s, fm);
		put_uint(s, "UID ", fm->m.uid);
	}
	if (fm->seen_set && !j->flags) {
		item_sep(s, fm);
		put_flags(s, fm);
	}
	if (condstore && !j->modseq) {
		item_sep(s, fm);
		put_modseq(s, fm);
	}
}

/* Opens the message's blob on first use. */
static int
blob_need(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->blob != NULL)
		return 0;
	j->err = store_blob_open(s->srv->store, fm->m.guid, &fm->blob, NULL);
	return j->err == STORE_OK ? 0 : -1;
}

/*
 * HEADER.FIELDS[.NOT] of the header block [start, end): the message's
 * header is in its MIME data; a part's is read from the blob, as far as
 * the MIME parser read it (MIME_MAX_HEADER bytes).
 */
static int
fields_source(struct session *s, struct fetch_job *j,
    const struct fetch_item *it, uint64_t start, uint64_t end,
    struct source *src)
{
	struct fetch_msg	*fm = &j->msg;
	size_t			 len;

	if (it->partlen == 0)
		len = fm->meta.header_len;
	else
		len = end - start < MIME_MAX_HEADER ? end - start :
		    MIME_MAX_HEADER;
	if ((fm->membuf = malloc(len + 4)) == NULL) {
		j->err = STORE_IO;
		return -1;
	}
	if (it->partlen == 0)
		memcpy(fm->membuf, fm->meta.header, len);
	else if (blob_need(s, j) < 0 ||
	    store_blob_read(fm->blob, start, fm->membuf, len) != (ssize_t)len) {
		j->err = STORE_IO;
		return -1;
	}
	src->mem = fm->membuf;
	src->end = imap_fetch_header_filter(fm->membuf, len, it);
	return 0;
}

/*
 * Works out the bytes of section `it`: a range of the blob, or bytes in
 * memory (the message's header, a filtered header).  Returns 0, or -1
 * on a store error.
 */
static int
section_source(struct session *s, struct fetch_job *j,
    const struct fetch_item *it, struct source *src)
{
	struct fetch_msg	*fm = &j->msg;
	uint64_t		 start, end;

	free(fm->membuf);
	fm->membuf = NULL;
	memset(src, 0, sizeof(*src));
	if (!imap_fetch_section_range(&fm->meta, fm->m.size, it, &start, &end))
		return 0;
	if (it->text == SECT_FIELDS || it->text == SECT_FIELDS_NOT)
		return fields_source(s, j, it, start, end, src);
	if (it->partlen == 0 && it->text == SECT_HEADER &&
	    fm->meta.header_len == end - start) {
		src->mem = fm->meta.header;
		src->end = end - start;
		return 0;
	}
	if (blob_need(s, j) < 0)
		return -1;
	src->off = start;
	src->end = end;
	return 0;
}

/*
 * Writes a section's name and literal header; literal_send() then sends
 * its bytes.  The response names a partial by its start only (RFC 3501
 * 7.4.2).
 */
static int
section_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct source		 src;

	if (section_source(s, j, it, &src) < 0)
		return -1;
	if (it->partial) {
		src.off += it->start < src.end - src.off ? it->start :
		    src.end - src.off;
		if (src.end - src.off > it->len)
			src.end = src.off + it->len;
	}
	item_sep(s, fm);
	if (it->label != NULL)
		put_str(s, it->label);
	else {
		put_str(s, "BODY[");
		put_str(s, it->spec);
		if (it->partial)
			put_uint(s, "]<", it->start);
		put_str(s, it->partial ? ">" : "]");
	}
	put_uint(s, " {", src.end - src.off);
	session_write(s, "}\r\n", 3);
	fm->lit = src;
	return 0;
}

/*
 * Sets bin on the part `it` names: its raw range and its decoder.
 * BINARY[] is the message as it is, and so is a multipart or a
 * message/rfc822 part, which have no encoding of their own (RFC 2045
 * 6.4); a part that does not exist is empty, as its BODY[] is.  Returns
 * 0, or -1 on a store error or an encoding it cannot undo.
 */
static int
binary_start(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct binary		*b = &fm->bin;
	const struct mime_part	*p = NULL;

	memset(b, 0, sizeof(*b));
	b->spec = it->spec;
	b->partlen = it->partlen;
	b->cte = MIME_CTE_IDENTITY;
	if (it->partlen == 0)
		b->end = fm->m.size;
	else if ((p = imap_fetch_find_part(&fm->meta, it->spec,
	    it->partlen)) != NULL) {
		b->start = p->body_start;
		b->end = p->body_end;
	}
	b->off = b->start;
	b->counted = b->start == b->end;
	if (b->counted)
		return 0;
	if (blob_need(s, j) < 0)
		return -1;
	if (p != NULL && !p->is_multipart && !p->is_message) {
		if (imap_part_cte(fm->blob, p, (char *)j->raw, IO_CHUNK,
		    &b->cte) < 0) {
			j->err = STORE_IO;
			return -1;
		}
		if (b->cte == MIME_CTE_UNKNOWN) {
			j->unknown_cte = 1;
			return -1;
		}
	}
	mime_decoder_init(&b->d, b->cte);
	return 0;
}

/*
 * Reads and decodes the next chunk of bin's raw range into j->dec.
 * Returns how many bytes it decoded to, or -1 on a store error.
 */
static ssize_t
binary_chunk(struct fetch_job *j)
{
	struct binary	*b = &j->msg.bin;
	size_t		 n, got;

	n = b->end - b->off < IO_CHUNK ? (size_t)(b->end - b->off) :
	    IO_CHUNK;
	if (store_blob_read(j->msg.blob, b->off, j->raw, n) != (ssize_t)n) {
		j->err = STORE_IO;
		return -1;
	}
	b->off += n;
	got = mime_decode(&b->d, j->raw, n, j->dec);
	if (b->off == b->end)
		got += mime_decode_end(&b->d, j->dec + got);
	return (ssize_t)got;
}

/*
 * Counts the decoded bytes of the part `it` names, one chunk a call,
 * unless this message's last count was of that part.  Returns 1 when
 * bin holds the count, 0 when more is left, -1 on an error.
 */
static int
binary_count(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct binary	*b = &j->msg.bin;
	ssize_t		 got;

	if ((b->spec == NULL || b->partlen != it->partlen ||
	    memcmp(b->spec, it->spec, it->partlen) != 0) &&
	    binary_start(s, j, it) < 0)
		return -1;
	if (b->counted)
		return 1;
	if ((got = binary_chunk(j)) < 0)
		return -1;
	b->size += (uint64_t)got;
	b->nul |= memchr(j->dec, '\0', (size_t)got) != NULL;
	b->counted = b->off == b->end;
	return b->counted;
}

/*
 * Writes BINARY.SIZE[part] n, or BINARY[part]<start> and the header of
 * its literal (literal8 when the part holds a NUL), which binary_send()
 * then sends.  The partial is of the decoded bytes.  Returns as
 * item_write() does.
 */
static int
binary_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct binary		*b = &fm->bin;
	uint64_t		 start = 0, len;
	int			 r;

	if ((r = binary_count(s, j, it)) != 1)
		return r;
	item_sep(s, fm);
	if (it->kind == ITEM_BINARY_SIZE) {
		put_str(s, "BINARY.SIZE[");
		put_str(s, it->spec);
		put_uint(s, "] ", b->size);
		return 1;
	}
	if (it->partial)
		start = it->start < b->size ? it->start : b->size;
	len = b->size - start;
	if (it->partial && len > it->len)
		len = it->len;
	put_str(s, "BINARY[");
	put_str(s, it->spec);
	if (it->partial)
		put_uint(s, "]<", it->start);
	put_str(s, it->partial ? "> " : "] ");
	put_uint(s, b->nul ? "~{" : "{", len);
	session_write(s, "}\r\n", 3);
	b->off = b->start;
	mime_decoder_init(&b->d, b->cte);
	b->pos = 0;
	b->want = start;
	b->want_end = start + len;
	b->sending = len > 0;
	return 1;
}

/*
 * Sends what is left of a BINARY literal, decoding a chunk at a time,
 * until the output is full.  Returns as literal_send() does.
 */
static int
binary_send(struct session *s, struct fetch_job *j)
{
	struct binary	*b = &j->msg.bin;
	uint64_t	 lo, hi;
	ssize_t		 got;

	while (b->sending) {
		if (session_output_high(s))
			return 0;
		/* The count said more: the blob changed under its GUID. */
		if (b->off == b->end) {
			j->err = STORE_IO;
			return -1;
		}
		if ((got = binary_chunk(j)) < 0)
			return -1;
		lo = b->pos > b->want ? b->pos : b->want;
		hi = b->pos + (uint64_t)got < b->want_end ?
		    b->pos + (uint64_t)got : b->want_end;
		if (lo < hi)
			session_write(s, j->dec + (lo - b->pos),
			    (size_t)(hi - lo));
		b->pos += (uint64_t)got;
		b->sending = b->pos < b->want_end;
	}
	return 1;
}

/*
 * EMAILID (RFC 8474 5.1): "M" and the GUID in hex, so that a message and
 * its copies have one id, on every node, for ever.
 */
static void
put_emailid(struct session *s, const struct fetch_msg *fm)
{
	char	 hex[2 * GUID_LEN + 1];

	crypto_hex(fm->m.guid, GUID_LEN, hex);
	session_printf(s, "EMAILID (M%s)", hex);
}

/*
 * Writes one item of the response; a section starts its literal.
 * Returns 1 when it is written, 0 when a BINARY item is still counting
 * (call again), -1 on a store error.
 */
static int
item_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;

	if (it->kind == ITEM_SECTION)
		return section_write(s, j, it) < 0 ? -1 : 1;
	if (it->kind == ITEM_BINARY || it->kind == ITEM_BINARY_SIZE)
		return binary_write(s, j, it);
	item_sep(s, fm);
	switch (it->kind) {
	case ITEM_FLAGS:
		put_flags(s, fm);
		break;
	case ITEM_INTERNALDATE:
		put_date_time(s, "INTERNALDATE", fm->m.internaldate);
		break;
	case ITEM_SAVEDATE:
		put_date_time(s, "SAVEDATE", fm->m.savedate);
		break;
	case ITEM_SIZE:
		put_uint(s, "RFC822.SIZE ", fm->m.size);
		break;
	case ITEM_ENVELOPE:
		put_str(s, "ENVELOPE ");
		put_str(s, fm->meta.envelope);
		break;
	case ITEM_BODYSTRUCTURE:
		put_str(s, "BODYSTRUCTURE ");
		put_str(s, fm->meta.bodystructure);
		break;
	case ITEM_BODY:
		put_str(s, "BODY ");
		put_str(s, fm->meta.body);
		break;
	case ITEM_MODSEQ:
		put_modseq(s, fm);
		break;
	case ITEM_EMAILID:
		put_emailid(s, fm);
		break;
	case ITEM_THREADID:	/* no thread ids kept: NIL (RFC 8474 5.2) */
		put_str(s, "THREADID NIL");
		break;
	case ITEM_SECTION:	/* section_write(), above */
	case ITEM_BINARY:	/* binary_write(), above */
	case ITEM_BINARY_SIZE:
		break;
	}
	return 1;
}

/*
 * Sends what is left of the literal, a chunk at a time, until the output
 * is full.  The bytes are read straight into the output buffer.  NULs go
 * out as 0x80 as Dovecot sends them: a literal may not hold NUL (RFC
 * 3501 9, CHAR8).  Returns 1 when the literal is sent, 0 when the output
 * is full (or the session closing), -1 when the blob could not be read.
 */
static int
literal_send(struct session *s, struct fetch_job *j)
{
	struct source	*lit = &j->msg.lit;
	char		*dst, *p, *end;
	size_t		 n;

	while (lit->off < lit->end) {
		if (session_output_high(s))
			return 0;
		n = lit->end - lit->off < BLOB_CHUNK_SIZE ?
		    lit->end - lit->off : BLOB_CHUNK_SIZE;
		if ((dst = session_reserve(s, n, &n)) == NULL)
			return 0;
		if (lit->mem != NULL)
			memcpy(dst, lit->mem + lit->off, n);
		else if (store_blob_read(j->msg.blob, lit->off, dst, n) !=
		    (ssize_t)n) {
			j->err = STORE_IO;
			return -1;
		}
		end = dst + n;
		for (p = dst; (p = memchr(p, '\0', end - p)) != NULL; p++)
			*p = (char)0x80;
		session_commit(s, n);
		lit->off += n;
	}
	return 1;
}

/*
 * Writes on with the loaded message's response: the literal being sent,
 * then each item left.  Returns 1 when the response is complete, 0 when
 * the output is full or a step's work is done, -1 on a store error.
 */
static int
msg_write(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;
	int			 r;

	for (;;) {
		if ((r = literal_send(s, j)) != 1 ||
		    (r = binary_send(s, j)) != 1)
			return r;
		if (fm->next == j->nitems)
			break;
		if (session_output_high(s))
			return 0;
		if ((r = item_write(s, j, &j->items[fm->next])) != 1)
			return r;
		fm->next++;
	}
	session_write(s, ")\r\n", 3);
	msg_end(j);
	return 1;
}

/*
 * Loads the next message of the set and opens its response line, or
 * passes over it (expunged elsewhere, unchanged since CHANGEDSINCE).
 * Returns 1, 0 when the set is done, or -1 on a store error.
 */
static int
msg_next(struct session *s, struct fetch_job *j)
{
	uint32_t	 seq;
	int		 r;

	if ((seq = imap_view_walk_next(&j->walk, imap_of(s)->view)) == 0)
		return 0;
	if ((r = msg_load(s, j, seq)) == 1) {
		msg_open(s, j);
		return 1;
	}
	msg_end(j);
	return r < 0 ? -1 : 1;
}

/*
 * Ends the command after a store error.  A literal cut short cannot be
 * finished, so the connection is closed, as Dovecot does.  Otherwise the
 * open response line is closed (with the UID if it is still empty: RFC
 * 3501 has no empty FETCH response) and the command fails.
 */
static void
fetch_fail(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->lit.off < fm->lit.end || fm->bin.sending)
		session_close(s);
	else if (j->active && fm->written == 0)
		session_printf(s, "UID %u)\r\n", fm->m.uid);
	else if (j->active)
		session_write(s, ")\r\n", 3);
	msg_end(j);
	if (j->unknown_cte)
		imap_reply(s, "NO [UNKNOWN-CTE] A part's Content-Transfer-"
		    "Encoding is not one BINARY can undo");
	else
		imap_reply_store_error(s, j->err, IMAP_MISSING_MESSAGE,
		    "FETCH");
}

/*
 * Writes responses until the output reaches the high-water mark, the
 * step's time is used up, or the set is done.  Returns 1 once the
 * command has its reply.  The time counts too: messages that write
 * nothing (CHANGEDSINCE, expunged elsewhere) fill no output, and a
 * FETCH of a big mailbox's FLAGS makes 256 KiB of them slowly.  No cap
 * on messages per step, unlike STORE: FETCH writes nothing to the store
 * (but \Seen) and streams best in big steps.
 */
static int
fetch_run(struct session *s, struct fetch_job *j)
{
	struct imap_step_budget	 b;
	int			 r;

	imap_step_begin(&b);
	while (!session_output_high(s) && imap_step_time_left(&b)) {
		if (j->active)
			r = msg_write(s, j);
		else if ((r = msg_next(s, j)) == 0) {
			imap_reply(s, "OK %sFETCH completed",
			    j->uid_cmd ? "UID " : "");
			return 1;
		}
		if (r < 0) {
			fetch_fail(s, j);
			return 1;
		}
	}
	return 0;
}

/*
 * The step function: one fetch_run() inside one read snapshot, so that
 * the look-ups of a step's messages share one lock of the store.
 */
static int
fetch_step(struct session *s, void *arg)
{
	struct store		*st = s->srv->store;
	struct fetch_job	*j = arg;
	int			 r;

	store_read_begin(st);
	j->rows.valid = 0;	/* read in another snapshot */
	r = fetch_run(s, j);
	store_read_end(st);
	return r;
}

/*
 * Parses the command and hands it to fetch_step(), or replies BAD.  The
 * session is in the selected state (imap.c checks).
 */
void
imap_cmd_fetch(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct imap_session	*is = imap_of(s);
	struct fetch_job	*j;
	const char		*err;

	assert(is->view != NULL);
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] %s", imap_fetch_oom);
		return;
	}
	j->uid_cmd = j->uid = uid;
	if ((err = imap_fetch_parse(j, is->view, args, nargs)) != NULL) {
		imap_reply(s, "%s %s", err == imap_fetch_oom ?
		    "NO [UNAVAILABLE]" : "BAD", err);
		fetch_free(j);
		return;
	}
	if (j->binary && ((j->raw = malloc(IO_CHUNK)) == NULL ||
	    (j->dec = malloc(IO_CHUNK + MIME_DECODE_SLACK)) == NULL)) {
		imap_reply(s, "NO [UNAVAILABLE] %s", imap_fetch_oom);
		fetch_free(j);
		return;
	}
	if (j->vanished && !is->qresync) {
		imap_reply(s, "BAD VANISHED needs ENABLE QRESYNC first");
		fetch_free(j);
		return;
	}
	/* MODSEQ and CHANGEDSINCE enable CONDSTORE (RFC 7162 3.1) */
	if (j->modseq)
		imap_condstore_enable(s);
	/* What went comes before what changed (RFC 7162 3.2.6). */
	if (j->vanished && imap_vanished_earlier(s, is->view, &j->set,
	    j->since) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Cannot read the mailbox");
		fetch_free(j);
		return;
	}
	imap_start_steps(s, fetch_step, fetch_free, j);
}
