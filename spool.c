/*
 * spool.c — streaming a message to a temporary file, hashing and
 * pre-parsing it on the way.
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

#define SPOOL_WBUF	(64 * 1024)	/* bytes gathered per write(2) */

struct spool {
	int			 fd;
	int			 error;		/* errno of the first failure */
	uint64_t		 size;
	struct sha256		*hash;
	struct mime_parser	*mime;
	struct mime_result	 result;
	int			 finished;
	size_t			 wlen;
	char			 wbuf[SPOOL_WBUF];
};

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

	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if ((fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/tmp/spool.XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
		unlink(path);
	return fd;
}

struct spool *
spool_new(const char *dir)
{
	struct spool	*sp;
	int		 e;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	sp->fd = spool_open_file(dir);
	sp->hash = crypto_sha256_new();
	sp->mime = mime_parser_new();
	if (sp->fd < 0 || sp->hash == NULL || sp->mime == NULL) {
		e = sp->fd < 0 ? errno : ENOMEM;
		if (e == EDQUOT)
			e = ENOSPC;	/* as in spool_flush() */
		log_error("spool.open", "dir=%s msg=%s", log_quote(dir),
		    log_quote(strerror(e)));
		spool_free(sp);
		errno = e;	/* the caller tells a full disk apart */
		return NULL;
	}
	return sp;
}

/* Writes the gathered bytes out; remembers the first error. */
static void
spool_flush(struct spool *sp)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (sp->error == 0 && off < sp->wlen) {
		if ((n = write(sp->fd, sp->wbuf + off, sp->wlen - off)) < 0) {
			/*
			 * A quota or the file-size limit is a full disk to
			 * the client: callers test for ENOSPC alone.
			 */
			if (errno == EDQUOT || errno == EFBIG)
				sp->error = ENOSPC;
			else if (errno != EINTR)
				sp->error = errno;
			continue;
		}
		off += n;
	}
	sp->wlen = 0;
}

void
spool_add_line(struct spool *sp, const char *line, size_t len)
{
	size_t	 n;

	sp->size += len;
	crypto_sha256_update(sp->hash, line, len);
	mime_parser_feed(sp->mime, line, len);
	while (len > 0) {
		if (sp->wlen == SPOOL_WBUF)
			spool_flush(sp);
		n = SPOOL_WBUF - sp->wlen < len ? SPOOL_WBUF - sp->wlen : len;
		memcpy(sp->wbuf + sp->wlen, line, n);
		sp->wlen += n;
		line += n;
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
	free(sp);
}
