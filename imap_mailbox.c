/*
 * imap_mailbox.c — the selected mailbox's view and its untagged updates,
 * and the IMAP commands on mailboxes: SELECT, EXAMINE, CREATE, DELETE,
 * RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with LIST-EXTENDED, SPECIAL-USE
 * and LIST-STATUS), LSUB, STATUS, CLOSE and UNSELECT.
 *
 * Updates.  A view remembers the HIGHESTMODSEQ and UIDNEXT it has
 * reported.  imap_sync() asks the store what changed since: expunges
 * (tombstones with a higher MODSEQ), flag changes and new messages (rows
 * with a higher MODSEQ).  Changes this session made itself and already
 * answered are skipped (imap_view_own_change).
 *
 * \Recent.  RFC 3501 shows a new message as \Recent to exactly one
 * session.  The process keeps, per mailbox, the highest UID some
 * read-write session has claimed; a session that selects or learns of a
 * message above it claims it.  The table is memory only: after a restart
 * messages are new once more, which errs on the side of showing mail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "crypto.h"
#include "imap_context.h"
#include "imap_session.h"
#include "log.h"
#include "settings.h"
#include "store.h"
#include "sync.h"

/* --- \Recent ------------------------------------------------------------- */

struct recent_floor {
	int64_t		mailbox_id;
	uint32_t	claimed;	/* highest UID shown as \Recent */
};

static struct recent_floor	*recent;	/* sorted by mailbox_id */
static size_t			 nrecent, caprecent;

/* The floor of a mailbox, created at 0; NULL without memory. */
static struct recent_floor *
recent_floor(int64_t id)
{
	size_t			 lo = 0, hi = nrecent, mid;
	struct recent_floor	*grown;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (recent[mid].mailbox_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nrecent && recent[lo].mailbox_id == id)
		return &recent[lo];
	if (nrecent == caprecent) {
		caprecent = caprecent ? caprecent * 2 : 64;
		if ((grown = reallocarray(recent, caprecent,
		    sizeof(*grown))) == NULL)
			return NULL;
		recent = grown;
	}
	memmove(&recent[lo + 1], &recent[lo], (nrecent - lo) *
	    sizeof(*recent));
	nrecent++;
	recent[lo].mailbox_id = id;
	recent[lo].claimed = 0;
	return &recent[lo];
}

/* Whether uid is \Recent for this view; a read-write view claims it. */
static int
recent_claim(const struct imap_view *v, uint32_t uid)
{
	struct recent_floor	*f = recent_floor(v->mb.id);

	if (f == NULL || uid <= f->claimed)
		return 0;
	if (!v->readonly)
		f->claimed = uid;
	return 1;
}

/* --- the view ------------------------------------------------------------- */

/* Appends a message to the view; returns 0 or -1 without memory. */
static int
view_append(struct imap_view *v, uint32_t uid)
{
	if (uid <= imap_view_last_uid(v))
		return 0;	/* known already: no \Recent claimed again */
	return imap_view_append(v, uid, recent_claim(v, uid));
}

void
imap_view_own_change(struct imap_view *v, uint64_t modseq, uint32_t uid)
{
	struct imap_view_own	*grown;
	size_t			 cap;

	/* a failed group commit gives its MODSEQs out again: unsorted */
	if (v->nown > 0 && modseq <= v->own[v->nown - 1].modseq)
		v->own_unsorted = 1;
	if (v->nown == v->capown) {
		cap = v->capown ? v->capown * 2 : 16;
		if ((grown = reallocarray(v->own, cap, sizeof(*grown))) ==
		    NULL)
			return;		/* the change is reported twice */
		v->own = grown;
		v->capown = cap;
	}
	v->own[v->nown].modseq = modseq;
	v->own[v->nown++].uid = uid;
}

