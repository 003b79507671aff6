/*
 * spool.c — gathering a message, in memory or (when it is large) in a
 * temporary file, hashing and pre-parsing it on the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "mime.h"
#include "spool.h"

/*
 * A message is gathered in memory, in a buffer that grows as it comes,
 * and is written to the file only when it outgrows SPOOL_MEM_MAX
 * (config.h): most mail is smaller, and the store takes it from memory,
 * sparing a write and a read back.  Nor is the file created until then:
 * a file per message costs an inode allocation, most of a replica's
 * catch-up time and 6% of an LMTP delivery's CPU (bench/RESULTS.md).
 * Past the limit the buffer gathers writes.
 */
struct spool {
	char			*dir;		/* where the file goes */
	int			 fd;		/* -1 until the message outgrows memory */
	int			 error;		/* errno of the first failure */
	uint64_t		 size;
	struct sha256		*hash;
	struct mime_parser	*mime;
	struct mime_result	 result;
	int			 finished;
	size_t			 wlen, wcap;
	char			*wbuf;
};

/*
 * Makes dir/tmp (path, PATH_MAX bytes) when missing.  Returns 0, or -1
 * with errno when it cannot be made.
 */
static int
spool_dir(const char *dir, char *path)
{
	snprintf(path, PATH_MAX, "%s/tmp", dir);
	return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * Opens an anonymous file in dir/tmp: O_TMPFILE where the file system has
 * it, else a named file unlinked at once.  Either way a crash leaves no
 * file behind to clean up.
 */
static int
spool_open_file(const char *dir)
{
	char	 path[PATH_MAX];
	int	 fd;

	if (spool_dir(dir, path) < 0)
		return -1;
	if ((fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/tmp/spool.XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
		unlink(path);
	return fd;
}

struct spool *
spool_new_deferred(const char *dir)
{
	struct spool	*sp;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	sp->fd = -1;
	sp->dir = strdup(dir);
	sp->hash = crypto_sha256_new();
	sp->mime = mime_parser_new();
	if (sp->dir == NULL || sp->hash == NULL || sp->mime == NULL) {
		log_error("spool.open", "dir=%s msg=%s", log_quote(dir),
		    log_quote(strerror(ENOMEM)));
		spool_free(sp);
		errno = ENOMEM;
		return NULL;
	}
	return sp;
}

/*
 * Whether dir/tmp can take the spool's file: a directory (made when
 * missing) this process may create files in.  Returns 0, or -1 with
 * errno.
 */
static int
spool_dir_usable(const char *dir)
{
	char		 path[PATH_MAX];
	struct stat	 sb;

	if (spool_dir(dir, path) < 0 || stat(path, &sb) < 0)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return access(path, W_OK | X_OK);
}

struct spool *
spool_new(const char *dir)
{
	struct spool	*sp;
	int		 e;

	if ((sp = spool_new_deferred(dir)) == NULL)
		return NULL;
	if (spool_dir_usable(dir) < 0) {
		e = errno == EDQUOT ? ENOSPC : errno;	/* as spool_fail() */
		log_error("spool.open", "dir=%s msg=%s", log_quote(dir),
		    log_quote(strerror(e)));
		spool_free(sp);
		errno = e;	/* the caller tells a full disk apart */
		return NULL;
	}
	return sp;
}

/* Takes a failed write's errno: quotas and file-size limits are ENOSPC. */
static void
spool_fail(struct spool *sp, int e)
{
	/* A full disk to the client: callers test for ENOSPC alone. */
	if (e == EDQUOT || e == EFBIG)
		e = ENOSPC;
	if (sp->error == 0)
		sp->error = e;
}

/* Writes the gathered bytes out, opening the file first; keeps errors. */
static void
spool_flush(struct spool *sp)
{
	size_t	 off = 0;
	ssize_t	 n;

	if (sp->error == 0 && sp->fd < 0 &&
	    (sp->fd = spool_open_file(sp->dir)) < 0) {
		log_error("spool.open", "dir=%s msg=%s", log_quote(sp->dir),
		    log_quote(strerror(errno)));
		spool_fail(sp, errno);
	}
	while (sp->error == 0 && off < sp->wlen) {
		if ((n = write(sp->fd, sp->wbuf + off, sp->wlen - off)) < 0) {
			if (errno != EINTR)
				spool_fail(sp, errno);
			continue;
		}
		off += n;
	}
	sp->wlen = 0;
}

/*
 * Makes room for len more bytes in memory, up to SPOOL_MEM_MAX: doubles
 * the buffer (from 4 KiB).  Returns the room there is.
 */
static size_t
spool_room(struct spool *sp, size_t len)
{
	size_t	 cap = sp->wcap;
	char	*grown;

	while (cap - sp->wlen < len && cap < SPOOL_MEM_MAX)
		cap = cap == 0 ? 4096 : cap * 2;
	if (cap > SPOOL_MEM_MAX)
		cap = SPOOL_MEM_MAX;
	if (cap != sp->wcap) {
		if ((grown = realloc(sp->wbuf, cap)) == NULL)
			spool_fail(sp, ENOMEM);
		else {
			sp->wbuf = grown;
			sp->wcap = cap;
		}
	}
	return sp->wcap - sp->wlen;
}

/* Whether every byte is still in the buffer: none went to the file. */
static int
spool_in_memory(const struct spool *sp)
{
	return sp->size == sp->wlen;
}

void
spool_add_bytes(struct spool *sp, const void *data, size_t len)
{
	const char	*p = data;
	size_t		 n;

	sp->size += len;
	crypto_sha256_update(sp->hash, p, len);
	mime_parser_feed(sp->mime, p, len);
	while (len > 0 && sp->error == 0) {
		if ((n = spool_room(sp, len)) == 0) {
			spool_flush(sp);
			continue;
		}
		if (n > len)
			n = len;
		memcpy(sp->wbuf + sp->wlen, p, n);
		sp->wlen += n;
		p += n;
		len -= n;
	}
}

uint64_t
spool_size(const struct spool *sp)
{
	return sp->size;
}

int
spool_finish(struct spool *sp, struct store_blob_in *in)
{
	memset(in, 0, sizeof(*in));
	if (sp->fd >= 0 && !spool_in_memory(sp))
		spool_flush(sp);
	if (sp->error != 0) {
		errno = sp->error;
		return -1;
	}
	crypto_sha256_finish(sp->hash, in->guid);
	sp->hash = NULL;
	if (mime_parser_finish(sp->mime, &sp->result) < 0) {
		errno = ENOMEM;
		return -1;
	}
	sp->finished = 1;
	in->fd = sp->fd;
	in->mem = spool_in_memory(sp) ? (const uint8_t *)sp->wbuf : NULL;
	in->size = sp->size;
	in->mime = &sp->result;
	return 0;
}

void
spool_free(struct spool *sp)
{
	uint8_t	 discard[GUID_LEN];

	if (sp == NULL)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	if (sp->hash != NULL)
		crypto_sha256_finish(sp->hash, discard);
	if (sp->mime != NULL)
		mime_parser_free(sp->mime);
	if (sp->finished)
		mime_result_free(&sp->result);
	free(sp->wbuf);
	free(sp->dir);
	free(sp);
}
