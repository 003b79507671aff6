/*
 * guard.c — the mass-delete guard (see guard.h).
 *
 * Counting happens in memory, per process: a restart starts a new
 * window, which errs on the side of applying, but a pause and what it
 * holds are kept in the store and survive restarts.  Each user with a
 * counted delete in the window has a tally; there is no fixed number of
 * them, so no volume of users blinds the guard: a tally exists only for
 * a user this store holds, and the tallies are dropped when the window
 * ends, so they never outnumber the store's users.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "guard.h"
#include "json.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "settings.h"
#include "store.h"
#include "sync.h"

/* One user's counted deletes: in the window so far, and in this batch. */
struct tally {
	char	 name[USER_MAX_NAME + 1];
	int64_t	 window, batch;		/* expunges */
	int64_t	 batch_mailboxes;	/* mailbox deletes in this batch */
	int	 paused;		/* held: counts nothing */
};

static struct {
	time_t		 start;		/* of the window */
	int64_t		 mailboxes;	/* deletes in the window */
	int64_t		 batch_mailboxes;
	struct tally	*users;		/* sorted by name, without case */
	size_t		 nusers, cap;
	uint8_t		 last_mailbox[MAILBOX_ID_LEN];
	char		 last_user[USER_MAX_NAME + 1];
	const char	*rechecking;	/* guard_replay()'s user, or NULL */
	size_t		 npaused;	/* none: nothing is held either */
	int		 lost;		/* a count was lost (no memory, or
					   the store failed) */
} g;

static int
tally_cmp(const void *key, const void *t)
{
	return strcasecmp(key, ((const struct tally *)t)->name);
}

/* The tally of user `name`, NULL when not there. */
static struct tally *
tally_find(const char *name)
{
	return g.nusers == 0 ? NULL : bsearch(name, g.users, g.nusers,
	    sizeof(*g.users), tally_cmp);
}