/* Whether this session made the change with this MODSEQ (own is sorted). */
static int
view_is_own(const struct imap_view *v, uint64_t modseq)
{
	size_t	 lo = 0, hi = v->nown, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (v->own[mid].modseq == modseq)
			return 1;
		if (v->own[mid].modseq < modseq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/*
 * Whether every change up to `modseq` since the view's is this
 * session's own: each MODSEQ between is one of own (distinct, sorted),
 * so no other change, delivery or expunge came between.  Then nothing
 * needs to be read back: after a STORE 1:* on 100,000 messages, that
 * read was 100,000 rows in one iteration of the loop.
 */
static int
view_all_own(const struct imap_view *v, uint64_t modseq)
{
	return !v->own_unsorted && v->nown > 0 &&
	    v->own[0].modseq > v->modseq &&
	    v->own[v->nown - 1].modseq == modseq &&
	    modseq - v->modseq == v->nown;
}

/*
 * An untagged FETCH of the flags of message seq of the view, after the
 * FLAGS that announce a keyword new to the view.
 */
static void
view_put_flags(struct session *s, struct imap_view *v, uint32_t seq,
    const struct store_message *m)
{
	imap_view_keywords(s, v, m->keywords);
	session_printf(s, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
	imap_put_flags(s, m->flags, m->keywords,
	    imap_view_is_recent(v, m->uid));
	if (imap_of(s)->condstore)
		session_printf(s, " MODSEQ (%llu)",
		    (unsigned long long)m->modseq);
	session_printf(s, ")\r\n");
}

struct sync_ctx {
	struct session		*s;
	struct imap_view	*v;
	uint32_t		 old_count;
	uint32_t		 old_recent;
	uint32_t		 cursor;	/* sync_present()'s, in the view */
	int			 error;
};

/* A tombstone newer than the view: mark the message gone. */
static int
sync_expunged(void *arg, uint32_t uid)
{
	struct sync_ctx	*c = arg;

	if (imap_view_mark_gone(c->v, uid, 1) < 0)
		return c->error = 1;
	return 0;
}

/*
 * A message still there: the view's messages below it went.  cursor
 * is the sequence number of the view's next message not yet looked at.
 */
static int
sync_present(void *arg, const struct store_message *m)
{
	struct sync_ctx		*c = arg;
	uint32_t		 uid;

	for (; (uid = imap_view_uid(c->v, c->cursor)) != 0 && uid < m->uid;
	    c->cursor++)
		if (sync_expunged(c, uid) != 0)
			return 1;
	if (uid == m->uid)
		c->cursor++;
	return 0;
}

/*
 * Marks what left the mailbox since the view: from the tombstones newer
 * than it, or, when the purge took some of those (the session sat
 * selected for longer than --tombstone-retention), every message of the
 * view the mailbox no longer holds.  Returns 0 or -1.
 */
static int
sync_gone(struct session *s, struct sync_ctx *c)
{
	struct store		*st = s->srv->store;
	struct imap_view	*v = c->v;

	uint32_t		 uid;

	if (v->modseq >= store_tombs_purged(st, v->mb.uniqueid))
		return store_expunged_since(st, v->mb.uniqueid, v->modseq,
		    sync_expunged, c) == STORE_OK && !c->error ? 0 : -1;
	c->cursor = 1;
	if (store_message_foreach(st, v->mb.id, sync_present, c) != STORE_OK)
		return -1;
	for (; (uid = imap_view_uid(v, c->cursor)) != 0; c->cursor++)
		if (sync_expunged(c, uid) != 0)
			return -1;
	return c->error ? -1 : 0;
}

/* A row newer than the view: a new message or a flag change. */
static int
sync_changed(void *arg, const struct store_message *m)
{
	struct sync_ctx		*c = arg;
	struct imap_view	*v = c->v;
	uint32_t		 seq;

	if (m->uid >= v->uidnext || (seq = imap_view_seq(v, m->uid)) == 0) {
		if (view_append(v, m->uid) < 0)
			return c->error = 1;
		imap_view_keywords(c->s, v, m->keywords);
		imap_context_changed(v, m->uid);
		return 0;
	}
	if (imap_view_is_gone(v, m->uid))
		return 0;
	/* an updating search hears of this session's own changes too */
	imap_context_changed(v, m->uid);
	if (view_is_own(v, m->modseq))
		return 0;
	view_put_flags(c->s, v, seq, m);
	return 0;
}

/*
 * Tells the client message uid's flags as the store has them, after
 * this session's change to them was rolled back; when they cannot be
 * read now, keeps uid in the view's reread for the next imap_sync().  A
 * message expunged since is told of as one.
 */
static void
view_reread(struct sync_ctx *c, uint32_t uid)
{
	struct store_message	 m;
	enum store_err		 err;

	err = store_message_get(c->s->srv->store, c->v->mb.id, uid, &m);
	if (err == STORE_OK)
		(void)sync_changed(c, &m);
	if (err == STORE_OK || err == STORE_NOTFOUND)
		(void)imap_uidset_del(&c->v->reread, uid);
	else
		(void)imap_uidset_add(&c->v->reread, uid);
}

/* view_reread() for each message the last try could not read. */
static void
view_reread_pending(struct session *s, struct imap_view *v)
{
	struct imap_uidset	 pending = v->reread;
	struct sync_ctx		 c;
	size_t			 i;
	uint32_t		 uid;

	memset(&v->reread, 0, sizeof(v->reread));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.v = v;
	for (i = 0; i < pending.n; i++)
		for (uid = pending.r[i].lo;; uid++) {
			view_reread(&c, uid);
			if (uid == pending.r[i].hi)
				break;
		}
	imap_uidset_free(&pending);
}

void
imap_sync(struct session *s, int allow_expunge)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_view	*v = ims->view;
	struct sync_ctx		 c;
	uint32_t		 uidnext;
	uint64_t		 modseq;
	enum store_err		 err;
	size_t			 i;

	err = store_mailbox_state(s->srv->store, &v->mb, &uidnext, &modseq);
	if (err == STORE_NOTFOUND) {
		session_printf(s, IMAP_BYE_MAILBOX_GONE);
		session_close(s);
		return;
	}
	if (err != STORE_OK)
		return;
	if (v->reread.n > 0)
		view_reread_pending(s, v);
	if (uidnext == v->uidnext && view_all_own(v, modseq)) {
		/* an updating search hears of this session's own changes */
		for (i = 0; i < v->nown; i++)
			imap_context_changed(v, v->own[i].uid);
		v->modseq = modseq;
		v->nown = 0;
		v->own_unsorted = 0;
	} else if (modseq > v->modseq || uidnext != v->uidnext) {
		memset(&c, 0, sizeof(c));
		c.s = s;
		c.v = v;
		if (sync_gone(s, &c) < 0)
			return;		/* try again at the next point */
		/*
		 * Where expunges may be told they go first, so that EXISTS
		 * counts what is left plus what is new: after a MOVE into
		 * the selected mailbox, "* 1 EXPUNGE" then "* 1 EXISTS", as
		 * Dovecot (and imaptest's model of a client) has it.
		 */
		if (allow_expunge && v->gone > 0)
			imap_view_drop_gone(s, v, 0);
		c.old_count = v->count;
		c.old_recent = v->recent;
		if (store_message_changes(s->srv->store, v->mb.id, v->modseq,
		    sync_changed, &c) != STORE_OK || c.error)
			return;		/* try again at the next point */
		if (v->count != c.old_count)
			session_printf(s, "* %u EXISTS\r\n", v->count);
		if (v->recent != c.old_recent && !imap_of(s)->rev2)
			session_printf(s, "* %u RECENT\r\n", v->recent);
		v->modseq = modseq;
		v->uidnext = uidnext;
		v->nown = 0;
		v->own_unsorted = 0;
	}
	if (allow_expunge && v->gone > 0)
		imap_view_drop_gone(s, v, 0);
	/* after EXISTS: ADDTO may name the new messages (RFC 5267 4.3.3) */
	if (!imap_context_run(s))
		s->resume = 1;
}

void
imap_view_rolled_back(struct session *s)
{
	struct imap_view	*v = imap_of(s)->view;
	struct sync_ctx		 c;
	size_t			 i, n = v->nown;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.v = v;
	v->nown = 0;		/* sync_changed() skips none of them now */
	v->own_unsorted = 0;
	for (i = 0; i < n; i++)
		view_reread(&c, v->own[i].uid);
}

/* --- SELECT, EXAMINE, CLOSE, UNSELECT ------------------------------------ */

struct load_ctx {
	struct imap_view	*v;
	uint32_t		 first_unseen;	/* sequence number, or 0 */
	uint32_t		 after;		/* this phase's UIDs up to here
						   done */
	int			 error;
};

/*
 * Adds keywords to the view's set, as many as fit.  Returns whether one
 * was new.
 */
static int
view_add_keywords(struct imap_view *v, const char *kw)
{
	char	 word[STORE_MAX_KEYWORDS + 2];
	size_t	 n, have;
	int	 grew = 0;

	while (*kw != '\0') {
		n = strcspn(kw, " ");
		snprintf(word, sizeof(word), " %.*s ", (int)n, kw);
		have = strlen(v->keywords);
		if (strstr(v->keywords, word) == NULL &&
		    have + n + 2 < sizeof(v->keywords)) {
			memcpy(v->keywords + have - (have > 0), word, n + 3);
			grew = 1;
		}
		kw += n;
		kw += strspn(kw, " ");
	}
	return grew;
}

/* "* FLAGS" and "* OK [PERMANENTFLAGS]" for the view's flags. */
static void
put_flags_responses(struct session *s, const struct imap_view *v)
{
	size_t	 n = strlen(v->keywords);

	session_printf(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft%.*s)\r\n", n > 0 ? (int)n - 1 : 0, v->keywords);
	if (v->readonly)
		session_printf(s, "* OK [PERMANENTFLAGS ()] Read-only "
		    "mailbox\r\n");
	else
		session_printf(s, "* OK [PERMANENTFLAGS (\\Answered \\Flagged "
		    "\\Deleted \\Seen \\Draft%.*s \\*)] Flags permitted\r\n",
		    n > 0 ? (int)n - 1 : 0, v->keywords);
}

void
imap_condstore_enable(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (!ims->condstore && ims->view != NULL)
		session_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		    (unsigned long long)ims->view->modseq);
	ims->condstore = 1;
}

void
imap_view_keywords(struct session *s, struct imap_view *v,
    const char *keywords)
{
	if (keywords != NULL && view_add_keywords(v, keywords))
		put_flags_responses(s, v);
}


/* Drops the selected mailbox, if any: "[CLOSED]" as RFC 7162 3.2.11. */
static void
unselect(struct session *s, int say_closed)
{
	struct imap_session	*ims = imap_of(s);

	if (ims->view == NULL)
		return;
	imap_view_free(ims->view);
	ims->view = NULL;
	ims->state = IMAP_AUTH;
	if (say_closed)
		session_printf(s, "* OK [CLOSED] Previous mailbox closed\r\n");
}

/*
 * A mailbox's MAILBOXID (RFC 8474 4): "F" and its uniqueid in hex, the
 * same on every node and through renames; a mailbox made again under
 * the name is another one.  out holds MAILBOXID_LEN + 1 bytes.
 */
#define MAILBOXID_LEN	(1 + 2 * MAILBOX_ID_LEN)
static void
mailbox_objectid(const struct store_mailbox *mb, char *out)
{
	out[0] = 'F';
	crypto_hex(mb->uniqueid, MAILBOX_ID_LEN, out + 1);
}

/*
 * The untagged responses of SELECT and EXAMINE (RFC 3501 6.3.1); to an
 * IMAP4rev2 session without RECENT and [UNSEEN], and with the mailbox's
 * LIST response (RFC 9051 6.3.2).  Returns 0, or -1 when the LIST
 * response could not be made.
 */
static int
select_respond(struct session *s, const struct imap_view *v,
    const struct load_ctx *c)
{
	char	 id[MAILBOXID_LEN + 1];
	int	 rev2 = imap_of(s)->rev2;

	put_flags_responses(s, v);
	session_printf(s, "* %u EXISTS\r\n", v->count);
	if (!rev2)
		session_printf(s, "* %u RECENT\r\n", v->recent);
	if (c->first_unseen && !rev2)
		session_printf(s, "* OK [UNSEEN %u] First unseen\r\n",
		    c->first_unseen);
	session_printf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n"
	    "* OK [UIDNEXT %u] Predicted next UID\r\n"
	    "* OK [HIGHESTMODSEQ %llu] Highest\r\n", v->mb.uidvalidity,
	    v->mb.uidnext, (unsigned long long)v->mb.highestmodseq);
	mailbox_objectid(&v->mb, id);
	session_printf(s, "* OK [MAILBOXID (%s)] Ok\r\n", id);
	return rev2 ? imap_list_mailbox(s, v->mb.name) : 0;
}

