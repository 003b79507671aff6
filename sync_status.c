/*
 * sync_status.c — `mailrepd status` and the `mailrepd replica` commands:
 * what the store knows of replication, printed for people or as JSON.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "guard.h"
#include "json.h"
#include "settings.h"
#include "store.h"
#include "sync.h"

/* --- mailrepd status ---------------------------------------------------------- */

/*
 * The synchronous-replication counters (proto.c): replies released by a
 * replica's ACK, hold timeouts, and replies sent without an ACK.
 */
static const char *const sync_counters[] = { "sync_acked", "sync_timeouts",
    "sync_unreplicated" };
#define NSYNC_COUNTERS	(sizeof(sync_counters) / sizeof(sync_counters[0]))

struct status_ctx {
	int	 json;
	int	 n;
	int64_t	 head;
	int64_t	 first;			/* the log's first record */
	int64_t	 conflicts;		/* open */
	int64_t	 sync[NSYNC_COUNTERS];
	time_t	 now;
};

/*
 * Reads the figures status prints before the lists: 0, or -1 when one
 * cannot be read (never printed as a 0 or a -1 that means "unread").
 */
static int
status_figures(struct store *st, struct status_ctx *x)
{
	size_t	 i;

	if ((x->head = store_replog_head(st)) < 0 ||
	    (x->first = store_replog_first(st)) < 0 ||
	    (x->conflicts = store_conflict_count(st, NULL)) < 0)
		return -1;
	for (i = 0; i < NSYNC_COUNTERS; i++)
		if (store_counter_get(st, sync_counters[i], &x->sync[i]) !=
		    STORE_OK)
			return -1;
	return 0;
}

/*
 * Whether a replica as the store knows it is connected now: the master
 * writes connected replicas every SYNC_STATUS_INTERVAL, so a row older
 * than a few of those is a master that stopped without saying so.
 */
static int
replica_up(const struct store_replica *r, time_t now)
{
	return r->connected && now - r->last_seen <= 3 * SYNC_STATUS_INTERVAL;
}

static int
status_replica(void *arg, const struct store_replica *r)
{
	struct status_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];
	int			 up = replica_up(r, x->now);

	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	if (x->json) {
		/* A replica names itself (--name): escape it. */
		printf("%s{\"name\":", x->n++ ? "," : "");
		json_str(stdout, r->name);
		printf(",\"node_id\":\"%s\",\"acked\":%lld,\"lag\":%lld,"
		    "\"last_seen\":%lld,\"age\":%lld,\"connected\":%s,"
		    "\"reconciling\":%s}", hex, (long long)r->acked,
		    (long long)(x->head - r->acked), (long long)r->last_seen,
		    (long long)(x->now - r->last_seen), up ? "true" : "false",
		    r->reconciling ? "true" : "false");
	} else
		printf("replica %s node=%s acked=%lld lag=%lld records "
		    "last_seen=%llds_ago %s%s\n", r->name, hex,
		    (long long)r->acked, (long long)(x->head - r->acked),
		    (long long)(x->now - r->last_seen),
		    up ? "connected" : "disconnected",
		    r->reconciling ? " reconciling" : "");
	return 0;
}

static int
status_conflict(void *arg, const struct store_conflict *k)
{
	struct status_ctx	*x = arg;
	char			 l[GUID_HEX_LEN + 1], m[GUID_HEX_LEN + 1];

	crypto_hex(k->local_guid, GUID_LEN, l);
	crypto_hex(k->master_guid, GUID_LEN, m);
	if (x->json) {
		printf("%s{\"user\":", x->n++ ? "," : "");
		json_str(stdout, k->user);
		printf(",\"mailbox\":");
		json_str(stdout, k->mailbox_name);
		printf(",\"uid\":%u,\"local_guid\":\"%s\",\"master_guid\":"
		    "\"%s\",\"op\":\"%s\"}", k->uid, l, m, k->op);
	} else
		printf("conflict mailbox=%s uid=%u local_guid=%s "
		    "master_guid=%s user=%s\n", k->mailbox_name, k->uid, l, m,
		    k->user);
	return 0;
}

/*
 * The store's size: rows of the tables that grow, the database and its
 * WAL in bytes (a count is a scan: fine for a command, not for the loop).
 */
