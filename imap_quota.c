/*
 * imap_quota.c — QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA and SETQUOTA.
 *
 * Every user has one quota root, "", over all their mailboxes, with the
 * limits the server was started with (--quota-storage, --quota-messages;
 * the same for every user).  The store enforces them on APPEND, COPY,
 * MOVE and delivery; here they are only reported.  Limits are set by the
 * administrator, so SETQUOTA is refused, as Dovecot refuses it.
 */
#include <stdint.h>

#include "imap_core.h"
#include "settings.h"
#include "store.h"

/* Whether the server was started with a storage or a message limit. */
int
imap_quota_set(const struct session *s)
{
	return s->srv->settings->quota_storage != 0 ||
	    s->srv->settings->quota_messages != 0;
}

/*
 * Writes `* QUOTA "" (...)` for the user owning mailbox_id: each
 * resource that has a limit, STORAGE in units of 1024 bytes.  Returns 0,
 * or -1 on a store error (nothing written).
 */
static int
quota_respond(struct session *s, int64_t mailbox_id)
{
	const struct settings	*set = s->srv->settings;
	struct store_usage	 used;
	const char		*sep = "";

	if (store_user_usage(s->srv->store, mailbox_id, &used) != STORE_OK)
		return -1;
	session_printf(s, "* QUOTA \"\" (");
	if (set->quota_storage != 0) {
		session_printf(s, "STORAGE %llu %llu",
		    (unsigned long long)(used.bytes / 1024),
		    (unsigned long long)(set->quota_storage / 1024));
		sep = " ";
	}
	if (set->quota_messages != 0)
		session_printf(s, "%sMESSAGE %llu %ld", sep,
		    (unsigned long long)used.messages, set->quota_messages);
	session_printf(s, ")\r\n");
	return 0;
}

/*
 * The answer to GETQUOTAROOT (with_root) or GETQUOTA, through the user's
 * mailbox `name`: its "* QUOTAROOT" line when asked for, the quota when
 * one is set, and the tagged reply.
 */
static void
quota_answer(struct session *s, const char *name, const char *verb,
    int with_root)
{
	struct imap_session	*ims = imap_of(s);
	struct store_mailbox	 mb;
	enum store_err		 err;

	if ((err = store_mailbox_get(s->srv->store, ims->user, name, &mb)) !=
	    STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, verb);
		return;
	}
	if (with_root) {
		session_printf(s, "* QUOTAROOT ");
		imap_put_mailbox(s, mb.name);
		session_printf(s, "%s\r\n", imap_quota_set(s) ? " \"\"" : "");
	}
	if (imap_quota_set(s) && quota_respond(s, mb.id) < 0)
		imap_reply(s, "NO [UNAVAILABLE] %s failed", verb);
	else
		imap_reply(s, "OK %s completed", verb);
}

/* GETQUOTAROOT mailbox: the root "" and its quota, if one is set. */
void
imap_cmd_getquotaroot(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	const char	*name;

	(void)variant;
	if (nargs != 1 || (name = imap_arg_mailbox(s, &args[0])) == NULL)
		imap_reply(s, "BAD GETQUOTAROOT wants a mailbox");
	else
		quota_answer(s, name, "GETQUOTAROOT", 1);
}

/* GETQUOTA "": the user's one quota root, read through their INBOX. */
void
imap_cmd_getquota(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	const char	*root;

	(void)variant;
	if (nargs != 1 || (root = imap_arg_astring(&args[0])) == NULL)
		imap_reply(s, "BAD GETQUOTA wants a quota root");
	else if (root[0] != '\0' || !imap_quota_set(s))
		imap_reply(s, "NO [NONEXISTENT] No such quota root");
	else
		quota_answer(s, "INBOX", "GETQUOTA", 0);
}

/* SETQUOTA: limits are the administrator's (QUOTASET is not offered). */
void
imap_cmd_setquota(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	(void)args;
	(void)nargs;
	(void)variant;
	imap_reply(s, "NO [NOPERM] Quota limits are set by the administrator");
}
