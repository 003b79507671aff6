/*
 * backup.c — `mailrepd backup --data DIR --to FILE` copies a store,
 * also while the server runs, into one file; `mailrepd restore --from
 * FILE --data DIR` makes that file a store again, as a new incarnation
 * of the node (a new node id and epoch) so that its replicas compare
 * with it rather than trust positions in a log that went on without it.
 * The SQLite side is store_restore.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "backup.h"
#include "control.h"
#include "crypto.h"
#include "settings.h"
#include "store.h"

/* Prints the copy's progress at every tenth of the way. */
static void
backup_progress(void *arg, int done, int total)
{
	int	*last = arg;
	int	 tenth = total > 0 ? (int)((int64_t)done * 10 / total) : 10;

	if (tenth == *last)
		return;
	*last = tenth;
	printf("backup: %d of %d pages (%d%%)\n", done, total, tenth * 10);
	fflush(stdout);
}

/*
 * Parses a command with two options, opts[0] the file it needs and
 * opts[1] --help.  Returns 1 to go on (then *set is filled, for the
 * caller to free), or 0 with the exit status in *rc (usage printed).
 */
static int
tool_args(struct settings *set, int argc, char **argv,
    struct cmd_option opts[2], const char *usage, int *rc)
{
	int	 npos = 0;

	*rc = EXIT_USAGE;
	if (settings_parse(set, argc, argv, 2, opts, 2, NULL, &npos) < 0) {
		settings_free(set);
		return 0;
	}
	if (opts[1].value == NULL && opts[0].value != NULL) {
		*rc = 0;
		return 1;
	}
	fputs(usage, opts[1].value ? stdout : stderr);
	settings_free(set);
	*rc = opts[1].value ? 0 : EXIT_USAGE;
	return 0;
}

int
backup_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "to", 1, "write the copy to FILE (replaced at the end)",
		    NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings	 set;
	enum store_err	 err;
	int		 last = -1, rc = 0;

	if (!tool_args(&set, argc, argv, opts, "usage: mailrepd backup "
	    "--data DIR --to FILE\nCopies the store, also while the server "
	    "runs, into FILE: consistent as of one commit,\ncopied in small "
	    "steps that never hold up the server, synced before it is "
	    "renamed\ninto place.  `mailrepd restore --from FILE` makes it a "
	    "store again.\n", &rc))
		return rc;
	err = store_backup(set.data_dir, opts[0].value, backup_progress,
	    &last);
	if (err == STORE_NOTFOUND) {
		fprintf(stderr, "mailrepd: setting 'data': no store in "
		    "'%s'\n", set.data_dir);
		rc = EXIT_USAGE;
	} else if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: backup to '%s' failed: %s\n",
		    opts[0].value, store_strerror(err));
		rc = 1;
	} else
		printf("backup: %s written\n", opts[0].value);
	settings_free(&set);
	return rc;
}

/* Installs the copy and gives it its new incarnation; says what it did. */
static int
restore_into(const char *from, const char *dir)
{
	struct settings		 set = { .data_dir = (char *)dir };
	struct store		*st;
	struct store_node	 me;
	enum store_err		 err;
	char			 id[NODE_ID_LEN * 2 + 1];
	int			 renewed;

	if ((err = store_restore_file(from, dir)) == STORE_EXISTS) {
		fprintf(stderr, "mailrepd: setting 'data': '%s' holds a store "
		    "already; move it aside first\n", dir);
		return EXIT_USAGE;
	} else if (err == STORE_NOTFOUND) {
		fprintf(stderr, "mailrepd: option 'from': '%s' is not a "
		    "mailrepd backup\n", from);
		return EXIT_USAGE;
	} else if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: restore into '%s' failed: %s\n",
		    dir, store_strerror(err));
		return 1;
	}
	if ((st = admin_open_store(&set, 0)) == NULL)
		return 1;
	if ((err = store_incarnation(st, dir, 1, &renewed)) != STORE_OK ||
	    (err = store_node_get(st, &me)) != STORE_OK) {
		fprintf(stderr, "mailrepd: restore into '%s' failed: %s\n",
		    dir, store_strerror(err));
		store_close(st);
		return 1;
	}
	crypto_hex(me.node_id, NODE_ID_LEN, id);
	printf("restore: %s restored into %s as a new incarnation: node %s, "
	    "role %s\n(its replicas will compare with it in full before "
	    "they follow it)\n", from, dir, id, me.role);
	store_close(st);
	return 0;
}

int
restore_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "from", 1, "the backup FILE to restore", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings	 set;
	int		 rc;

	if (!tool_args(&set, argc, argv, opts, "usage: mailrepd restore "
	    "--from FILE --data DIR\nMakes a backup a store again, in a data "
	    "directory that holds none, with a new\nnode id and epoch: "
	    "replicas compare with it in full, and their newer expunges\nwin "
	    "over its older copy.  Start the server on DIR afterwards.\n",
	    &rc))
		return rc;
	rc = restore_into(opts[0].value, set.data_dir);
	settings_free(&set);
	return rc;
}