/* SELECT's and EXAMINE's parameters (RFC 4466, RFC 7162 3.1.8, 3.2.5). */
struct select_params {
	int			 condstore;
	int			 qresync;	/* the QRESYNC parameter given */
	uint64_t		 uidvalidity;
	uint64_t		 modseq;	/* the client's last known */
	struct imap_seqset	 known;		/* its known UIDs (n 0: all) */
};

/*
 * Parses "(uidvalidity modseq [known-uids [seq-match]])"; the sequence
 * match data, a hint, is checked for form only.  Returns 0 or -1.
 */
static int
qresync_parse(const struct imap_arg *a, struct select_params *p)
{
	const char	*t;

	if (a->type != IMAP_ARG_LIST || a->nlist < 2 || a->nlist > 4 ||
	    a->list[0].type != IMAP_ARG_ATOM ||
	    a->list[1].type != IMAP_ARG_ATOM)
		return -1;
	t = a->list[0].str;
	if (imap_parse_uint(&t, UINT32_MAX, &p->uidvalidity) < 0 ||
	    *t != '\0' || p->uidvalidity == 0)
		return -1;
	t = a->list[1].str;
	if (imap_parse_uint(&t, INT64_MAX, &p->modseq) < 0 || *t != '\0' ||
	    p->modseq == 0)
		return -1;
	if (a->nlist > 2 && (a->list[2].type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->list[2].str, &p->known) < 0))
		return -1;
	if (a->nlist > 3 && (a->list[3].type != IMAP_ARG_LIST ||
	    a->list[3].nlist != 2))
		return -1;
	p->qresync = 1;
	return 0;
}

