/*
 * guard.c — the mass-delete guard (see guard.h).
 *
 * Counting happens in memory, per process: a restart starts a new
 * window, which errs on the side of applying, but a pause itself is kept
 * in the store and survives restarts.  An operator's --allow-deletes
 * holds for the rest of the window in which it was given.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "guard.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"

/* One user's expunges: in the window so far, and in this batch. */
struct guard_user {
	char	 name[USER_MAX_NAME + 1];
	int64_t	 window, batch;
};

static struct {
	time_t			 start;		/* of the window */
	int64_t			 mailboxes;	/* deletes in the window */
	int64_t			 batch_mailboxes;
	struct guard_user	 users[GUARD_USERS];
	size_t			 nusers;
	uint8_t			 last_mailbox[MAILBOX_ID_LEN];
	char			 last_user[USER_MAX_NAME + 1];
	int			 paused_logged;
} g;

void
guard_batch_start(void)
{
	size_t	 i;

	g.batch_mailboxes = 0;
	for (i = 0; i < g.nusers; i++)
		g.users[i].batch = 0;
	memset(g.last_mailbox, 0, sizeof(g.last_mailbox));
	g.last_user[0] = '\0';
}

/* The tally of user `name`, made when missing (NULL when all taken). */
static struct guard_user *
guard_user(const char *name)
{
	size_t	 i;

	for (i = 0; i < g.nusers; i++)
		if (strcmp(g.users[i].name, name) == 0)
			return &g.users[i];
	if (g.nusers == GUARD_USERS)
		return NULL;
	memset(&g.users[g.nusers], 0, sizeof(g.users[0]));
	snprintf(g.users[g.nusers].name, sizeof(g.users[0].name), "%s", name);
	return &g.users[g.nusers++];
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
	struct store_mailbox	 mb;
	struct guard_user	*u;
	int64_t			 n = 0;

	if (strcmp(r->type, "mailbox.delete") == 0)
		g.batch_mailboxes++;
	else if (strcmp(r->type, "user.del") == 0) {
		(void)store_mailbox_foreach(srv->store, r->user, count_mailbox,
		    &n);
		g.batch_mailboxes += n;
	} else if (strcmp(r->type, "message.expunge") == 0) {
		/* Records of one mailbox come in runs: look its owner up once. */
		if (memcmp(g.last_mailbox, r->mailbox, MAILBOX_ID_LEN) != 0) {
			memcpy(g.last_mailbox, r->mailbox, MAILBOX_ID_LEN);
			if (store_mailbox_by_uniqueid(srv->store, r->mailbox, &mb,
			    g.last_user) != STORE_OK)
				g.last_user[0] = '\0';
		}
		if (g.last_user[0] != '\0' && (u = guard_user(g.last_user)) !=
		    NULL)
			u->batch++;
	}
}

/* Records the pause and says so, once. */
static void
guard_pause(struct server *srv, const char *why)
{
	log_warn("sync.guard.paused", "reason=%s msg=\"not applied; the "
	    "replica keeps its data and waits for 'mailrepd replica resume "
	    "--allow-deletes'\"", log_quote(why));
	if (store_node_set_paused(srv->store, why, 0) != STORE_OK ||
	    store_commit(srv->store) != STORE_OK)
		log_error("sync.guard", "msg=\"cannot record the pause\"");
	g.paused_logged = 1;
}

