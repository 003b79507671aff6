/*
 * control.c — pid file, recorded exit status, `mailrepd drain` and
 * `mailrepd promote`.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "json.h"
#include "log.h"
#include "settings.h"
#include "store.h"

#define POLL_NS		(100 * 1000 * 1000)	/* 100 ms between looks */

static void
path_of(char *out, size_t cap, const char *dir, const char *file)
{
	snprintf(out, cap, "%s/%s", dir, file);
}

int
control_write_pid(const char *dir)
{
	char	 path[4096], tmp[4200];
	FILE	*f;

	path_of(path, sizeof(path), dir, CONTROL_EXIT_FILE);
	(void)unlink(path);
	path_of(path, sizeof(path), dir, CONTROL_PID_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%ld\n",
	    (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
		log_error("pidfile", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
		return -1;
	}
	return 0;
}

void
control_exit(const char *dir, int status)
{
	char	 path[4096];
	FILE	*f;

	path_of(path, sizeof(path), dir, CONTROL_EXIT_FILE);
	if ((f = fopen(path, "w")) != NULL) {
		fprintf(f, "%d\n", status);
		fclose(f);
	}
	path_of(path, sizeof(path), dir, CONTROL_PID_FILE);
	(void)unlink(path);
}

/* Reads a number from DIR/file; returns it, or -1. */
static long
read_number(const char *dir, const char *file)
{
	char	 path[4096];
	FILE	*f;
	long	 v = -1;

	path_of(path, sizeof(path), dir, file);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The pid of the daemon running on dir, or -1 when none runs. */
static long
running_pid(const char *dir)
{
	long	 pid;

	if ((pid = read_number(dir, CONTROL_PID_FILE)) <= 0 ||
	    kill((pid_t)pid, 0) < 0)
		return -1;
	return pid;
}

/*
 * Parses the settings and --help; returns 0, -2 on a bad command line,
 * -3 after printing the help (usage: the words after the command name).
 */
static int
control_parse(struct settings *set, int argc, char **argv, const char *what,
    const char *usage, const char *help)
{
	struct cmd_option	 opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	int			 npos = 0;

	if (settings_parse(set, argc, argv, 2, opts, 1, NULL, &npos) < 0)
		return -2;
	if (opts[0].value != NULL) {
		printf("usage: mailrepd %s %s\n\n%s\n\n", what, usage, help);
		settings_usage_options(stdout, opts, 1);
		return -3;
	}
	return 0;
}

/* Parses the common options; returns the pid of the daemon, or -1. */
static long
control_setup(struct settings *set, int argc, char **argv, const char *what,
    const char *help)
{
	long	 pid;
	int	 rc;

	if ((rc = control_parse(set, argc, argv, what, "--data DIR",
	    help)) < 0)
		return rc;
	if ((pid = running_pid(set->data_dir)) < 0) {
		fprintf(stderr, "mailrepd %s: no running mailrepd in '%s' (pid "
		    "file %s/%s)\n", what, set->data_dir, set->data_dir,
		    CONTROL_PID_FILE);
		return -1;
	}
	return pid;
}

static void
nap(void)
{
	struct timespec	 ts = { 0, POLL_NS };

	nanosleep(&ts, NULL);
}

int
control_drain(int argc, char **argv)
{
	struct settings	 set;
	char		 path[4096];
	long		 pid, status;
	int		 ticks, rc;

	pid = control_setup(&set, argc, argv, "drain", "Sends SIGQUIT to the "
	    "running mailrepd of DIR, waits until it has drained and exited,\n"
	    "and exits with its status: 0 every replica has everything, 3 a "
	    "replica is\nbehind, 4 the drain timeout cut sessions off.");
	if (pid < 0) {
		rc = pid == -3 ? 0 : pid == -2 ? 2 : 1;
		settings_free(&set);
		return rc;
	}
	path_of(path, sizeof(path), set.data_dir, CONTROL_PID_FILE);
	if (kill((pid_t)pid, SIGQUIT) < 0) {
		fprintf(stderr, "mailrepd drain: pid %ld: %s\n", pid,
		    strerror(errno));
		settings_free(&set);
		return 1;
	}
	printf("drain: SIGQUIT sent to pid %ld\n", pid);
	fflush(stdout);
	/* The daemon removes its pid file last; a zombie still "exists". */
	for (ticks = 0; access(path, F_OK) == 0 && kill((pid_t)pid, 0) == 0;
	    ticks++) {
		if (ticks > 0 && ticks % 10 == 0) {
			printf("drain: pid %ld still draining (%d s)\n", pid,
			    ticks / 10);
			fflush(stdout);
		}
		nap();
	}
	status = read_number(set.data_dir, CONTROL_EXIT_FILE);
	if (status < 0) {
		printf("drain: pid %ld exited without recording a status\n",
		    pid);
		rc = 1;
	} else {
		printf("drain: pid %ld exited with status %ld%s\n", pid, status,
		    status == 0 ? " (every replica has everything)" :
		    status == 3 ? " (a replica is behind; see the log)" :
		    status == 4 ? " (timeout cut sessions off)" : "");
		rc = (int)status;
	}
	settings_free(&set);
	return rc;
}

int
control_promote(int argc, char **argv)
{
	struct settings		 set;
	struct store		*st;
	struct store_node	 me;
	long			 pid;
	int			 ticks, rc = 1;

	pid = control_setup(&set, argc, argv, "promote", "Turns the running "
	    "replica of DIR into a master (SIGUSR1): a new epoch,\nwhat it "
	    "applied kept, LMTP and IMAP writes accepted.  Exits 0 once it "
	    "is a master.");
	if (pid < 0) {
		rc = pid == -3 ? 0 : pid == -2 ? 2 : 1;
		settings_free(&set);
		return rc;
	}
	if (kill((pid_t)pid, SIGUSR1) < 0) {
		fprintf(stderr, "mailrepd promote: pid %ld: %s\n", pid,
		    strerror(errno));
		settings_free(&set);
		return 1;
	}
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	for (ticks = 0; ticks < 50; ticks++) {
		store_read_begin(st);
		if (store_node_get(st, &me) == STORE_OK &&
		    strcmp(me.role, "master") == 0) {
			store_read_end(st);
			printf("promote: pid %ld is a master\n", pid);
			rc = 0;
			break;
		}
		store_read_end(st);
		nap();
	}
	if (rc != 0)
		fprintf(stderr, "mailrepd promote: pid %ld is not a master "
		    "after 5 s\n", pid);
	store_close(st);
	settings_free(&set);
	return rc;
}

/*
 * Running node: writes the request file (to a temporary name, renamed
 * into place, so the daemon never reads half of it) and sends SIGUSR2.
 * Returns 0, or -1 after saying why.
 */
static int
demote_signal(const char *dir, long pid, const char *spec,
    const char *secret)
{
	char	 path[4096], tmp[4200], abs[PATH_MAX];
	FILE	*f;

	path_of(path, sizeof(path), dir, CONTROL_DEMOTE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* The daemon's working directory may not be ours. */
	if (secret != NULL && realpath(secret, abs) == NULL) {
		fprintf(stderr, "mailrepd demote: setting 'repl-secret-file': "
		    "'%s': %s\n", secret, strerror(errno));
		return -1;
	}
	if ((f = fopen(tmp, "w")) == NULL ||
	    fprintf(f, "replicate-from %s\n", spec) < 0 ||
	    (secret != NULL && fprintf(f, "repl-secret-file %s\n", abs) < 0) ||
	    fclose(f) != 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "mailrepd demote: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (kill((pid_t)pid, SIGUSR2) < 0) {
		fprintf(stderr, "mailrepd demote: pid %ld: %s\n", pid,
		    strerror(errno));
		(void)unlink(path);
		return -1;
	}
	return 0;
}

/* Whether the store says: a replica following spec. */
static int
demoted(struct store *st, const char *spec)
{
	struct store_node	 me;
	int			 yes;

	store_read_begin(st);
	yes = store_node_get(st, &me) == STORE_OK &&
	    strcmp(me.role, "replica") == 0 && strcmp(me.upstream, spec) == 0;
	store_read_end(st);
	return yes;
}

/*
 * Waits until the running daemon has recorded the demotion; fails early
 * once it has taken the request without recording it (it refused: its
 * log says why).  Returns 0 or 1.
 */
static int
demote_wait(struct store *st, const char *dir, long pid, const char *spec)
{
	char	 path[4096];
	int	 ticks, taken = 0;

	path_of(path, sizeof(path), dir, CONTROL_DEMOTE_FILE);
	for (ticks = 0; ticks < DEMOTE_WAIT_TICKS; ticks++) {
		nap();
		if (demoted(st, spec)) {
			printf("demote: pid %ld is a replica of %s (read-only; "
			    "its master reconciles it)\n", pid, spec);
			return 0;
		}
		/* Taken two looks ago and still not recorded: refused. */
		if (access(path, F_OK) < 0 && ++taken > 2)
			break;
	}
	fprintf(stderr, "mailrepd demote: pid %ld did not become a replica "
	    "of %s; see its log (sync.demote)\n", pid, spec);
	return 1;
}

int
control_demote(int argc, char **argv)
{
	struct settings	 set;
	struct store	*st = NULL;
	const char	*spec;
	long		 pid;
	int		 rc;

	rc = control_parse(&set, argc, argv, "demote", "--replicate-from "
	    "HOST:PORT --data DIR", "Makes the node of DIR a replica of the "
	    "master at HOST:PORT (its --repl-listen).\nRunning (SIGUSR2): it "
	    "turns read-only at once (IMAP read-only, LMTP 451),\ncloses the "
	    "replica sessions that followed it and connects to HOST:PORT,\n"
	    "which reconciles it.  Stopped: the next serve follows HOST:PORT "
	    "(unless\n--replicate-from says otherwise).  Either way until "
	    "`mailrepd promote`.\nA node without a replication key needs "
	    "--repl-secret-file.  Exits 0 once\nthe store records the new "
	    "role.");
	if (rc < 0) {
		settings_free(&set);
		return rc == -3 ? 0 : 2;
	}
	spec = set.replicate_from;
	if (spec == NULL || strrchr(spec, ':') == NULL ||
	    strlen(spec) > SYNC_UPSTREAM_MAX) {
		fprintf(stderr, "mailrepd demote: setting 'replicate-from' "
		    "wants the new master's HOST:PORT (its --repl-listen)\n");
		settings_free(&set);
		return 2;
	}
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	rc = 1;
	if ((pid = running_pid(set.data_dir)) > 0) {
		if (demote_signal(set.data_dir, pid, spec,
		    set.repl_secret_file) == 0)
			rc = demote_wait(st, set.data_dir, pid, spec);
	} else if (store_node_demote(st, spec) != STORE_OK ||
	    store_commit(st) != STORE_OK)
		fprintf(stderr, "mailrepd demote: cannot record the role in "
		    "'%s'\n", set.data_dir);
	else {
		printf("demote: %s is a replica of %s from its next start\n",
		    set.data_dir, spec);
		rc = 0;
	}
	store_close(st);
	settings_free(&set);
	return rc;
}

int
control_demote_request(const char *dir, char *spec, size_t speccap,
    char *secret, size_t secretcap)
{
	char	 path[4096], line[4200];
	FILE	*f;
	size_t	 n;

	spec[0] = secret[0] = '\0';
	path_of(path, sizeof(path), dir, CONTROL_DEMOTE_FILE);
	if ((f = fopen(path, "r")) == NULL) {
		log_warn("sync.demote", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (strncmp(line, "replicate-from ", 15) == 0)
			snprintf(spec, speccap, "%s", line + 15);
		else if (strncmp(line, "repl-secret-file ", 17) == 0)
			snprintf(secret, secretcap, "%s", line + 17);
	}
	fclose(f);
	(void)unlink(path);
	if (spec[0] == '\0') {
		log_warn("sync.demote", "path=%s msg=\"no replicate-from line\"",
		    log_quote(path));
		return -1;
	}
	return 0;
}

struct marker_ctx {
	int	 json;
	int	 n;
	int64_t	 head;
};

static int
marker_replica(void *arg, const struct store_replica *r)
{
	struct marker_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];

	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	if (x->json) {
		printf("%s{\"name\":", x->n++ ? "," : "");
		json_str(stdout, r->name);
		printf(",\"node_id\":\"%s\",\"acked\":%lld,\"lag\":%lld}", hex,
		    (long long)r->acked, (long long)(x->head - r->acked));
	} else
		printf("  replica %s acked %lld lag %lld\n", r->name,
		    (long long)r->acked, (long long)(x->head - r->acked));
	return 0;
}

int
control_status_node(struct store *st, const struct store_node *me, int json)
{
	struct store_shutdown	 m;
	struct marker_ctx	 x = { json, 0, 0 };
	char			 when[32], since[32], ep[EPOCH_LEN * 2 + 1];
	enum store_err		 err;

	if ((err = store_shutdown_get(st, &m)) != STORE_OK &&
	    err != STORE_NOTFOUND)
		return -1;
	if (json) {
		printf("\"upstream\":");
		json_str(stdout, me->upstream[0] != '\0' ? me->upstream : NULL);
		printf(",\"clean_shutdown\":");
	} else if (me->upstream[0] != '\0')
		printf("upstream %s (recorded by demote)\n", me->upstream);
	if (err == STORE_NOTFOUND) {
		printf(json ? "null," : "last clean shutdown none\n");
		return 0;
	}
	x.head = m.head;
	admin_utc(m.time, when);
	admin_utc(m.stale, since);
	crypto_hex(m.epoch, EPOCH_LEN, ep);
	if (json) {
		printf("{\"time\":%lld,\"role\":\"%s\",\"epoch\":\"%s\","
		    "\"head\":%lld,\"status\":%d,\"stale\":%s,"
		    "\"serving_since\":", (long long)m.time, m.role, ep,
		    (long long)m.head, m.status, m.stale ? "true" : "false");
		if (m.stale)
			printf("%lld", (long long)m.stale);
		else
			printf("null");
		printf(",\"replicas\":[");
	} else
		printf("last clean shutdown %s role %s epoch %s log head %lld "
		    "status %d%s%s%s\n", when, m.role, ep, (long long)m.head,
		    m.status, m.stale ? " (stale: serving again since " : "",
		    m.stale ? since : "", m.stale ? ")" : "");
	err = store_shutdown_replica_foreach(st, marker_replica, &x);
	if (json)
		printf("]},");
	return err == STORE_OK ? 0 : -1;
}
