/*
 * fuzz_sync.c — libFuzzer target: the replication frame header and the
 * log record decoder.
 *
 * sync_frame_peek() must never claim a frame longer than the buffer or
 * than SYNC_MAX_FRAME allows, and its total must be header and
 * payload.  A record that decodes must re-encode to the very bytes it came
 * from (the encoding is canonical: one record, one byte string) and
 * decode again to the same record.  The input is tried as a bare record
 * and, when it holds a whole frame, the frame's payload too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sync.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Checks one sync_frame_peek() answer against the buffer. */
static void
check_peek(const uint8_t *p, size_t n)
{
	uint8_t	 type = 0;
	size_t	 paylen = 0, total = 0;
	int	 rc = sync_frame_peek(p, n, &type, &paylen, &total);

	if (rc == -1) {
		if (n < SYNC_HDR_LEN)
			abort();	/* refused before it saw a length */
		return;
	}
	if (rc == 0 && n < SYNC_HDR_LEN)
		return;
	if (paylen > SYNC_MAX_FRAME || type != p[0] ||
	    total != SYNC_HDR_LEN + paylen)
		abort();
	if (rc == 1 && total > n)
		abort();	/* a frame beyond the buffer */
	if (rc == 0 && total <= n)
		abort();	/* asked for more with the frame all there */
}

/* Whether two decoded records are the same, field by field. */
static int
same_record(const struct store_replog_rec *a, const struct store_replog_rec *b)
{
	return a->seq == b->seq && a->time == b->time &&
	    a->type == b->type && a->reason == b->reason &&
	    strcmp(a->user, b->user) == 0 &&
	    a->has_mailbox == b->has_mailbox &&
	    memcmp(a->mailbox, b->mailbox, sizeof(a->mailbox)) == 0 &&
	    a->uid == b->uid && a->has_guid == b->has_guid &&
	    memcmp(a->guid, b->guid, sizeof(a->guid)) == 0 &&
	    a->modseq == b->modseq && a->flags == b->flags &&
	    strcmp(a->keywords, b->keywords) == 0 &&
	    a->internaldate == b->internaldate &&
	    strcmp(a->name, b->name) == 0 && strcmp(a->value, b->value) == 0;
}

/* Decodes p[0..n); a record that decodes must round-trip exactly. */
static void
check_record(const uint8_t *p, size_t n)
{
	static struct store_replog_rec	 r, back;
	static uint8_t			 enc[SYNC_MAX_FRAME];
	uint64_t			 size, size2;
	size_t				 m;
	int				 body, body2;

	if (sync_rec_decode(p, n, &r, &body, &size) < 0)
		return;
	m = sync_rec_encode(&r, body, size, enc, sizeof(enc));
	if (m != n || memcmp(enc, p, n) != 0)
		abort();	/* not the bytes it was decoded from */
	if (sync_rec_decode(enc, m, &back, &body2, &size2) < 0 ||
	    !same_record(&r, &back) || body != body2 || size != size2)
		abort();
	/* One byte short of what it needs never fits. */
	if (sync_rec_encode(&r, body, size, enc, n - 1) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t	 type;
	size_t	 paylen, total;

	check_peek(data, size);
	check_record(data, size);
	if (sync_frame_peek(data, size, &type, &paylen, &total) == 1)
		check_record(data + SYNC_HDR_LEN, paylen);
	return 0;
}