/* Whether the batch would go past a threshold; *why says which. */
static int
guard_exceeded(struct server *srv, char *why, size_t cap)
{
	const struct settings	*set = srv->settings;
	struct guard_user	*u;
	int64_t			 total, have;
	size_t			 i;

	total = g.mailboxes + g.batch_mailboxes;
	if (g.batch_mailboxes > 0 && total > set->guard_max_mailbox_deletes) {
		snprintf(why, cap, "%lld mailbox deletes within %ld s "
		    "(limit %ld)", (long long)total, set->guard_window,
		    set->guard_max_mailbox_deletes);
		return 1;
	}
	for (i = 0; i < g.nusers; i++) {
		u = &g.users[i];
		if (u->batch == 0 || (total = u->window + u->batch) <
		    GUARD_MIN_EXPUNGES)
			continue;
		/* The share of what the user had when the window began. */
		have = store_user_message_count(srv->store, u->name) +
		    u->window;
		if (total * 100 > have * set->guard_max_expunge_percent) {
			snprintf(why, cap, "%lld of user %s's %lld messages "
			    "expunged within %ld s (limit %ld%%)",
			    (long long)total, u->name, (long long)have,
			    set->guard_window, set->guard_max_expunge_percent);
			return 1;
		}
	}
	return 0;
}

int
guard_batch_allowed(struct server *srv)
{
	struct store_node	 me;
	char			 why[256];
	size_t			 i;

	if (store_node_get(srv->store, &me) != STORE_OK)
		return 0;
	if (srv->now - g.start >= srv->settings->guard_window) {
		/* A new window; an operator's allowance ends with the old. */
		g.start = srv->now;
		g.mailboxes = 0;
		for (i = 0; i < g.nusers; i++)
			g.users[i].window = 0;
		if (me.allow_deletes && store_node_set_paused(srv->store, NULL,
		    0) == STORE_OK)
			me.allow_deletes = 0;
	}
	if (guard_exceeded(srv, why, sizeof(why))) {
		if (!me.allow_deletes) {
			guard_pause(srv, why);
			return 0;
		}
		log_warn("sync.guard.allowed", "reason=%s msg=\"an operator "
		    "allowed these deletes\"", log_quote(why));
	}
	g.mailboxes += g.batch_mailboxes;
	for (i = 0; i < g.nusers; i++)
		g.users[i].window += g.users[i].batch;
	return 1;
}

int
guard_paused(struct server *srv)
{
	struct store_node	 me;

	if (store_node_get(srv->store, &me) != STORE_OK ||
	    me.paused[0] == '\0') {
		if (g.paused_logged)
			log_info("sync.guard.resumed", "allow_deletes=%d",
			    me.allow_deletes);
		g.paused_logged = 0;
		return 0;
	}
	if (!g.paused_logged)
		log_warn("sync.guard.waiting", "reason=%s",
		    log_quote(me.paused));
	g.paused_logged = 1;
	return 1;
}

int
guard_resume_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "allow-deletes", 0, "apply the deletes that paused it", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	struct store_node	 me;
	char			*pos[1];
	int			 npos = 1, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 2, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[1].value != NULL || npos != 1 || strcmp(pos[0],
	    "resume") != 0) {
		fprintf(opts[1].value ? stdout : stderr, "usage: mailrepd "
		    "replica resume [--allow-deletes] --data DIR\n\nA replica "
		    "that the mass-delete guard paused applies again; with\n"
		    "--allow-deletes, the deletes that paused it are applied "
		    "too (for the\nrest of --guard-window).\n\n");
		settings_usage_options(opts[1].value ? stdout : stderr, opts,
		    2);
		settings_free(&set);
		return opts[1].value ? 0 : 2;
	}
	if ((st = admin_open_store(&set, 0)) == NULL)
		rc = EXIT_USAGE;
	else {
		if (store_node_get(st, &me) == STORE_OK && me.paused[0] ==
		    '\0' && opts[0].value == NULL)
			rc = printf("not paused\n") < 0;
		else if (store_node_set_paused(st, NULL,
		    opts[0].value != NULL) == STORE_OK &&
		    store_commit(st) == STORE_OK) {
			printf("resumed%s; a running replica reconnects "
			    "within a second\n", opts[0].value ?
			    ", deletes allowed" : "");
			rc = 0;
		}
		store_close(st);
	}
	settings_free(&set);
	return rc;
}