/* Parses the optional parameter list into p; returns 0 or -1. */
static int
select_params_parse(const struct imap_arg *a, struct select_params *p)
{
	size_t	 i;

	if (a->type != IMAP_ARG_LIST || a->nlist == 0)
		return -1;
	for (i = 0; i < a->nlist; i++) {
		if (a->list[i].type != IMAP_ARG_ATOM)
			return -1;
		if (strcasecmp(a->list[i].str, "CONDSTORE") == 0)
			p->condstore = 1;
		else if (strcasecmp(a->list[i].str, "QRESYNC") == 0 &&
		    !p->qresync && i + 1 < a->nlist) {
			if (qresync_parse(&a->list[++i], p) < 0)
				return -1;
		} else
			return -1;
	}
	return 0;
}

/* A message changed since the client's MODSEQ, as a FETCH (RFC 7162). */
static int
qresync_changed(void *arg, const struct store_message *m)
{
	struct sync_ctx	*c = arg;
	uint32_t	 seq = imap_view_seq(c->v, m->uid);

	if (seq != 0)
		view_put_flags(c->s, c->v, seq, m);
	return 0;
}

/*
 * QRESYNC's resynchronisation inside SELECT (RFC 7162 3.2.5.1): what
 * went since the client's MODSEQ, then what changed, when its
 * UIDVALIDITY is still the mailbox's.  Returns 0, or -1 on a store error.
 */
static int
qresync_respond(struct session *s, struct imap_view *v,
    struct select_params *p)
{
	struct sync_ctx	 c;

	if (p->uidvalidity != v->mb.uidvalidity)
		return 0;
	if (p->known.n > 0)
		imap_seqset_resolve(&p->known, v->uidnext > 1 ?
		    v->uidnext - 1 : 1);
	if (imap_vanished_earlier(s, v, p->known.n > 0 ? &p->known : NULL,
	    p->modseq) < 0)
		return -1;
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.v = v;
	return store_message_changes(s->srv->store, v->mb.id, p->modseq,
	    qresync_changed, &c) == STORE_OK ? 0 : -1;
}

/*
 * A SELECT or EXAMINE loading its view in steps: a mailbox of millions
 * of messages takes seconds to read.  The view is the mailbox as at the
 * start (its HIGHESTMODSEQ and UIDNEXT then); a message changed or
 * expunged while the steps run has a higher MODSEQ, so the first update
 * after SELECT reports it, and one delivered meanwhile is above UIDNEXT.
 */
struct select_job {
	struct load_ctx		 c;		/* c.v: the view, owned */
	struct select_params	 p;		/* p.known owned */
	int			 examine;
	uint32_t		 upto;		/* UIDNEXT - 1 at the start */
	size_t			 phase;		/* index in select_phases */
	size_t			 nread;		/* rows the batch gave */
};

