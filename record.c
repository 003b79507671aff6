/*
 * record.c — the table of replication record kinds (see record.h) and
 * the apply function of each.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "record.h"
#include "store.h"

static enum store_err
apply_user_add(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	return store_apply_user_add(st, r->user, r->value, what);
}

static enum store_err
apply_user_passwd(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	*what = APPLY_DONE;
	return store_user_set_password(st, r->user, r->value);
}

static enum store_err
apply_user_del(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	return store_apply_user_del(st, r->user, what);
}

static enum store_err
apply_mailbox_create(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	return store_apply_mailbox_create(st, r->user, r->mailbox, r->name,
	    r->uid, r->value, r->flags != 0, what);
}

static enum store_err
apply_mailbox_rename(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	return store_apply_mailbox_rename(st, r->mailbox, r->name,
	    r->internaldate, what);
}

/* Never destroys a message kept out of a conflict: such a delete waits. */
static enum store_err
apply_mailbox_delete(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	int64_t	 conflicts;

	(void)b;
	(void)local;
	/* A failed count (-1) is no licence to delete: the batch fails. */
	if ((conflicts = store_conflict_count(st, r->mailbox)) < 0)
		return STORE_IO;
	if (conflicts > 0) {
		log_warn("sync.delete.held", "mailbox=%s seq=%lld "
		    "msg=\"mailbox holds conflicting local messages; not "
		    "deleted\"", log_quote(r->name), (long long)r->seq);
		*what = APPLY_SAME;
		return STORE_OK;
	}
	return store_apply_mailbox_delete(st, r->mailbox, what);
}

static enum store_err
apply_subscribe(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	(void)local;
	return store_apply_subscribe(st, r->user, r->name, r->flags != 0,
	    what);
}

static enum store_err
apply_append(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	uint32_t	 from;

	if (rec_from_value(r->value, &from) < 0)
		return STORE_INVALID;
	return store_apply_append(st, r->mailbox, r->uid, r->guid, r->flags,
	    r->keywords[0] ? r->keywords : NULL, r->internaldate, r->time, from,
	    b, what, local);
}

static enum store_err
apply_flags(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	return store_apply_flags(st, r->mailbox, r->uid, r->guid, r->flags,
	    r->keywords[0] ? r->keywords : NULL, what, local);
}

static enum store_err
apply_expunge(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *b, enum store_apply *what, uint8_t *local)
{
	(void)b;
	return store_apply_expunge(st, r->mailbox, r->uid, r->guid, what,
	    local);
}

#define MBOX	REC_NEED_MAILBOX
#define MSG	(REC_NEED_MAILBOX | REC_NEED_GUID | REC_NEED_UID)

static const struct rec_kind kinds[REC_NTYPES] = {
	[REC_USER_ADD] = { "user.add", REC_NEED_USER | REC_NEED_VALUE, 0,
	    0, RG_NONE, apply_user_add },
	[REC_USER_PASSWD] = { "user.passwd", REC_NEED_USER | REC_NEED_VALUE,
	    0, 0, RG_NONE, apply_user_passwd },
	[REC_USER_DEL] = { "user.del", REC_NEED_USER, 0, 0, RG_USER,
	    apply_user_del },
	[REC_MAILBOX_CREATE] = { "mailbox.create", REC_NEED_USER | MBOX |
	    REC_NEED_NAME | REC_NEED_UID, 0, 0, RG_NONE,
	    apply_mailbox_create },
	[REC_MAILBOX_RENAME] = { "mailbox.rename", MBOX | REC_NEED_NAME, 0,
	    0, RG_NONE, apply_mailbox_rename },
	[REC_MAILBOX_DELETE] = { "mailbox.delete", MBOX, 0, 0, RG_MAILBOX,
	    apply_mailbox_delete },
	[REC_USER_SUBSCRIBE] = { "user.subscribe", REC_NEED_USER |
	    REC_NEED_NAME, 0, 0, RG_NONE, apply_subscribe },
	[REC_MESSAGE_APPEND] = { "message.append", MSG | REC_VALUE_FROM, 1,
	    1, RG_NONE, apply_append },
	[REC_MESSAGE_FLAGS] = { "message.flags", MSG, 0, 0, RG_NONE,
	    apply_flags },
	[REC_MESSAGE_EXPUNGE] = { "message.expunge", MSG, 0, 1, RG_EXPUNGE,
	    apply_expunge },
};

