/*
 * buf.c — growable, bounded byte buffers.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* What buf_ptr() returns for a buffer without memory; always empty. */
char	buf_none[1];

void
buf_init(struct buf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->len = b->cap = 0;
}

size_t
buf_room(const struct buf *b)
{
	return b->limit - buf_used(b);
}

/*
 * Compacts before growing: a session's input buffer is mostly consumed
 * from the front, and moving the tail down keeps it at its working size.
 */
char *
buf_reserve(struct buf *b, size_t want, size_t *got)
{
	size_t	 used = buf_used(b), ncap;
	char	*p;

	if (used >= b->limit)
		return NULL;
	if (want > b->limit - used)
		want = b->limit - used;
	if (b->start > 0 && b->cap - b->len < want) {
		memmove(b->data, b->data + b->start, used);
		b->start = 0;
		b->len = used;
	}
	if (b->cap - b->len < want) {
		ncap = b->cap ? b->cap : 256;
		while (ncap - b->len < want)
			ncap *= 2;
		if (ncap > b->limit)
			ncap = b->limit;
		if ((p = realloc(b->data, ncap)) == NULL)
			return NULL;
		b->data = p;
		b->cap = ncap;
	}
	*got = b->cap - b->len;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	assert(b->len + n <= b->cap);
	b->len += n;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t	 got;
	char	*dst;

	if (n == 0)
		return 0;
	if (n > buf_room(b) || (dst = buf_reserve(b, n, &got)) == NULL ||
	    got < n)
		return -1;
	memcpy(dst, p, n);
	buf_commit(b, n);
	return 0;
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	char	 small[512], *big;
	int	 n, rc;
	va_list	 ap2;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, n);
	if ((big = malloc((size_t)n + 1)) == NULL)
		return -1;
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	rc = buf_append(b, big, n);
	free(big);
	return rc;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_consume(struct buf *b, size_t n)
{
	assert(n <= buf_used(b));
	b->start += n;
	if (b->start == b->len)
		b->start = b->len = 0;
}

void
buf_reset(struct buf *b)
{
	b->start = b->len = 0;
}

void
buf_shrink(struct buf *b)
{
	if (buf_used(b) == 0)
		buf_free(b);
}