/* The tally of user `name`, made when missing (NULL: out of memory). */
static struct tally *
tally_get(const char *name)
{
	struct tally	*t, *grown;
	size_t		 i;

	if ((t = tally_find(name)) != NULL)
		return t;
	if (g.nusers == g.cap) {
		if ((grown = reallocarray(g.users, g.cap ? 2 * g.cap : 64,
		    sizeof(*grown))) == NULL)
			return NULL;
		g.users = grown;
		g.cap = g.cap ? 2 * g.cap : 64;
	}
	for (i = 0; i < g.nusers && strcasecmp(g.users[i].name, name) < 0;
	    i++)
		;
	memmove(&g.users[i + 1], &g.users[i], (g.nusers - i) *
	    sizeof(*g.users));
	g.nusers++;
	t = &g.users[i];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* Marks the paused users' tallies (they count nothing while held). */
static int
mark_paused(void *arg, const struct store_pause *p)
{
	struct tally	*t;

	(void)arg;
	g.npaused++;
	if (g.rechecking != NULL && strcasecmp(p->user, g.rechecking) == 0)
		return 0;
	if ((t = tally_get(p->user)) == NULL)
		g.lost = 1;	/* unknown to guard_hold(): apply nothing */
	else
		t->paused = 1;
	return 0;
}

void
guard_batch_start(struct server *srv)
{
	size_t	 i;

	if (srv->now - g.start >= srv->settings->guard_window) {
		g.start = srv->now;
		g.mailboxes = 0;
		g.nusers = 0;
	}
	g.batch_mailboxes = 0;
	g.lost = 0;
	for (i = 0; i < g.nusers; i++) {
		g.users[i].batch = g.users[i].batch_mailboxes = 0;
		g.users[i].paused = 0;
	}
	memset(g.last_mailbox, 0, sizeof(g.last_mailbox));
	g.last_user[0] = '\0';
	g.npaused = 0;
	/* Unread, a paused user's records would apply: none may. */
	if (store_pause_foreach(srv->store, mark_paused, NULL) != STORE_OK)
		g.lost = 1;
}

/*
 * Whose record r is, to *owner: the user it names, or its mailbox's
 * owner here (looked up once per run of one mailbox's records); "" when
 * neither.  Returns 0, or -1 when the look-up failed: an owner unknown
 * is not "nobody's" (its deletes would go uncounted, and a paused
 * user's records applied).
 */
static int
record_owner(struct server *srv, const struct store_replog_rec *r,
    const char **owner)
{
	struct store_mailbox	 mb;
	enum store_err		 err;

	*owner = r->user;
	if (r->user[0] != '\0' || !r->has_mailbox)
		return 0;
	if (memcmp(g.last_mailbox, r->mailbox, MAILBOX_ID_LEN) != 0) {
		err = store_mailbox_by_uniqueid(srv->store, r->mailbox, &mb,
		    g.last_user);
		if (err != STORE_OK && err != STORE_NOTFOUND) {
			memset(g.last_mailbox, 0, MAILBOX_ID_LEN);
			return -1;
		}
		if (err == STORE_NOTFOUND)
			g.last_user[0] = '\0';
		memcpy(g.last_mailbox, r->mailbox, MAILBOX_ID_LEN);
	}
	*owner = g.last_user;
	return 0;
}

static int
count_mailbox(void *arg, const struct store_mailbox *m)
{
	(void)m;
	(*(int64_t *)arg)++;
	return 0;
}

void
guard_batch_add(struct server *srv, const struct store_replog_rec *r)
{
	const struct rec_kind	*kind = rec_kind(r->type);
	struct tally		*t;
	const char		*owner;
	int64_t			 n = 0;

	if (kind->guard == RG_NONE || (kind->guard == RG_EXPUNGE &&
	    !rec_reason_deletes(r->reason)))
		return;
	if (record_owner(srv, r, &owner) < 0 || (kind->guard == RG_USER &&
	    store_mailbox_foreach(srv->store, r->user, count_mailbox, &n) !=
	    STORE_OK)) {
		/* Uncounted, the batch must not apply: it is retried. */
		g.lost = 1;
		return;
	}
	if (kind->guard == RG_MAILBOX)
		n = 1;
	g.batch_mailboxes += n;
	/*
	 * Only a user this store holds gets a tally: a user deleted who
	 * has no mailbox here (none, or not here at all) deletes nothing.
	 */
	if (owner[0] == '\0' || (kind->guard == RG_USER && n == 0))
		return;
	if ((t = tally_get(owner)) == NULL) {
		/* Uncounted, the batch must not apply: it is retried. */
		log_error("sync.guard", "msg=\"out of memory\"");
		g.lost = 1;
		return;
	}
	if (kind->guard == RG_EXPUNGE)
		t->batch++;
	else
		t->batch_mailboxes += n;
}

/* Pauses user for why: recorded in the open transaction, logged. */
static int
pause_user(struct server *srv, struct tally *t, const char *why)
{
	log_warn("sync.guard.paused", "user=%s reason=%s msg=\"this user's "
	    "records are held, not applied; the replica keeps its data and "
	    "waits for 'mailrepd replica resume --allow-deletes'\"",
	    log_quote(t->name), log_quote(why));
	t->paused = 1;
	g.npaused++;
	return store_pause_set(srv->store, t->name, why) == STORE_OK ? 0 : -1;
}

int
guard_batch_check(struct server *srv)
{
	const struct settings	*set = srv->settings;
	struct tally		*t;
	int64_t			 total, have;
	char			 why[256];
	size_t			 i;
	int			 rc = 0;

	if (g.lost)
		return -1;
	total = g.mailboxes + g.batch_mailboxes;
	if (g.batch_mailboxes > 0 && total > set->guard_max_mailbox_deletes) {
		snprintf(why, sizeof(why), "%lld mailbox deletes within %ld s "
		    "(limit %ld)", (long long)total, set->guard_window,
		    set->guard_max_mailbox_deletes);
		for (i = 0; i < g.nusers; i++)
			if (!g.users[i].paused && g.users[i].batch_mailboxes > 0)
				rc |= pause_user(srv, &g.users[i], why);
	}
	for (i = 0; i < g.nusers; i++) {
		t = &g.users[i];
		if (t->paused || t->batch == 0 || (total = t->window +
		    t->batch) < GUARD_MIN_EXPUNGES)
			continue;
		/* The share of what the user had when the window began. */
		if (store_user_message_count(srv->store, t->name, &have) !=
		    STORE_OK)
			return -1;	/* unknown: the batch is retried */
		have += t->window;
		if (total * 100 > have * set->guard_max_expunge_percent) {
			snprintf(why, sizeof(why), "%lld of user %s's %lld "
			    "messages expunged within %ld s (limit %ld%%)",
			    (long long)total, t->name, (long long)have,
			    set->guard_window, set->guard_max_expunge_percent);
			rc |= pause_user(srv, t, why);
		}
	}
	/* What is applied joins the window; what is held counts later. */
	total = g.batch_mailboxes;
	for (i = 0; i < g.nusers; i++)
		if (!g.users[i].paused)
			g.users[i].window += g.users[i].batch;
		else
			total -= g.users[i].batch_mailboxes;
	g.mailboxes += total;
	return rc;
}

int
guard_hold(struct server *srv, const struct store_replog_rec *r,
    const struct store_blob_in *body)
{
	struct tally	*t;
	uint8_t		 enc[GUARD_REC_MAX];
	char		 user[USER_MAX_NAME + 1];
	const char	*owner;
	size_t		 n;
	int		 held;

	/* Records are held only for a paused user. */
	if (g.npaused == 0)
		return 0;
	if (record_owner(srv, r, &owner) < 0)
		return -1;
	snprintf(user, sizeof(user), "%s", owner);
	if (user[0] == '\0' || (t = tally_find(user)) == NULL || !t->paused) {
		/*
		 * A mailbox the user created while held is the user's; not
		 * knowing, the record is neither held nor applied.
		 */
		if (!r->has_mailbox)
			return 0;
		if (store_held_mailbox(srv->store, r->mailbox, user, &held) !=
		    STORE_OK)
			return -1;
		if (!held)
			return 0;
	}
	/* The body is stored beside it: the record says none travels. */
	if ((n = sync_rec_encode(r, 0, 0, enc, sizeof(enc))) == 0 ||
	    store_held_add(srv->store, user, r, enc, n, body) != STORE_OK)
		return -1;
	return 1;
}

/* The first user an operator resumed, and how (state). */
struct resumed {
	char	 user[USER_MAX_NAME + 1];
	int	 state;
};

static int
first_resumed(void *arg, const struct store_pause *p)
{
	struct resumed	*x = arg;

	if (p->state == PAUSE_HOLD)
		return 0;
	snprintf(x->user, sizeof(x->user), "%s", p->user);
	x->state = p->state;
	return 1;
}

/*
 * Reads the held record after id `after` of user into *r; 1 with its
 * id, 0 when there is none, -1 when the store failed or it is unreadable.
 */
static int
held_next(struct store *st, const char *user, int64_t after, int64_t *id,
    struct store_replog_rec *r)
{
	uint8_t		 enc[GUARD_REC_MAX];
	uint64_t	 size;
	size_t		 n;
	int		 has_body;
	enum store_err	 err;

	if ((err = store_held_next(st, user, after, id, enc, sizeof(enc),
	    &n)) == STORE_NOTFOUND)
		return 0;
	if (err != STORE_OK || sync_rec_decode(enc, n, r, &has_body,
	    &size) < 0)
		return -1;
	return 1;
}

/*
 * Counts up to SYNC_BATCH_RECORDS of a user's held records again (plain
 * `replica resume`): 0 when they may be applied, 1 when they pause the
 * user again, -1 on failure.
 */
static int
recheck(struct server *srv, const char *user, struct store_replog_rec *r)
{
	struct tally	*t;
	int64_t		 id = 0;
	int		 i, rc = 1;

	g.rechecking = user;
	guard_batch_start(srv);
	for (i = 0; i < SYNC_BATCH_RECORDS && (rc = held_next(srv->store,
	    user, id, &id, r)) == 1; i++)
		guard_batch_add(srv, r);
	g.rechecking = NULL;
	if (rc < 0 || guard_batch_check(srv) < 0)
		return -1;
	return (t = tally_find(user)) != NULL && t->paused;
}

/*
 * One step of replaying user's held records in one transaction: up to
 * SYNC_BATCH_RECORDS of them, applied and dropped in order; the pause
 * ends with the last.  Returns 1 when more are left, 0 when done (or
 * paused again), -1 on failure (rolled back, logged).
 */
static int
replay_step(struct server *srv, const struct resumed *x,
    struct store_replog_rec *r)
{
	struct store		*st = srv->store;
	struct store_conflict	 k;
	struct tally		*t;
	enum store_err		 err;
	int64_t			 id = 0;
	int			 i, rc = 0, conflict;

	if ((err = store_batch_begin(st)) != STORE_OK)
		return -1;
	if (x->state == PAUSE_RECHECK && (rc = recheck(srv, x->user, r)) != 0) {
		/* Paused again (recorded in this transaction), or failed. */
		if ((err = store_batch_end(st, rc < 0 ? STORE_IO :
		    STORE_OK)) == STORE_OK)
			err = store_commit(st);
		return err == STORE_OK ? 0 : -1;
	}
	for (i = 0; i < SYNC_BATCH_RECORDS && err == STORE_OK &&
	    (rc = held_next(st, x->user, 0, &id, r)) == 1; i++) {
		err = rec_apply(st, r, NULL, &conflict, &k);
		if (err == STORE_NOTFOUND)
			err = STORE_OK;
		if (err == STORE_OK && conflict && store_conflict_add(st,
		    &k) == STORE_OK)
			log_warn("sync.guard.conflict", "user=%s mailbox=%s "
			    "uid=%u op=%s", log_quote(k.user),
			    log_quote(k.mailbox_name), k.uid, k.op);
		if (err == STORE_OK)
			err = store_held_drop(st, id);
	}
	if (err == STORE_OK && rc < 0)
		err = STORE_IO;
	if (err == STORE_OK && rc == 0)
		err = store_pause_clear(st, x->user);
	if ((err = store_batch_end(st, err)) != STORE_OK ||
	    (err = store_commit(st)) != STORE_OK) {
		log_error("sync.guard.replay", "user=%s msg=%s",
		    log_quote(x->user), log_quote(store_strerror(err)));
		return -1;
	}
	if (rc == 1)
		return 1;
	log_info(x->state == PAUSE_ALLOW ? "sync.guard.allowed" :
	    "sync.guard.resumed", "user=%s msg=\"held records applied\"",
	    log_quote(x->user));
	/* An operator allowed these deletes: the window starts afresh. */
	if (x->state == PAUSE_ALLOW && (t = tally_find(x->user)) != NULL)
		t->window = 0;
	return 0;
}

void
guard_replay(struct server *srv)
{
	struct store_replog_rec	*r;
	struct resumed		 x;
	struct timespec		 t0, t;
	long			 ms = 0;

	if (store_txn_open(srv->store))
		return;		/* a batch waits for its commit */
	memset(&x, 0, sizeof(x));
	if (store_pause_foreach(srv->store, first_resumed, &x) != STORE_OK ||
	    x.user[0] == '\0' || (r = malloc(sizeof(*r))) == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms < GUARD_REPLAY_MS && replay_step(srv, &x, r) == 1) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec -
		    t0.tv_nsec) / 1000000;
	}
	free(r);
}

