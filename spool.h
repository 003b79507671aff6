/*
 * spool.h — a message on its way into the store.
 *
 * The bytes of an incoming message (LMTP DATA, IMAP APPEND, import,
 * replication) are gathered while their SHA-256 (the GUID) and the MIME
 * pre-parse are computed: in memory up to SPOOL_MEM_MAX bytes, past that
 * in an unlinked temporary file in the data directory, so that no large
 * message is ever held whole in memory.  store_deliver() then copies the
 * bytes into the database.
 */
#ifndef MAILREPD_SPOOL_H
#define MAILREPD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "mime.h"
#include "store.h"

struct spool;

/*
 * Creates a spool whose file, made only when the message outgrows
 * memory, goes under dir/tmp: a directory that cannot take it fails
 * here, before any byte is accepted (a file that cannot be made then
 * fails in spool_finish()).  Returns NULL on failure, logged, with
 * errno saying why (ENOSPC: the disk is full).
 */
struct spool	*spool_new(const char *dir);

/*
 * The same without looking at the directory: any failure shows in
 * spool_finish().  For many small messages in a row (replication).
 * NULL (ENOMEM) on failure.
 */
struct spool	*spool_new_deferred(const char *dir);

/*
 * Adds the next len bytes of the message, in chunks cut anywhere: in a
 * line, between a CR and its LF, NULs and bare CR or LF as they come.
 * The MIME pre-parse assembles the lines itself, so the result is the
 * same whatever the chunks; what the spool holds stays bounded however
 * long a line is (SPOOL_MEM_MAX of bytes, then the file; the pre-parse
 * keeps MIME_MAX_HEADER of a header and the head of the current line).
 * Errors are kept and reported by spool_finish(), so a caller may go on
 * feeding.
 */
void		 spool_add_bytes(struct spool *, const void *data, size_t len);

/* Bytes added so far. */
uint64_t	 spool_size(const struct spool *);

/*
 * Ends the message: flushes the file, fills *in (whose bytes in memory
 * and mime result the spool owns).  Returns 0, or -1 when writing failed
 * (a full disk, a quota or the file-size limit: errno is ENOSPC).
 */
int		 spool_finish(struct spool *, struct store_blob_in *in);

/* Closes and frees the spool (and its file, already unlinked). */
void		 spool_free(struct spool *);

#endif /* MAILREPD_SPOOL_H */