static void
select_free(void *arg)
{
	struct select_job	*j = arg;

	imap_view_free(j->c.v);
	imap_seqset_free(&j->p.known);
	free(j);
}

/* The view is loaded: the session has the mailbox selected. */
static void
select_done(struct session *s, struct select_job *j)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_view	*v = j->c.v;

	j->c.v = NULL;
	ims->view = v;
	ims->state = IMAP_SELECTED;
	if (select_respond(s, v, &j->c) < 0 ||
	    (j->p.qresync && qresync_respond(s, v, &j->p) < 0)) {
		unselect(s, 0);
		imap_reply(s, "NO [UNAVAILABLE] Cannot open the mailbox");
		return;
	}
	imap_reply(s, "OK [%s] %s completed", v->readonly ? "READ-ONLY" :
	    "READ-WRITE", j->examine ? "EXAMINE" : "SELECT");
}

/*
 * The view's loading, phase by phase (select_phases), a batch a call:
 * each call returns a store error or STORE_OK, and moves j->phase on
 * when its phase is done.  Each reads the store as it is then, as the
 * steps go; what changes meanwhile has a higher MODSEQ, reported after.
 */

/* The phase is done: the next begins at the mailbox's first UID. */
static void
phase_done(struct select_job *j)
{
	j->phase++;
	j->c.after = 0;
}

/*
 * The next batch of UIDs into the view, read from an index of them
 * alone: no row of the table, no per-message allocation (the view
 * keeps ranges).
 */
static enum store_err
load_uids(struct store *st, struct select_job *j)
{
	uint32_t	 uids[IMAP_STEP_MESSAGES];
	size_t		 n, i;
	enum store_err	 err;

	if ((err = store_message_uids(st, j->c.v->mb.id, j->c.after, j->upto,
	    uids, IMAP_STEP_MESSAGES, &n)) != STORE_OK)
		return err;
	for (i = 0; i < n; i++)
		if (view_append(j->c.v, uids[i]) < 0) {
			j->c.error = 1;
			return STORE_OK;
		}
	if (n < IMAP_STEP_MESSAGES)
		phase_done(j);	/* the rest went meanwhile, if any */
	else
		j->c.after = uids[n - 1];
	return STORE_OK;
}

/* A message with keywords (a store_message_keywords() callback). */
static int
load_keywords_one(void *arg, const struct store_message *m)
{
	struct select_job	*j = arg;

	j->c.after = m->uid;
	j->nread++;
	if (m->keywords != NULL)
		view_add_keywords(j->c.v, m->keywords);
	return 0;
}

/* The keywords of the next batch of the messages that have some. */
static enum store_err
load_keywords(struct store *st, struct select_job *j)
{
	enum store_err	 err;

	j->nread = 0;
	if ((err = store_message_keywords(st, j->c.v->mb.id, j->c.after,
	    j->upto, IMAP_STEP_MESSAGES, load_keywords_one, j)) != STORE_OK)
		return err;
	if (j->nread < IMAP_STEP_MESSAGES)
		phase_done(j);
	return STORE_OK;
}

/*
 * [UNSEEN]: the sequence number of the first unseen message the view
 * holds, from the index of unseen messages (an unseen one the view
 * does not hold came or went since its UIDs were read).
 */
static enum store_err
load_first_unseen(struct store *st, struct select_job *j)
{
	uint32_t	 uids[IMAP_STEP_MESSAGES], seq;
	size_t		 n, i;
	enum store_err	 err;

	if ((err = store_unseen_uids(st, j->c.v->mb.id, j->c.after, uids,
	    IMAP_STEP_MESSAGES, &n)) != STORE_OK)
		return err;
	for (i = 0; i < n && uids[i] <= j->upto; i++)
		if ((seq = imap_view_seq(j->c.v, uids[i])) != 0) {
			j->c.first_unseen = seq;
			break;
		}
	if (i < n || n < IMAP_STEP_MESSAGES)
		phase_done(j);	/* found, past the view, or none left */
	else
		j->c.after = uids[n - 1];
	return STORE_OK;
}

static enum store_err (*const select_phases[])(struct store *,
    struct select_job *) = {
	load_uids,
	load_keywords,
	load_first_unseen,
};
#define SELECT_PHASES	(sizeof(select_phases) / sizeof(select_phases[0]))

/*
 * One step: loads the view for the step's time, inside one read
 * snapshot, then, when it is all loaded, answers.  Returns 1 once the
 * reply is recorded.
 */
static int
select_step(struct session *s, void *arg)
{
	struct select_job	*j = arg;
	struct store		*st = s->srv->store;
	struct imap_step_budget	 b;
	enum store_err		 err = STORE_OK;

	imap_step_begin(&b);
	store_read_begin(st);
	while (j->phase < SELECT_PHASES && err == STORE_OK && !j->c.error &&
	    imap_step_time_left(&b))
		err = select_phases[j->phase](st, j);
	store_read_end(st);
	if (err != STORE_OK || j->c.error) {
		imap_reply(s, "NO [UNAVAILABLE] Cannot open the mailbox");
		return 1;
	}
	if (j->phase < SELECT_PHASES)
		return 0;
	select_done(s, j);
	return 1;
}

/*
 * SELECT or EXAMINE of a mailbox, the parameters parsed (p->known is
 * taken over).  A small mailbox is answered at once, a big one in steps.
 */