static int
status_sizes(struct store *st, int json)
{
	struct store_sizes	 z;
	int			 i;

	if (store_sizes(st, &z) != STORE_OK)
		return -1;
	if (json) {
		printf("\"db_bytes\":%lld,\"wal_bytes\":%lld,\"tables\":{",
		    (long long)z.db_bytes, (long long)z.wal_bytes);
		for (i = 0; i < STORE_SIZE_TABLES; i++)
			printf("%s\"%s\":%lld", i ? "," : "", z.tables[i].name,
			    (long long)z.tables[i].rows);
		printf("},");
		return 0;
	}
	printf("store db %lld bytes wal %lld bytes\n", (long long)z.db_bytes,
	    (long long)z.wal_bytes);
	for (i = 0; i < STORE_SIZE_TABLES; i++)
		printf("table %s %lld rows\n", z.tables[i].name,
		    (long long)z.tables[i].rows);
	return 0;
}

int
sync_status(int argc, char **argv)
{
	struct cmd_option	 opts[] = {
		{ "json", 0, "print one JSON object", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	struct store_node	 me;
	struct status_ctx	 x;
	char			 id[NODE_ID_LEN * 2 + 1], ep[EPOCH_LEN * 2 + 1];
	char			 mid[NODE_ID_LEN * 2 + 1], mep[EPOCH_LEN * 2 + 1];
	int			 npos = 0, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 2, NULL, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[1].value != NULL) {
		printf("usage: mailrepd status [--json] --data DIR\n\nRole, "
		    "node id, log head, replicas and their lag; on a replica "
		    "its master,\napplied position and conflicts; the rows of "
		    "the tables that grow, the\nsizes of the database and its "
		    "WAL.  Works on a running or stopped node.\n\n");
		settings_usage_options(stdout, opts, 2);
		settings_free(&set);
		return 0;
	}
	memset(&x, 0, sizeof(x));
	x.json = opts[0].value != NULL;
	x.now = time(NULL);
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	if (store_node_get(st, &me) != STORE_OK || status_figures(st, &x) < 0)
		goto unread;
	crypto_hex(me.node_id, NODE_ID_LEN, id);
	crypto_hex(me.epoch, EPOCH_LEN, ep);
	crypto_hex(me.master_id, NODE_ID_LEN, mid);
	crypto_hex(me.master_epoch, EPOCH_LEN, mep);
	if (x.json) {
		printf("{\"role\":\"%s\",\"node_id\":\"%s\",\"epoch\":\"%s\","
		    "\"log_head\":%lld,\"log_first\":%lld,", me.role, id, ep,
		    (long long)x.head, (long long)x.first);
		if (me.has_master)
			printf("\"master\":{\"node_id\":\"%s\",\"epoch\":\"%s\","
			    "\"applied\":%lld},", mid, mep,
			    (long long)me.applied);
		printf("\"sync\":{\"acked\":%lld,\"timeouts\":%lld,"
		    "\"unreplicated\":%lld},", (long long)x.sync[0],
		    (long long)x.sync[1], (long long)x.sync[2]);
		if (guard_status(st, 1) < 0 ||
		    control_status_node(st, &me, 1) < 0 ||
		    status_sizes(st, 1) < 0)
			goto unread;
		printf("\"conflicts_open\":%lld,\"replicas\":[",
		    (long long)x.conflicts);
		if (store_replica_foreach(st, status_replica, &x) != STORE_OK)
			goto unread;
		printf("],\"conflicts\":[");
		x.n = 0;
		if (store_conflict_foreach(st, status_conflict, &x) !=
		    STORE_OK)
			goto unread;
		printf("]}\n");
	} else {
		printf("role %s\nnode %s\nepoch %s\nlog head %lld\n", me.role,
		    id, ep, (long long)x.head);
		if (me.has_master)
			printf("master %s epoch %s applied %lld\n", mid, mep,
			    (long long)me.applied);
		printf("sync acked %lld timeouts %lld unreplicated %lld\n",
		    (long long)x.sync[0], (long long)x.sync[1],
		    (long long)x.sync[2]);
		if (guard_status(st, 0) < 0 ||
		    control_status_node(st, &me, 0) < 0 ||
		    status_sizes(st, 0) < 0)
			goto unread;
		printf("conflicts %lld open\n", (long long)x.conflicts);
		if (store_replica_foreach(st, status_replica, &x) != STORE_OK ||
		    store_conflict_foreach(st, status_conflict, &x) !=
		    STORE_OK)
			goto unread;
	}
	rc = 0;
	goto out;
unread:
	fflush(stdout);
	fprintf(stderr, "mailrepd: status: cannot read the store: what was "
	    "printed is not the whole status\n");
out:
	store_close(st);
	settings_free(&set);
	return rc;
}

/* --- mailrepd replica forget ---------------------------------------------- */

/* The replicas that `forget` names (by name, or by node id in hex). */
struct forget_ctx {
	const char		*which;
	int			 matches;
	struct store_replica	 r;
};

static int
forget_match(void *arg, const struct store_replica *r)
{
	struct forget_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];

	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	if (strcmp(r->name, x->which) == 0 ||
	    strcasecmp(hex, x->which) == 0) {
		x->matches++;
		x->r = *r;
	}
	return 0;
}

