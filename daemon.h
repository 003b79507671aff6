/*
 * daemon.h — what `serve` (and `dev`) does to own its data directory:
 * one server per directory, private files, and the switch from root to
 * the run-as-user once the listeners are bound.
 *
 * Order in serve: daemon_prepare() (before anything is created or
 * bound), the listeners with daemon_socket() on each unix socket,
 * daemon_drop(), then the store and everything else as that user;
 * daemon_release() at exit.
 */
#ifndef MAILREPD_DAEMON_H
#define MAILREPD_DAEMON_H

#include <sys/types.h>

#define DAEMON_LOCK_FILE	"mailrepd.lock"	/* flock()ed; holds the pid */

struct settings;

struct daemon {
	const struct settings *settings;
	int	 lock_fd;	/* DIR/mailrepd.lock, locked, or -1 */
	int	 switch_user;	/* root, to become run-as-user */
	uid_t	 uid;		/* of run-as-user */
	gid_t	 gid;
	mode_t	 sock_mode;	/* unix:PATH listeners are bound with */
	uid_t	 sock_uid;	/* and given, or -1: left as bound */
	gid_t	 sock_gid;
};

/*
 * Checks run-as-user and the unix-socket-* settings, then makes the
 * data directory (mode 0700) or narrows one that group or
 * others may enter to 0700 with a warning; started as root with
 * run-as-user, gives the directory to that user and refuses a file in
 * it that the user does not own.  Then takes the directory's lock for
 * the life of the process: a second server on the same directory gets
 * -1 after a message naming the running one's pid.  Returns 0, or -1
 * after printing why (the caller exits 2, having created nothing but
 * the directory and its lock file).
 */
int	daemon_prepare(const struct settings *, struct daemon *);

/*
 * Gives the unix socket at path the owner and group of the
 * unix-socket-* settings (owner default: run-as-user).  Returns 0, or
 * -1 with the reason in err.
 */
int	daemon_socket(const struct daemon *, const char *path, char *err,
	    size_t errlen);

/*
 * Started as root with run-as-user: becomes that user (its groups
 * only) for good.  Returns 0, or -1 after printing why.
 */
int	daemon_drop(const struct daemon *);

/* Releases the lock (the file stays: removing it would race a start). */
void	daemon_release(struct daemon *);

#endif /* MAILREPD_DAEMON_H */
