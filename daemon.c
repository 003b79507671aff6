/*
 * daemon.c — the data directory's lock, its permissions, unix socket
 * ownership and the switch from root to run-as-user (daemon.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "settings.h"

/*
 * Finds run-as-user.  Only root may become another user; naming the user
 * the server already runs as is allowed (the same config for both ways
 * of starting).  Returns 0, or -1 after printing why.
 */
static int
resolve_user(const struct settings *set, struct daemon *d)
{
	const struct passwd	*pw;

	if (set->run_as_user == NULL)
		return 0;
	if ((pw = getpwnam(set->run_as_user)) == NULL) {
		fprintf(stderr, "mailrepd: setting 'run-as-user': no user "
		    "'%s'\n", set->run_as_user);
		return -1;
	}
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	if (geteuid() == 0)
		d->switch_user = pw->pw_uid != 0;
	else if (pw->pw_uid != geteuid()) {
		fprintf(stderr, "mailrepd: setting 'run-as-user': only root "
		    "can become '%s'\n", set->run_as_user);
		return -1;
	}
	return 0;
}

/*
 * Opens the data directory, made if missing, with group and other
 * access removed (logged: a unit or package that made it 0755 let every
 * local user read the mail) and, when switching users, owned by the
 * run-as-user.  Returns the directory's fd, or -1 after printing why.
 */
static int
open_data_dir(const char *dir, const struct daemon *d)
{
	struct stat	 sb;
	int		 fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		goto fail;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto fail;
	if (fstat(fd, &sb) < 0 ||
	    (d->switch_user && sb.st_uid != d->uid &&
	    fchown(fd, d->uid, d->gid) < 0)) {
		close(fd);
		goto fail;
	}
	if (sb.st_mode & 077) {
		log_warn("datadir.mode", "path=%s mode=%04o new=0700 msg=\"the "
		    "data directory was open to group or others\"",
		    log_quote(dir), (unsigned)(sb.st_mode & 07777));
		if (fchmod(fd, sb.st_mode & 07700) < 0) {
			close(fd);
			goto fail;
		}
	}
	return fd;
fail:
	fprintf(stderr, "mailrepd: setting 'data': '%s': %s\n", dir,
	    strerror(errno));
	return -1;
}

/*
 * Switching users: every entry of the data directory must belong to
 * the run-as-user already (a store made by `mailrepd user add` as root,
 * say).  Root does not chown them itself: the user could have planted
 * links there.  Returns 0, or -1 after printing which file and the fix.
 */
static int
check_owners(int dirfd, const char *dir, const struct settings *set,
    const struct daemon *d)
{
	struct stat	 sb;
	struct dirent	*e;
	DIR		*dp;
	int		 fd, rc = 0;

	if ((fd = dup(dirfd)) < 0 || (dp = fdopendir(fd)) == NULL) {
		fprintf(stderr, "mailrepd: setting 'data': '%s': %s\n", dir,
		    strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    sb.st_uid == d->uid)
			continue;
		fprintf(stderr, "mailrepd: setting 'run-as-user': '%s/%s' "
		    "is not owned by '%s' (chown -R %s '%s')\n", dir,
		    e->d_name, set->run_as_user, set->run_as_user, dir);
		rc = -1;
	}
	closedir(dp);
	return rc;
}

