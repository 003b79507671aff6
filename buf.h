/*
 * buf.h — a growable byte buffer with a hard size limit.
 *
 * Sessions own one for input and one for output.  Data is appended at the
 * end and consumed from the front; the buffer never grows past `limit`,
 * which is how every peer-controlled length stays bounded.
 */
#ifndef MAILREPD_BUF_H
#define MAILREPD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 start;		/* first unconsumed byte */
	size_t	 len;		/* bytes in use, from data[0] */
	size_t	 cap;		/* bytes allocated */
	size_t	 limit;		/* cap never exceeds this */
};

void	buf_init(struct buf *, size_t limit);
void	buf_free(struct buf *);

/*
 * Unconsumed bytes and their count.  Never NULL: a buffer whose memory
 * buf_shrink() freed reads as empty, so callers may pass the pointer to
 * memchr() and friends with a count of zero.
 */
extern char	buf_none[1];

static inline char *
buf_ptr(const struct buf *b)
{
	return b->data != NULL ? b->data + b->start : buf_none;
}

static inline size_t
buf_used(const struct buf *b)
{
	return b->len - b->start;
}

/* Bytes that may still be appended before the limit. */
size_t	buf_room(const struct buf *);

/*
 * Makes room for at least `want` more bytes (compacting and growing up to
 * the limit) and returns where to write them; *got is how many fit.
 * Returns NULL when the buffer is at its limit or memory ran out.
 */
char	*buf_reserve(struct buf *, size_t want, size_t *got);

/* Marks n bytes written after buf_reserve(). */
void	buf_commit(struct buf *, size_t n);

/* Appends; returns 0, or -1 when the limit or memory would be exceeded. */
int	buf_append(struct buf *, const void *, size_t);
int	buf_printf(struct buf *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *, const char *fmt, va_list)
	    __attribute__((format(printf, 2, 0)));

/* Drops n bytes from the front. */
void	buf_consume(struct buf *, size_t n);

/* Drops everything. */
void	buf_reset(struct buf *);

/*
 * Frees the memory of an empty buffer (it is allocated again when
 * needed), so that idle sessions hold no buffers.
 */
void	buf_shrink(struct buf *);

#endif /* MAILREPD_BUF_H */
