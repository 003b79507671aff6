/*
 * control.h — the running daemon as other processes see it: its pid file
 * and recorded exit status in the data directory, and the sub-commands
 * that signal it (`mailrepd drain`, `mailrepd promote`).
 *
 * Signals: SIGQUIT drains (DESIGN.md, "Graceful drain"), a second SIGQUIT
 * or SIGTERM exits at once, SIGUSR1 promotes a replica to master.
 */
#ifndef MAILREPD_CONTROL_H
#define MAILREPD_CONTROL_H

#define CONTROL_PID_FILE	"mailrepd.pid"
#define CONTROL_EXIT_FILE	"mailrepd.exit"	/* last exit status */

/* Exit statuses of `mailrepd serve` after a drain (and of `drain`). */
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

#endif /* MAILREPD_CONTROL_H */