static void
select_open(struct session *s, const char *name, int examine,
    struct select_params *p)
{
	struct imap_session	*ims = imap_of(s);
	struct select_job	*j;
	struct imap_view	*v;
	enum store_err		 err;

	unselect(s, 1);
	if (p->condstore || p->qresync)
		ims->condstore = 1;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->c.v = v = calloc(1, sizeof(*v))) == NULL) {
		free(j);
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	j->p = *p;
	memset(&p->known, 0, sizeof(p->known));
	j->examine = examine;
	v->readonly = examine || sync_is_replica();
	if ((err = store_mailbox_get(s->srv->store, ims->user, name,
	    &v->mb)) != STORE_OK) {
		select_free(j);
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX,
		    examine ? "EXAMINE" : "SELECT");
		return;
	}
	v->modseq = v->mb.highestmodseq;
	v->uidnext = v->mb.uidnext;
	j->upto = v->mb.uidnext - 1;
	if (select_step(s, j))
		select_free(j);
	else
		imap_start_steps(s, select_step, select_free, j);
}

/* CLOSE's expunge is done (imap_expunge_deleted()). */
static void
close_done(struct session *s, const struct store_mailbox *mb)
{
	(void)mb;
	unselect(s, 0);
	imap_reply(s, "OK CLOSE completed");
}

void
imap_cmd_select(struct session *s, const struct imap_arg *args, size_t nargs,
    int examine)
{
	struct imap_session	*ims = imap_of(s);
	struct select_params	 p;
	const char		*name;

	memset(&p, 0, sizeof(p));
	if (nargs < 1 || nargs > 2 ||
	    (name = imap_arg_mailbox(s, &args[0])) == NULL ||
	    (nargs == 2 && select_params_parse(&args[1], &p) < 0)) {
		imap_reply(s, "BAD %s wants a mailbox name [(CONDSTORE)] or "
		    "[(QRESYNC (uidvalidity modseq [uids]))]", examine ?
		    "EXAMINE" : "SELECT");
	} else if (p.qresync && !ims->qresync)
		imap_reply(s, "BAD QRESYNC needs ENABLE QRESYNC first");
	else
		select_open(s, name, examine, &p);
	imap_seqset_free(&p.known);
}

/* CLOSE (expunging \Deleted messages silently) and UNSELECT (RFC 3691). */
void
imap_cmd_close(struct session *s, const struct imap_arg *args, size_t nargs,
    int expunge)
{
	struct imap_session	*ims = imap_of(s);

	(void)args;
	if (nargs != 0) {
		imap_reply(s, "BAD %s takes no arguments", expunge ? "CLOSE" :
		    "UNSELECT");
		return;
	}
	if (expunge && !ims->view->readonly)
		imap_expunge_deleted(s, NULL, 1, close_done);
	else {
		unselect(s, 0);
		imap_reply(s, "OK %s completed", expunge ? "CLOSE" :
		    "UNSELECT");
	}
}

/* --- CREATE, DELETE, RENAME, SUBSCRIBE ----------------------------------- */

/*
 * A mailbox name argument for CREATE/RENAME: valid modified UTF-7, and
 * a trailing "/" (the client means to create inferiors) dropped (RFC
 * 3501 6.3.3).
 */
static const char *
name_arg(struct session *s, const struct imap_arg *a, char *buf, size_t size)
{
	const char	*name = imap_arg_mailbox(s, a);
	size_t		 n;

	if (name == NULL || (n = strlen(name)) >= size ||
	    !imap_mutf7_valid(name))
		return NULL;
	memcpy(buf, name, n + 1);
	if (n > 1 && buf[n - 1] == '/')
		buf[n - 1] = '\0';
	return buf;
}

/* Counts a user's mailboxes (a store_mailbox_foreach callback). */
static int
count_mailbox(void *arg, const struct store_mailbox *mb)
{
	(void)mb;
	(*(long *)arg)++;
	return 0;
}

/* Levels of a mailbox name: "a/b/c" has 3. */
static long
name_levels(const char *name)
{
	long	 levels = 1;

	for (; (name = strchr(name, '/')) != NULL; name++)
		levels++;
	return levels;
}

/*
 * Whether name may be made (CREATE, create 1) or given to a mailbox
 * (RENAME, create 0): at most MAILBOX_MAX_DEPTH levels deep, and with the mailboxes
 * CREATE makes above it the user stays within --max-mailboxes (one
 * CREATE of a deep name makes every level).  Otherwise replies NO
 * [LIMIT] (or the store's error, when the mailboxes cannot be counted)
 * and returns 0.
 */
static int
name_allowed(struct session *s, const char *name, int create)
{
	long		 levels = name_levels(name), have = 0;
	enum store_err	 err;

	if (levels > MAILBOX_MAX_DEPTH) {
		imap_reply(s, "NO [LIMIT] Mailbox names are at most %d levels "
		    "deep", MAILBOX_MAX_DEPTH);
		return 0;
	}
	if (create && (err = store_mailbox_foreach(s->srv->store,
	    imap_of(s)->user, count_mailbox, &have)) != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "CREATE");
		return 0;
	}
	if (create && have + levels > s->srv->settings->max_mailboxes) {
		imap_reply(s, "NO [LIMIT] At most %ld mailboxes",
		    s->srv->settings->max_mailboxes);
		return 0;
	}
	return 1;
}

