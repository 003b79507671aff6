/*
 * durable.c — files outside SQLite that must survive a power cut
 * (durable.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "durable.h"

/* fsyncs the file or directory at path (opened read-only). */
static int
sync_path(const char *path, int flags)
{
	int	 fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | flags)) < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
durable_replace(const char *tmp, const char *path)
{
	char	 dir[PATH_MAX];
	char	*slash;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (sync_path(tmp, 0) < 0 || rename(tmp, path) < 0)
		return -1;
	return sync_path(dir, O_DIRECTORY);
}