/*
 * `mailrepd replica forget NAME|NODEID`: a replica gone for good (rebuilt
 * under a new node id, or retired) stops counting: a drain no longer
 * waits for it and the log is purged past it.  A connected replica is
 * not forgotten (it would be known again at once).  Works on a running
 * or stopped node.
 */
static int
replica_forget(int argc, char **argv)
{
	struct cmd_option	 opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	struct forget_ctx	 x;
	char			*pos[2], hex[NODE_ID_LEN * 2 + 1];
	int			 npos = 2, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 1, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[0].value != NULL || npos != 2) {
		fprintf(opts[0].value ? stdout : stderr, "usage: mailrepd "
		    "replica forget NAME|NODEID --data DIR\n\nThe master "
		    "forgets a replica that is gone for good (see `mailrepd "
		    "status`):\na drain no longer waits for it and the log is "
		    "purged past it.  A\nreplica that comes back is known again "
		    "(reconciled once the log\nis purged past it).  Not for a "
		    "connected replica.\n\n");
		settings_usage_options(opts[0].value ? stdout : stderr, opts,
		    1);
		settings_free(&set);
		return opts[0].value ? 0 : 2;
	}
	memset(&x, 0, sizeof(x));
	x.which = pos[1];
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return 1;
	}
	if (store_replica_foreach(st, forget_match, &x) != STORE_OK)
		fprintf(stderr, "mailrepd replica forget: cannot read the "
		    "replicas\n");
	else if (x.matches == 0)
		fprintf(stderr, "mailrepd replica forget: no replica '%s' "
		    "(see mailrepd status)\n", x.which);
	else if (x.matches > 1)
		fprintf(stderr, "mailrepd replica forget: %d replicas are "
		    "named '%s': give the node id\n", x.matches, x.which);
	else if (replica_up(&x.r, time(NULL)))
		fprintf(stderr, "mailrepd replica forget: replica '%s' is "
		    "connected: stop it first\n", x.which);
	else if (store_replica_forget(st, x.r.node_id) != STORE_OK ||
	    store_commit(st) != STORE_OK)
		fprintf(stderr, "mailrepd replica forget: cannot update the "
		    "store\n");
	else {
		crypto_hex(x.r.node_id, NODE_ID_LEN, hex);
		printf("forgot replica %s node %s (acked %lld)\n", x.r.name,
		    hex, (long long)x.r.acked);
		rc = 0;
	}
	store_close(st);
	settings_free(&set);
	return rc;
}

static const struct {
	const char	*name;
	int		(*run)(int, char **);
} replica_commands[] = {
	{ "resume", guard_resume_main },
	{ "forget", replica_forget },
};

int
sync_replica_main(int argc, char **argv)
{
	size_t	 i;

	for (i = 0; argc >= 3 && i < sizeof(replica_commands) /
	    sizeof(*replica_commands); i++)
		if (strcmp(argv[2], replica_commands[i].name) == 0)
			return replica_commands[i].run(argc, argv);
	fprintf(argc >= 3 && strcmp(argv[2], "--help") == 0 ? stdout : stderr,
	    "usage: mailrepd replica resume [--allow-deletes] --data DIR\n"
	    "       mailrepd replica forget NAME|NODEID --data DIR\n");
	return argc >= 3 && strcmp(argv[2], "--help") == 0 ? 0 : 2;
}