/*
 * Creates name and the superiors it needs ("a" and "a/b" of "a/b/c"), as
 * RFC 3501 6.3.3 says a server should, and fills *made with name's
 * mailbox.  name is changed and restored.  A superior that cannot be
 * looked up fails the CREATE with the store's error (the client tries
 * again): made alone, name would be a mailbox without its superior.
 */
static enum store_err
create_with_superiors(struct session *s, char *name,
    struct store_mailbox *made)
{
	struct store_mailbox	 mb;
	char			*slash;
	enum store_err		 err;

	for (slash = strchr(name, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		/* a look-up that failed is no superior that is there */
		err = store_mailbox_get(s->srv->store, imap_of(s)->user, name,
		    &mb);
		if (err == STORE_NOTFOUND)
			err = store_mailbox_create(s->srv->store,
			    imap_of(s)->user, name, NULL, NULL);
		*slash = '/';
		if (err != STORE_OK)
			return err;
	}
	return store_mailbox_create(s->srv->store, imap_of(s)->user, name,
	    NULL, made);
}

void
imap_cmd_create(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	char			 buf[MAILBOX_MAX_NAME + 2];
	char			 id[MAILBOXID_LEN + 1];
	struct store_mailbox	 made;
	const char		*name;
	enum store_err		 err;

	(void)variant;
	if (nargs != 1 || imap_arg_mailbox(s, &args[0]) == NULL) {
		imap_reply(s, "BAD CREATE wants a mailbox name");
		return;
	}
	if ((name = name_arg(s, &args[0], buf, sizeof(buf))) == NULL) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		return;
	}
	if (strcmp(name, "INBOX") == 0)
		err = STORE_EXISTS;
	else if (!name_allowed(s, name, 1))
		return;
	else
		err = create_with_superiors(s, buf, &made);
	if (err != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "CREATE");
		return;
	}
	mailbox_objectid(&made, id);
	imap_reply(s, "OK [MAILBOXID (%s)] CREATE completed", id);
}

/*
 * Deletes mailbox mb, emptied first in steps when it held many messages
 * (imap_expunge_mailbox()), so that what is left is a short step.  A
 * crash between the steps leaves the mailbox with fewer messages, as if
 * the client had expunged them, never a half-deleted mailbox.
 */
static void
delete_emptied(struct session *s, const struct store_mailbox *mb)
{
	enum store_err	 err;

	err = store_mailbox_delete(s->srv->store, imap_of(s)->user, mb->name);
	if (err != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "DELETE");
	else
		imap_reply(s, "OK DELETE completed");
}

void
imap_cmd_delete(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_session	*ims = imap_of(s);
	struct store_mailbox	 mb;
	const char		*name;
	enum store_err		 err;

	(void)variant;
	if (nargs != 1 || (name = imap_arg_mailbox(s, &args[0])) == NULL) {
		imap_reply(s, "BAD DELETE wants a mailbox name");
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		imap_reply(s, "NO [CANNOT] INBOX cannot be deleted");
		return;
	}
	err = store_mailbox_get(s->srv->store, ims->user, name, &mb);
	if (err == STORE_OK && ims->view != NULL && ims->view->mb.id == mb.id)
		unselect(s, 1);
	/* a level above mailboxes, \Noselect: RFC 9051 6.3.4 */
	if (err == STORE_NOTFOUND && imap_list_has_children(s, name) == 1)
		imap_reply(s, "NO [HASCHILDREN] Not a mailbox: only the "
		    "mailboxes below it can be deleted");
	else if (err != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "DELETE");
	else if (mb.messages > IMAP_STEP_MESSAGES)
		imap_expunge_mailbox(s, &mb, delete_emptied);
	else
		delete_emptied(s, &mb);
}

/*
 * The session renamed its own selected mailbox, or one above it: the
 * view takes the new name, so that the session's checks still know it.
 * Renaming INBOX moves its messages and leaves INBOX where it was.
 */
static void
view_follow_rename(struct imap_view *v, const char *from, const char *to)
{
	char	 name[sizeof(v->mb.name)];
	size_t	 n = strlen(from);

	if (v == NULL || strcmp(from, "INBOX") == 0 ||
	    strncmp(v->mb.name, from, n) != 0 ||
	    (v->mb.name[n] != '\0' && v->mb.name[n] != '/'))
		return;
	if ((size_t)snprintf(name, sizeof(name), "%s%s", to,
	    v->mb.name + n) < sizeof(name))
		memcpy(v->mb.name, name, sizeof(name));
}

void
imap_cmd_rename(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	char		 buf[MAILBOX_MAX_NAME + 2];
	const char	*from, *to;
	enum store_err	 err;

	(void)variant;
	if (nargs != 2 || (from = imap_arg_mailbox(s, &args[0])) == NULL ||
	    imap_arg_mailbox(s, &args[1]) == NULL) {
		imap_reply(s, "BAD RENAME wants two mailbox names");
		return;
	}
	if ((to = name_arg(s, &args[1], buf, sizeof(buf))) == NULL) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		return;
	}
	if (!name_allowed(s, to, 0))
		return;
	err = store_mailbox_rename(s->srv->store, imap_of(s)->user, from, to);
	if (err == STORE_INVALID && strcmp(to, "INBOX") == 0)
		err = STORE_EXISTS;
	if (err != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "RENAME");
	else {
		view_follow_rename(imap_of(s)->view, from, to);
		imap_reply(s, "OK RENAME completed");
	}
}