/* Reads the pid a running server wrote into its lock file, or 0. */
static long
lock_holder(int fd)
{
	char	 buf[32];
	ssize_t	 n;

	if ((n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/*
 * Takes DIR/mailrepd.lock (flock, released by the kernel at exit, even
 * after a SIGKILL) and writes this pid into it.  Returns 0, or -1 after
 * printing why: another server holds it, or the file cannot be made.
 */
static int
take_lock(int dirfd, const char *dir, struct daemon *d)
{
	char	 pid[32];
	int	 n;

	d->lock_fd = openat(dirfd, DAEMON_LOCK_FILE, O_RDWR | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d->lock_fd < 0 || (d->switch_user &&
	    fchown(d->lock_fd, d->uid, d->gid) < 0)) {
		fprintf(stderr, "mailrepd: setting 'data': '%s/%s': %s\n", dir,
		    DAEMON_LOCK_FILE, strerror(errno));
		return -1;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "mailrepd: setting 'data': another "
			    "mailrepd (pid %ld) serves '%s'\n",
			    lock_holder(d->lock_fd), dir);
		else
			fprintf(stderr, "mailrepd: setting 'data': cannot lock "
			    "'%s/%s': %s\n", dir, DAEMON_LOCK_FILE,
			    strerror(errno));
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, n, 0) !=
	    n)
		log_warn("datadir.lock", "msg=%s", log_quote(strerror(errno)));
	return 0;
}

/*
 * Reads the unix-socket-* settings into d: the mode (octal), the owner
 * (default: run-as-user when switching, else unchanged) and the group.
 * Returns 0, or -1 after printing which setting is wrong.
 */
static int
resolve_socket(const struct settings *set, struct daemon *d)
{
	const struct passwd	*pw;
	const struct group	*gr;
	char			*end;
	long			 mode;

	mode = strtol(set->unix_socket_mode, &end, 8);
	if (*set->unix_socket_mode == '\0' || *end != '\0' || mode < 0 ||
	    mode > 0777) {
		fprintf(stderr, "mailrepd: setting 'unix-socket-mode' wants "
		    "an octal mode such as 0660, not '%s'\n",
		    set->unix_socket_mode);
		return -1;
	}
	d->sock_mode = (mode_t)mode;
	d->sock_uid = d->switch_user ? d->uid : (uid_t)-1;
	d->sock_gid = (gid_t)-1;
	if (set->unix_socket_owner != NULL) {
		if ((pw = getpwnam(set->unix_socket_owner)) == NULL) {
			fprintf(stderr, "mailrepd: setting 'unix-socket-owner': "
			    "no user '%s'\n", set->unix_socket_owner);
			return -1;
		}
		d->sock_uid = pw->pw_uid;
	}
	if (set->unix_socket_group != NULL) {
		if ((gr = getgrnam(set->unix_socket_group)) == NULL) {
			fprintf(stderr, "mailrepd: setting 'unix-socket-group': "
			    "no group '%s'\n", set->unix_socket_group);
			return -1;
		}
		d->sock_gid = gr->gr_gid;
	}
	return 0;
}

int
daemon_prepare(const struct settings *set, struct daemon *d)
{
	int	 dirfd, rc = -1;

	memset(d, 0, sizeof(*d));
	d->settings = set;
	d->lock_fd = -1;
	if (resolve_user(set, d) < 0 || resolve_socket(set, d) < 0 ||
	    (dirfd = open_data_dir(set->data_dir, d)) < 0)
		return -1;
	if ((!d->switch_user || check_owners(dirfd, set->data_dir, set,
	    d) == 0) && take_lock(dirfd, set->data_dir, d) == 0)
		rc = 0;
	close(dirfd);
	if (rc < 0)
		daemon_release(d);
	return rc;
}

int
daemon_socket(const struct daemon *d, const char *path, char *err,
    size_t errlen)
{
	/* lchown: a link put in the socket's place is not followed. */
	if ((d->sock_uid != (uid_t)-1 || d->sock_gid != (gid_t)-1) &&
	    lchown(path, d->sock_uid, d->sock_gid) < 0) {
		snprintf(err, errlen, "unix socket '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
daemon_drop(const struct daemon *d)
{
	const struct passwd	*pw;

	if (!d->switch_user)
		return 0;
	if ((pw = getpwuid(d->uid)) == NULL ||
	    initgroups(pw->pw_name, d->gid) < 0 || setgid(d->gid) < 0 ||
	    setuid(d->uid) < 0) {
		fprintf(stderr, "mailrepd: setting 'run-as-user': cannot "
		    "become uid %ld: %s\n", (long)d->uid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "mailrepd: setting 'run-as-user': root "
		    "could be regained\n");
		return -1;
	}
	log_info("serve.user", "uid=%ld gid=%ld", (long)d->uid, (long)d->gid);
	return 0;
}

void
daemon_release(struct daemon *d)
{
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
}
