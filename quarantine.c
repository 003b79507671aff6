/*
 * quarantine.c — `mailrepd quarantine list|show|restore`: what a replica
 * deleted on its master's word (expunged messages, deleted mailboxes and
 * users) stays in quarantine for --quarantine-days; these find it and
 * put a message back.
 *
 * They read and write the store directly, so they work on a running or
 * a stopped node.  restore is refused on a replica (its mail comes from
 * its master): run it on the master, or on a promoted replica, whose
 * restored message then replicates like any append.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "json.h"
#include "quarantine.h"
#include "settings.h"
#include "store.h"

struct list_ctx {
	struct store	*st;
	int		 json;
	int		 n;
	int		 raw;		/* show --raw */
	int		 found;
};

/* The message's Subject (or another field), "" when it has none. */
static void
field_of(struct store *st, const uint8_t *guid, const char *name, char *out,
    size_t cap)
{
	struct store_meta	 meta;

	out[0] = '\0';
	if (store_message_meta(st, guid, STORE_META_SECTIONS, &meta) !=
	    STORE_OK)
		return;
	admin_header_field(&meta, name, out, cap);
	store_meta_free(&meta);
}

static int
list_one(void *arg, const struct store_quarantined *q)
{
	struct list_ctx	*x = arg;
	char		 when[ADMIN_UTC_LEN], subject[200];
	char		 hex[GUID_HEX_LEN + 1];

	admin_utc(q->time, when);
	crypto_hex(q->guid, GUID_LEN, hex);
	field_of(x->st, q->guid, "Subject", subject, sizeof(subject));
	if (!x->json) {
		printf("%-5lld %s %s %s uid=%u size=%llu %s\n",
		    (long long)q->id, when, q->user, q->mailbox_name, q->uid,
		    (unsigned long long)q->size, subject);
		return 0;
	}
	printf("%s{\"id\":%lld,\"time\":\"%s\",\"user\":", x->n++ ? "," : "",
	    (long long)q->id, when);
	json_str(stdout, q->user);
	printf(",\"mailbox\":");
	json_str(stdout, q->mailbox_name);
	printf(",\"uid\":%u,\"guid\":\"%s\",\"size\":%llu,\"subject\":",
	    q->uid, hex, (unsigned long long)q->size);
	json_str(stdout, subject);
	printf("}");
	return 0;
}

static int
show_one(void *arg, const struct store_quarantined *q)
{
	static const char *const fields[] = {
		"Date", "From", "To", "Subject", "Message-ID",
	};
	struct list_ctx	*x = arg;
	char		 when[ADMIN_UTC_LEN], hex[GUID_HEX_LEN + 1], v[200];
	size_t		 i;

	x->found = 1;
	if (x->raw)
		return admin_write_blob(x->st, q->guid) != 0 ? -1 : 1;
	admin_utc(q->time, when);
	crypto_hex(q->guid, GUID_LEN, hex);
	printf("quarantined %lld at %s: user %s, mailbox %s, uid %u\n\n",
	    (long long)q->id, when, q->user, q->mailbox_name, q->uid);
	printf("%-12s %s\n%-12s %llu bytes\n%-12s %s\n", "guid", hex, "size",
	    (unsigned long long)q->size, "keywords", q->keywords);
	for (i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
		field_of(x->st, q->guid, fields[i], v, sizeof(v));
		printf("%-12s %s\n", fields[i], v);
	}
	return 1;
}

/* restore ID, on a master only. */
static int
restore(struct store *st, int64_t id)
{
	struct store_node	 me;
	char			 mailbox[MAILBOX_MAX_NAME + 1];
	uint32_t		 uid;
	enum store_err		 err;

	if (store_node_get(st, &me) != STORE_OK)
		return 1;
	if (strcmp(me.role, "master") != 0) {
		fprintf(stderr, "mailrepd: this node is a replica: restore on "
		    "its master (a replica's mail comes from there)\n");
		return 1;
	}
	(void)store_set_reason(st, REASON_OPERATOR);
	if ((err = store_quarantine_restore(st, id, &uid, mailbox)) ==
	    STORE_OK)
		err = store_commit(st);
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: quarantine restore %lld: %s\n",
		    (long long)id, err == STORE_NOTFOUND ? "no such entry, or "
		    "its user is gone (see 'mailrepd quarantine list')" :
		    store_strerror(err));
		return 1;
	}
	printf("restored %lld to %s as uid %u\n", (long long)id, mailbox,
	    uid);
	return 0;
}

static int
quarantine_run(struct store *st, char **pos, int npos,
    const struct cmd_option *opts)
{
	struct list_ctx	 x = { st, opts[0].value != NULL, 0,
			    opts[1].value != NULL, 0 };
	char		*end;
	long long	 id = 0;

	if (npos == 1 && strcmp(pos[0], "list") == 0) {
		if (x.json)
			printf("[");
		if (store_quarantine_foreach(st, 0, list_one, &x) != STORE_OK)
			return 1;
		if (x.json)
			printf("]\n");
		return 0;
	}
	if (npos == 2)
		id = strtoll(pos[1], &end, 10);
	if (npos != 2 || *pos[1] == '\0' || *end != '\0' || id <= 0)
		return EXIT_USAGE;
	if (strcmp(pos[0], "restore") == 0)
		return restore(st, id);
	if (strcmp(pos[0], "show") != 0)
		return EXIT_USAGE;
	if (store_quarantine_foreach(st, id, show_one, &x) != STORE_OK)
		return 1;
	if (!x.found)
		fprintf(stderr, "mailrepd: nothing quarantined as %lld (see "
		    "'mailrepd quarantine list')\n", id);
	return !x.found;
}

int
quarantine_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "json", 0, "list: one JSON array", NULL },
		{ "raw", 0, "show: write the message as it is", NULL },
		{ "help", 0, "show this help", NULL },
	};
	const struct admin_tool tool = {
		"usage: mailrepd quarantine list [--json] --data DIR\n"
		"       mailrepd quarantine show ID [--raw] --data DIR\n"
		"       mailrepd quarantine restore ID --data DIR\n\n"
		"What this replica deleted on its master's word, kept for "
		"--quarantine-days.\nrestore puts a message back into its "
		"mailbox (re-created when gone) at a\nnew UID; on a master (or "
		"a promoted replica) only.\n\n",
		opts, 3, quarantine_run
	};

	return admin_tool_main(&tool, argc, argv);
}