struct status_ctx {
	int	 json;
	int	 n;
};

static const char *const pause_states[] = { "held", "recheck", "allow" };

/* The "paused" summary: every paused user and why. */
static int
status_summary(void *arg, const struct store_pause *p)
{
	struct status_ctx	*x = arg;

	if (x->n++ == 0)
		fputc('"', stdout);
	else
		fputs("; ", stdout);
	json_escape(stdout, p->user, strlen(p->user));
	fputs(": ", stdout);
	json_escape(stdout, p->reason, strlen(p->reason));
	return 0;
}

static int
status_user(void *arg, const struct store_pause *p)
{
	struct status_ctx	*x = arg;
	const char		*state = pause_states[p->state < 0 ||
				    p->state > PAUSE_ALLOW ? 0 : p->state];
	char			 when[ADMIN_UTC_LEN];

	if (!x->json) {
		admin_utc(p->time, when);
		printf("paused user %s held=%lld state=%s since=%s: %s\n",
		    p->user, (long long)p->held, state, when, p->reason);
		return 0;
	}
	printf("%s{\"user\":", x->n++ ? "," : "");
	json_str(stdout, p->user);
	printf(",\"reason\":");
	json_str(stdout, p->reason);
	printf(",\"state\":\"%s\",\"held\":%lld,\"since\":%lld}", state,
	    (long long)p->held, (long long)p->time);
	return 0;
}