static const char *const reasons[REC_NREASONS] = {
	[REASON_CLIENT] = "client",
	[REASON_OPERATOR] = "operator",
	[REASON_MOVE] = "move",
	[REASON_RENUMBER] = "renumber",
	[REASON_RECONCILE] = "reconcile",
};

const struct rec_kind *
rec_kind(enum rec_type type)
{
	return &kinds[type];
}

int
rec_type_by_name(const char *name, enum rec_type *out)
{
	size_t	 i;

	for (i = 0; i < REC_NTYPES; i++)
		if (strcmp(kinds[i].name, name) == 0) {
			*out = (enum rec_type)i;
			return 0;
		}
	return -1;
}

const char *
rec_reason_name(enum rec_reason reason)
{
	return reasons[reason];
}

int
rec_reason_by_name(const char *name, enum rec_reason *out)
{
	size_t	 i;

	for (i = 0; i < REC_NREASONS; i++)
		if (strcmp(reasons[i], name) == 0) {
			*out = (enum rec_reason)i;
			return 0;
		}
	return -1;
}

void
rec_from_text(uint32_t from, char out[REC_FROM_TEXT_LEN])
{
	if (from == 0)
		out[0] = '\0';
	else
		snprintf(out, REC_FROM_TEXT_LEN, "%u", from);
}

int
rec_from_value(const char *value, uint32_t *from)
{
	unsigned long long	 v = 0;
	const char		*p;

	*from = 0;
	for (p = value; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || (v = v * 10 + (unsigned)(*p -
		    '0')) >= UINT32_MAX || p - value >= REC_FROM_TEXT_LEN)
			return -1;
	}
	if (p != value && v == 0)
		return -1;
	*from = (uint32_t)v;
	return 0;
}

int
rec_reason_deletes(enum rec_reason reason)
{
	return reason == REASON_CLIENT || reason == REASON_OPERATOR;
}

enum store_err
rec_apply(struct store *st, const struct store_replog_rec *r,
    const struct store_blob_in *body, int *conflict,
    struct store_conflict *k)
{
	const struct rec_kind	*kind = rec_kind(r->type);
	struct store_mailbox	 mb;
	enum store_apply	 what = APPLY_DONE;
	enum store_err		 err;
	enum rec_reason		 was;
	uint8_t			 local[GUID_LEN];

	*conflict = 0;
	was = store_set_reason(st, r->reason);
	err = kind->apply(st, r, body, &what, local);
	(void)store_set_reason(st, was);
	if (err != STORE_OK || (what != APPLY_CONFLICT &&
	    what != APPLY_REUSED && what != APPLY_EXPUNGED))
		return err;
	if (what == APPLY_CONFLICT && !kind->conflicts) {
		log_warn("sync.apply.skipped", "seq=%lld type=%s msg=\"local "
		    "state differs; left as it is\"", (long long)r->seq,
		    kind->name);
		return STORE_OK;
	}
	memset(k, 0, sizeof(*k));
	memcpy(k->mailbox, r->mailbox, MAILBOX_ID_LEN);
	if (store_mailbox_by_uniqueid(st, r->mailbox, &mb, k->user) ==
	    STORE_OK)
		snprintf(k->mailbox_name, sizeof(k->mailbox_name), "%s",
		    mb.name);
	k->uid = r->uid;
	memcpy(k->local_guid, local, GUID_LEN);
	memcpy(k->master_guid, r->guid, GUID_LEN);
	/*
	 * A UID this node used for another message, or this message that
	 * was expunged here: a conflict of its own, which the master
	 * settles (sync_renumber.c).
	 */
	snprintf(k->op, sizeof(k->op), "%s", what == APPLY_REUSED ?
	    "message.reused" : what == APPLY_EXPUNGED ? "message.expunged" :
	    kind->name);
	k->master_seq = r->seq;
	*conflict = 1;
	return STORE_OK;
}