void
imap_cmd_subscribe(struct session *s, const struct imap_arg *args,
    size_t nargs, int subscribe)
{
	const char	*name;
	enum store_err	 err;

	if (nargs != 1 || (name = imap_arg_mailbox(s, &args[0])) == NULL) {
		imap_reply(s, "BAD %s wants a mailbox name", subscribe ?
		    "SUBSCRIBE" : "UNSUBSCRIBE");
		return;
	}
	err = store_mailbox_subscribe(s->srv->store, imap_of(s)->user, name,
	    subscribe);
	if (err != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX,
		    subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
	else
		imap_reply(s, "OK %s completed", subscribe ? "SUBSCRIBE" :
		    "UNSUBSCRIBE");
}

/* --- STATUS ------------------------------------------------------------ */

static const struct {
	const char	*name;
	unsigned	 bit;
} status_names[] = {
	{ "MESSAGES", STATUS_MESSAGES },
	{ "RECENT", STATUS_RECENT },
	{ "UIDNEXT", STATUS_UIDNEXT },
	{ "UIDVALIDITY", STATUS_UIDVALIDITY },
	{ "UNSEEN", STATUS_UNSEEN },
	{ "HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ },
	{ "SIZE", STATUS_SIZE },
	{ "DELETED", STATUS_DELETED },
	{ "MAILBOXID", STATUS_MAILBOXID },	/* last: no number */
};

#define NSTATUS	(sizeof(status_names) / sizeof(*status_names))

int
imap_status_items(const struct imap_arg *list, int rev2, unsigned *items)
{
	size_t	 i, k;

	*items = 0;
	if (list->type != IMAP_ARG_LIST || list->nlist == 0)
		return -1;
	for (i = 0; i < list->nlist; i++) {
		if (list->list[i].type != IMAP_ARG_ATOM)
			return -1;
		for (k = 0; k < NSTATUS; k++)
			if (strcasecmp(list->list[i].str,
			    status_names[k].name) == 0)
				break;
		/* RFC 9051 has no \Recent, so no RECENT item */
		if (k == NSTATUS || (rev2 && status_names[k].bit ==
		    STATUS_RECENT))
			return -1;
		*items |= status_names[k].bit;
	}
	return 0;
}

/*
 * The STATUS response for mailbox mb: its counters are the store's, kept
 * with every change; \Recent is the messages above the floor claimed by
 * the session that has it selected, counted by UID range; \Deleted is
 * counted in the index of those messages.
 */
int
imap_status_respond(struct session *s, const struct store_mailbox *mb,
    unsigned items)
{
	struct store		*st = s->srv->store;
	struct recent_floor	*f;
	uint64_t		 v[NSTATUS];
	uint32_t		 recents = 0, deleted = 0;
	const char		*sep = "";
	char			 id[MAILBOXID_LEN + 1];
	size_t			 k;

	f = recent_floor(mb->id);
	if ((items & STATUS_RECENT) && store_message_count_above(st, mb->id,
	    f ? f->claimed : 0, &recents) != STORE_OK)
		return -1;
	if ((items & STATUS_DELETED) && store_message_count_deleted(st,
	    mb->id, &deleted) != STORE_OK)
		return -1;
	v[0] = mb->messages;
	v[1] = recents;
	v[2] = mb->uidnext;
	v[3] = mb->uidvalidity;
	v[4] = mb->unseen;
	v[5] = mb->highestmodseq;
	v[6] = mb->bytes;
	v[7] = deleted;
	session_printf(s, "* STATUS ");
	imap_put_mailbox(s, mb->name);
	session_printf(s, " (");
	for (k = 0; k + 1 < NSTATUS; k++) {
		if ((items & status_names[k].bit) == 0)
			continue;
		session_printf(s, "%s%s %llu", sep, status_names[k].name,
		    (unsigned long long)v[k]);
		sep = " ";
	}
	mailbox_objectid(mb, id);
	if (items & STATUS_MAILBOXID)
		session_printf(s, "%sMAILBOXID (%s)", sep, id);
	session_printf(s, ")\r\n");
	return 0;
}

void
imap_cmd_status(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_session	*ims = imap_of(s);
	struct store_mailbox	 mb;
	const char		*name;
	unsigned		 items;
	enum store_err		 err;

	(void)variant;
	if (nargs != 2 || (name = imap_arg_mailbox(s, &args[0])) == NULL ||
	    imap_status_items(&args[1], ims->rev2, &items) < 0) {
		imap_reply(s, "BAD STATUS wants a mailbox and a list of items");
		return;
	}
	if ((err = store_mailbox_get(s->srv->store, ims->user, name, &mb)) !=
	    STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX, "STATUS");
		return;
	}
	/* RFC 7162 3.1: asking for HIGHESTMODSEQ turns CONDSTORE on. */
	if (items & STATUS_HIGHESTMODSEQ)
		imap_condstore_enable(s);
	if (imap_status_respond(s, &mb, items) < 0)
		imap_reply(s, "NO [UNAVAILABLE] STATUS failed");
	else
		imap_reply(s, "OK STATUS completed");
}
