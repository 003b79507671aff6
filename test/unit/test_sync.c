/*
 * test_sync.c — the replication codec: frame headers and log records
 * round-trip, and every truncation or corruption of a record is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "record.h"
#include "sync.h"

static void
sample(struct store_replog_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = 42;
	r->time = 1700000000;
	r->type = REC_MESSAGE_APPEND;
	r->reason = REASON_MOVE;
	r->has_mailbox = 1;
	memset(r->mailbox, 0xab, sizeof(r->mailbox));
	r->uid = 7;
	r->has_guid = 1;
	memset(r->guid, 0x5c, sizeof(r->guid));
	r->modseq = 9;
	r->flags = 3;
	snprintf(r->keywords, sizeof(r->keywords), "$Label1 work");
	r->internaldate = 1600000000;
}

static void
test_record_round_trip(void **state)
{
	struct store_replog_rec	 r, back;
	uint8_t			 buf[8192];
	size_t			 n;
	uint64_t		 size;
	int			 body;

	(void)state;
	sample(&r);
	n = sync_rec_encode(&r, 1, 123456, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), 0);
	assert_int_equal(body, 1);
	assert_int_equal(size, 123456);
	assert_int_equal(back.seq, 42);
	assert_int_equal(back.uid, 7);
	assert_int_equal(back.flags, 3);
	assert_int_equal(back.type, REC_MESSAGE_APPEND);
	assert_int_equal(back.reason, REASON_MOVE);
	assert_string_equal(back.keywords, "$Label1 work");
	assert_memory_equal(back.guid, r.guid, sizeof(r.guid));
	assert_memory_equal(back.mailbox, r.mailbox, sizeof(r.mailbox));
	/* Too small an output buffer is refused, never overrun. */
	assert_int_equal(sync_rec_encode(&r, 1, 1, buf, n - 1), 0);
}

static void
test_record_truncated_or_padded(void **state)
{
	struct store_replog_rec	 r, back;
	uint8_t			 buf[8192];
	size_t			 n, i;
	uint64_t		 size;
	int			 body;

	(void)state;
	sample(&r);
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	for (i = 0; i < n; i++)
		assert_int_equal(sync_rec_decode(buf, i, &back, &body,
		    &size), -1);
	buf[n] = 0;
	assert_int_equal(sync_rec_decode(buf, n + 1, &back, &body, &size),
	    -1);
}

static void
test_record_semantics(void **state)
{
	struct store_replog_rec	 r, back;
	uint8_t			 buf[8192];
	size_t			 n;
	uint64_t		 size;
	int			 body;

	(void)state;
	/* An append without a GUID, an unknown type, a body on a flag change. */
	sample(&r);
	r.has_guid = 0;
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
	sample(&r);
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	memcpy(buf + 8 + 8 + 2 + 8, "nuke__", 6);	/* "message.nuke__" */
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
	/* A reason no version knows. */
	sample(&r);
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	buf[8 + 8 + 2 + strlen("message.append")] = REC_NREASONS;
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
	sample(&r);
	r.type = REC_MESSAGE_FLAGS;
	n = sync_rec_encode(&r, 1, 10, buf, sizeof(buf));
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
	sample(&r);
	r.uid = 0;
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
	/* A NUL inside a string. */
	sample(&r);
	n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
	buf[8 + 8 + 2 + 1] = '\0';
	assert_int_equal(sync_rec_decode(buf, n, &back, &body, &size), -1);
}

/* Where a renumbering moved an append from: a UID below its own, or none. */
static void
test_record_renumbered_from(void **state)
{
	static const struct {
		const char	*value;
		int		 ok;
	} cases[] = {
		{ "", 0 }, { "6", 0 }, { "7", -1 }, { "8", -1 }, { "0", -1 },
		{ "-1", -1 }, { "6x", -1 }, { " 6", -1 },
		{ "4294967295", -1 }, { "99999999999999999999", -1 },
	};
	struct store_replog_rec	 r, back;
	uint8_t			 buf[8192];
	char			 text[REC_FROM_TEXT_LEN];
	uint32_t		 from;
	size_t			 i, n;
	uint64_t		 size;
	int			 body;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		sample(&r);		/* uid 7 */
		snprintf(r.value, sizeof(r.value), "%s", cases[i].value);
		n = sync_rec_encode(&r, 0, 0, buf, sizeof(buf));
		assert_int_equal(sync_rec_decode(buf, n, &back, &body,
		    &size), cases[i].ok);
	}
	rec_from_text(4294967294u, text);
	assert_int_equal(rec_from_value(text, &from), 0);
	assert_int_equal(from, 4294967294u);
	rec_from_text(0, text);
	assert_string_equal(text, "");
	assert_int_equal(rec_from_value(text, &from), 0);
	assert_int_equal(from, 0);
}

static void
test_record_kinds(void **state)
{
	enum rec_type	 t, back;
	enum rec_reason	 r, rback;

	(void)state;
	/* Every kind has a name that finds it again, and an apply. */
	for (t = 0; t < REC_NTYPES; t++) {
		assert_non_null(rec_kind(t)->name);
		assert_non_null(rec_kind(t)->apply);
		assert_int_equal(rec_type_by_name(rec_kind(t)->name, &back), 0);
		assert_int_equal(back, t);
	}
	assert_int_equal(rec_type_by_name("message.nuke", &back), -1);
	for (r = 0; r < REC_NREASONS; r++) {
		assert_int_equal(rec_reason_by_name(rec_reason_name(r),
		    &rback), 0);
		assert_int_equal(rback, r);
	}
	/* Only a client's or an operator's deletes count. */
	assert_true(rec_reason_deletes(REASON_CLIENT));
	assert_true(rec_reason_deletes(REASON_OPERATOR));
	assert_false(rec_reason_deletes(REASON_MOVE));
	assert_false(rec_reason_deletes(REASON_RENUMBER));
	assert_false(rec_reason_deletes(REASON_RECONCILE));
	assert_int_equal(rec_kind(REC_MESSAGE_EXPUNGE)->guard, RG_EXPUNGE);
	assert_int_equal(rec_kind(REC_MAILBOX_DELETE)->guard, RG_MAILBOX);
	assert_int_equal(rec_kind(REC_USER_DEL)->guard, RG_USER);
	assert_true(rec_kind(REC_MESSAGE_APPEND)->body);
	assert_false(rec_kind(REC_MESSAGE_FLAGS)->body);
}

static void
test_frame_peek(void **state)
{
	uint8_t	 f[SYNC_HDR_LEN + 3] = { SF_ACK, 0, 0, 0, 3 };
	uint8_t	 type;
	size_t	 len, total, i;

	(void)state;
	for (i = 0; i < SYNC_HDR_LEN + 3; i++)
		assert_int_equal(sync_frame_peek(f, i, &type, &len, &total), 0);
	assert_int_equal(sync_frame_peek(f, sizeof(f), &type, &len, &total),
	    1);
	assert_int_equal(type, SF_ACK);
	assert_int_equal(len, 3);
	assert_int_equal(total, sizeof(f));
	/* A length over the limit is refused from the header alone. */
	f[1] = 0x7f;
	assert_int_equal(sync_frame_peek(f, SYNC_HDR_LEN, &type, &len,
	    &total), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_truncated_or_padded),
		cmocka_unit_test(test_record_semantics),
		cmocka_unit_test(test_record_renumbered_from),
		cmocka_unit_test(test_record_kinds),
		cmocka_unit_test(test_frame_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
