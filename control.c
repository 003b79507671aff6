/*
 * control.c — pid file, recorded exit status, `mailrepd drain` and
 * `mailrepd promote`.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "control.h"
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

/* Parses the common options; returns the pid of the daemon, or -1. */
static long
control_setup(struct settings *set, int argc, char **argv, const char *what,
    const char *help)
{
	struct cmd_option	 opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	int			 npos = 0;
	long			 pid;

	if (settings_parse(set, argc, argv, 2, opts, 1, NULL, &npos) < 0)
		return -2;
	if (opts[0].value != NULL) {
		printf("usage: mailrepd %s --data DIR\n\n%s\n\n", what, help);
		settings_usage_options(stdout, opts, 1);
		return -3;
	}
	if ((pid = read_number(set->data_dir, CONTROL_PID_FILE)) <= 0 ||
	    kill((pid_t)pid, 0) < 0) {
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
		return 1;
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