int
guard_status(struct store *st, int json)
{
	struct status_ctx	 x = { json, 0 };
	enum store_err		 err;

	if (!json)
		return store_pause_foreach(st, status_user, &x) == STORE_OK ?
		    0 : -1;
	printf("\"paused\":");
	err = store_pause_foreach(st, status_summary, &x);
	printf("%s,\"paused_users\":[", x.n ? "\"" : "null");
	x.n = 0;
	if (err == STORE_OK)
		err = store_pause_foreach(st, status_user, &x);
	printf("],");
	return err == STORE_OK ? 0 : -1;
}

int
guard_resume_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "allow-deletes", 0, "apply the deletes that paused it", NULL },
		{ "user", 1, "resume this user only", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	char			*pos[1];
	int64_t			 n = 0;
	int			 npos = 1, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 3, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	/*
	 * sync_replica_main() runs this for argv[2] "resume" alone, and
	 * settings_parse() refuses a second positional: only --help is
	 * left to answer here.
	 */
	if (opts[2].value != NULL) {
		printf("usage: mailrepd replica resume [--allow-deletes] "
		    "[--user NAME] --data DIR\n\nThe users whose records the "
		    "mass-delete guard holds (all, or NAME) have them\napplied, "
		    "in order: with --allow-deletes all of them, without it "
		    "after\ncounting their deletes again (which may pause them "
		    "again).  A running node\napplies them within a second, a "
		    "stopped one once it runs.\n\n");
		settings_usage_options(stdout, opts, 3);
		settings_free(&set);
		return 0;
	}
	if ((st = admin_open_store(&set, 0)) == NULL)
		rc = EXIT_USAGE;
	else {
		if (store_pause_resume(st, opts[1].value, opts[0].value ?
		    PAUSE_ALLOW : PAUSE_RECHECK, &n) == STORE_OK &&
		    store_commit(st) == STORE_OK) {
			if (n == 0)
				printf("not paused\n");
			else
				printf("resumed %lld user%s%s; their held "
				    "records apply within a second\n",
				    (long long)n, n == 1 ? "" : "s",
				    opts[0].value ? ", deletes allowed" : "");
			rc = 0;
		}
		store_close(st);
	}
	settings_free(&set);
	return rc;
}
