/*
 * control.h — the running daemon as other processes see it: its pid file
 * and recorded exit status in the data directory, and the sub-commands
 * that signal it (`mailrepd drain`, `mailrepd promote`).
 *
 * Signals: SIGQUIT drains (ARCHITECTURE.md, "Graceful drain"), a second
 * SIGQUIT or SIGTERM exits at once, SIGUSR1 promotes a replica to master,
 * SIGUSR2 demotes the node to a replica of the master named in
 * DIR/mailrepd.demote.
 *
 * The demote request file is written by `mailrepd demote` (to a temporary
 * name, then renamed into place) before it sends SIGUSR2, and read and
 * removed by the daemon.  It holds "key value" lines:
 *
 *	replicate-from HOST:PORT	the master to follow (required)
 *	repl-secret-file PATH		the channel's secret, read only when
 *					the daemon has no replication key
 *
 * The daemon records the outcome in the store (role replica, upstream
 * HOST:PORT), which is what `mailrepd demote` waits for; a request it
 * refuses leaves the store as it was and says why in the log.  A stopped
 * node is demoted by recording the same in its store: the next `serve`
 * follows that upstream unless --replicate-from says otherwise, until a
 * `mailrepd promote`.
 */
#ifndef MAILREPD_CONTROL_H
#define MAILREPD_CONTROL_H

#define CONTROL_PID_FILE	"mailrepd.pid"
#define CONTROL_EXIT_FILE	"mailrepd.exit"	/* last exit status */
#define CONTROL_DEMOTE_FILE	"mailrepd.demote" /* a demote request */

struct store;
struct store_node;

/*
 * The exit statuses of every command (README.md, "Exit statuses"): 0
 * done, 1 the work failed (a check found a problem, a user exists, the
 * disk is full), 2 the command line, a setting or its input is wrong
 * (the message names it; nothing was created or changed), and those of
 * `serve` after a drain (and of `drain`), 3 to 5.
 */
#define EXIT_FAILED		1	/* the work itself failed */
#define EXIT_USAGE		2	/* command line, setting or input */
#define EXIT_DRAINED		0	/* every replica has everything */
#define EXIT_REPLICA_BEHIND	3	/* a known replica lacks records */
#define EXIT_DRAIN_TIMEOUT	4	/* the timeout cut sessions off */
#define EXIT_DRAIN_INTERRUPTED	5	/* a second SIGQUIT, or SIGTERM */

/*
 * Writes DIR/mailrepd.pid with this process's id and removes a previous
 * exit status.  Returns 0, or -1 after logging why.
 */
int	control_write_pid(const char *dir);
/* At exit: records the status in DIR/mailrepd.exit, removes the pid file. */
void	control_exit(const char *dir, int status);

/* `mailrepd drain --data DIR`, `mailrepd promote --data DIR`. */
int	control_drain(int argc, char **argv);
int	control_promote(int argc, char **argv);
/* `mailrepd demote --replicate-from HOST:PORT --data DIR`. */
int	control_demote(int argc, char **argv);

/*
 * In the daemon, on SIGUSR2: reads and removes DIR/mailrepd.demote.
 * Returns 0 with the upstream in spec and the secret file in secret
 * ("" when none), or -1 (logged) when there is no valid request.
 */
int	control_demote_request(const char *dir, char *spec, size_t speccap,
	    char *secret, size_t secretcap);

/*
 * For `mailrepd status`: the upstream demote recorded, and the last
 * clean-shutdown marker ("last clean shutdown ..." lines, or with json
 * the members "upstream":...,"clean_shutdown":{...}|null, each followed
 * by a comma).  Returns 0, or -1 when the marker or its replicas cannot
 * be read (never printed as "none").
 */
int	control_status_node(struct store *, const struct store_node *,
	    int json);

#endif /* MAILREPD_CONTROL_H */
