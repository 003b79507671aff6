/*
 * conflicts.c — `mailrepd conflicts list|show|resolve`: the GUID
 * conflicts a replica recorded (DESIGN.md, "A conflict"), both copies
 * side by side, and renumbering one on request.
 *
 * These read and write the store directly, so they work on a running or
 * a stopped node; a running replica picks a resolve request up within
 * SYNC_STATUS_INTERVAL seconds and sends its copy to the master.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "conflicts.h"
#include "control.h"
#include "crypto.h"
#include "json.h"
#include "settings.h"
#include "store.h"

static const char *const state_names[] = {
	[CONFLICT_OPEN] = "open",
	[CONFLICT_RESOLVED] = "resolved",
	[CONFLICT_REQUESTED] = "resolving",
};

static const char *
state_name(int state)
{
	return state >= 0 && state <= CONFLICT_REQUESTED ?
	    state_names[state] : "?";
}

struct list_ctx {
	int	 json;
	int	 n;
};

static int
list_one(void *arg, const struct store_conflict *k)
{
	struct list_ctx	*x = arg;
	char		 l[GUID_HEX_LEN + 1], m[GUID_HEX_LEN + 1];
	char		 when[ADMIN_UTC_LEN];

	crypto_hex(k->local_guid, GUID_LEN, l);
	crypto_hex(k->master_guid, GUID_LEN, m);
	admin_utc(k->time, when);
	if (!x->json) {
		printf("%-5lld %s %-9s %s %s uid=%u local=%.16s master=%.16s "
		    "%s\n", (long long)k->id, when, state_name(k->state),
		    k->user, k->mailbox_name, k->uid, l, m, k->op);
		return 0;
	}
	printf("%s{\"id\":%lld,\"time\":\"%s\",\"state\":\"%s\",\"user\":",
	    x->n++ ? "," : "", (long long)k->id, when, state_name(k->state));
	json_str(stdout, k->user);
	printf(",\"mailbox\":");
	json_str(stdout, k->mailbox_name);
	printf(",\"uid\":%u,\"local_guid\":\"%s\",\"master_guid\":\"%s\","
	    "\"op\":\"%s\"}", k->uid, l, m, k->op);
	return 0;
}

struct find_ctx {
	int64_t			 id;
	int			 found;
	struct store_conflict	 k;
};

static int
find_one(void *arg, const struct store_conflict *k)
{
	struct find_ctx	*x = arg;

	if (k->id != x->id)
		return 0;
	x->k = *k;
	x->found = 1;
	return 1;
}

/* Prints both copies' main header fields and sizes in two columns. */
static void
show_pair(struct store *st, const struct store_conflict *k)
{
	static const char *const fields[] = {
		"Date", "From", "To", "Subject", "Message-ID",
	};
	struct store_meta	 meta[2];
	int			 have[2];
	char			 hex[2][GUID_HEX_LEN + 1], a[80], b[80];
	size_t			 i;

	crypto_hex(k->local_guid, GUID_LEN, hex[0]);
	crypto_hex(k->master_guid, GUID_LEN, hex[1]);
	have[0] = store_message_meta(st, k->local_guid, STORE_META_SECTIONS,
	    &meta[0]) == STORE_OK;
	have[1] = store_message_meta(st, k->master_guid, STORE_META_SECTIONS,
	    &meta[1]) == STORE_OK;
	printf("conflict %lld (%s): user %s, mailbox %s, uid %u, %s\n\n",
	    (long long)k->id, state_name(k->state), k->user, k->mailbox_name,
	    k->uid, k->op);
	printf("%-12s %-40s %s\n", "", "local copy (kept here)",
	    "master's message");
	printf("%-12s %-40.16s %.16s\n", "guid", hex[0], hex[1]);
	snprintf(a, sizeof(a), "%llu bytes", have[0] ?
	    (unsigned long long)meta[0].size : 0ULL);
	snprintf(b, sizeof(b), "%llu bytes", have[1] ?
	    (unsigned long long)meta[1].size : 0ULL);
	printf("%-12s %-40s %s\n", "size", have[0] ? a : "not here",
	    have[1] ? b : "not stored on this node");
	for (i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
		a[0] = b[0] = '\0';
		if (have[0])
			admin_header_field(&meta[0], fields[i], a, sizeof(a));
		if (have[1])
			admin_header_field(&meta[1], fields[i], b, sizeof(b));
		printf("%-12s %-40.40s %.60s\n", fields[i], a, b);
	}
	if (have[0])
		store_meta_free(&meta[0]);
	if (have[1])
		store_meta_free(&meta[1]);
}

/* show and resolve: the conflict named by pos (a number). */
static int
conflict_by_id(struct store *st, const char *pos, struct find_ctx *x)
{
	char	*end;

	x->id = strtoll(pos, &end, 10);
	x->found = 0;
	if (*pos == '\0' || *end != '\0' || store_conflict_foreach(st,
	    find_one, x) != STORE_OK || !x->found) {
		fprintf(stderr, "mailrepd: no conflict %s (see 'mailrepd "
		    "conflicts list')\n", pos);
		return -1;
	}
	return 0;
}

static int
conflicts_run(struct store *st, char **pos, int npos,
    const struct cmd_option *opts)
{
	struct list_ctx	 l = { opts[0].value != NULL, 0 };
	struct find_ctx	 x;
	const char	*raw = opts[1].value;

	if (npos == 1 && strcmp(pos[0], "list") == 0) {
		if (l.json)
			printf("[");
		if (store_conflict_foreach(st, list_one, &l) != STORE_OK)
			return 1;
		if (l.json)
			printf("]\n");
		return 0;
	}
	if (npos != 2 || conflict_by_id(st, pos[1], &x) < 0)
		return npos == 2 ? EXIT_FAILED : EXIT_USAGE;
	if (strcmp(pos[0], "show") == 0 && raw == NULL) {
		show_pair(st, &x.k);
		return 0;
	}
	if (strcmp(pos[0], "show") == 0 && (strcmp(raw, "local") == 0 ||
	    strcmp(raw, "master") == 0))
		return admin_write_blob(st, strcmp(raw, "local") == 0 ?
		    x.k.local_guid : x.k.master_guid);
	if (strcmp(pos[0], "resolve") == 0) {
		if (store_conflict_set_state(st, x.k.id, CONFLICT_REQUESTED) !=
		    STORE_OK || store_commit(st) != STORE_OK) {
			fprintf(stderr, "mailrepd: conflict %lld is resolved "
			    "already\n", (long long)x.k.id);
			return 1;
		}
		printf("conflict %lld: renumbering requested; the running "
		    "replica sends its copy to the master\n",
		    (long long)x.k.id);
		return 0;
	}
	return EXIT_USAGE;
}

int
conflicts_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "json", 0, "list: one JSON array", NULL },
		{ "raw", 1, "show: write the local or the master's copy as it "
		    "is", NULL },
		{ "help", 0, "show this help", NULL },
	};
	const struct admin_tool tool = {
		"usage: mailrepd conflicts list [--json] --data DIR\n"
		"       mailrepd conflicts show ID [--raw local|master] "
		"--data DIR\n"
		"       mailrepd conflicts resolve ID --data DIR\n\n"
		"The GUID conflicts this replica recorded: the same UID naming "
		"two messages.\nresolve renumbers one: the replica sends its "
		"copy to the master, which\ngives both messages new UIDs "
		"(what --conflict-policy renumber does at once).\n\n",
		opts, 3, conflicts_run
	};

	return admin_tool_main(&tool, argc, argv);
}
