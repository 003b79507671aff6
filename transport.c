/*
 * transport.c — a session's byte stream: plain, TLS, DEFLATE on top.
 *
 * The layers, bottom up: the socket; TLS when a handshake was started
 * (tls.c); raw DEFLATE (zlib, RFC 1951 without a header, as RFC 4978
 * asks) when COMPRESS was accepted.  Each layer's buffers are bounded:
 * DEFLATE keeps at most COMPRESS_CHUNK compressed bytes each way and
 * takes new cleartext only when its output has gone out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "config.h"
#include "tls.h"
#include "transport.h"

#define INFLATE_WINDOW_BITS	15	/* a client may use a 32 KiB window */
#define READ_ROUNDS		8	/* compressed reads per call, at most */

struct transport {
	int		 fd;
	struct tls_conn	*tls;
	int		 hs;		/* handshake running */
	int		 hs_want_write;
	int		 tls_up;	/* handshake done */
	time_t		 hs_since;
	int		 failed;	/* unusable: every call fails */
	/* a layer whose output side waits for `sw_after` more bytes */
	int		 sw_pending;
	enum transport_layer sw_layer;
	size_t		 sw_after;
	int		 read_blocked;	/* until a STARTTLS switch happens */
	/* DEFLATE */
	z_stream	*zi, *zo;
	unsigned char	*ib, *ob;	/* compressed input and output */
	size_t		 ib_start, ib_len, ob_start, ob_len;
	int		 zi_more;	/* inflate may have output left */
	int		 zo_more;	/* deflate has output left */
	int		 zi_eof;	/* the layer below ended */
};

struct transport *
transport_new(int fd)
{
	struct transport	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->fd = fd;
	return t;
}

void
transport_free(struct transport *t)
{
	if (t == NULL)
		return;
	tls_conn_free(t->tls);
	if (t->zi != NULL) {
		inflateEnd(t->zi);
		free(t->zi);
	}
	if (t->zo != NULL) {
		deflateEnd(t->zo);
		free(t->zo);
	}
	free(t->ib);
	free(t->ob);
	free(t);
}

/* --- the layer below DEFLATE: the socket or TLS ------------------------ */

static ssize_t
lower_read(struct transport *t, void *p, size_t n)
{
	if (t->tls != NULL)
		return tls_conn_read(t->tls, p, n);
	return read(t->fd, p, n);
}

/* Returns bytes sent, 0 when the socket is full, -1 on an error. */
static ssize_t
lower_write(struct transport *t, const void *p, size_t n)
{
	ssize_t	 w;

	if (t->tls != NULL)
		w = tls_conn_write(t->tls, p, n);
	else
		w = send(t->fd, p, n, MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return 0;
	if (w < 0)
		t->failed = 1;
	return w;
}

/* --- switching layers ------------------------------------------------------- */

static int
start_tls(struct transport *t, enum transport_layer layer)
{
	enum tls_role	 role = layer == TRANSPORT_TLS ? TLS_SERVER :
			    layer == TRANSPORT_TLS_PSK_SERVER ? TLS_PSK_SERVER :
			    TLS_PSK_CLIENT;

	if ((t->tls = tls_conn_new(t->fd, role)) == NULL)
		return -1;
	t->hs = 1;
	/* A client's ClientHello goes out once the connect is done. */
	t->hs_want_write = role == TLS_PSK_CLIENT;
	t->read_blocked = 0;
	return 0;
}

static int
is_tls(enum transport_layer layer)
{
	return layer != TRANSPORT_DEFLATE;
}

static int
start_deflate_output(struct transport *t)
{
	if ((t->zo = calloc(1, sizeof(*t->zo))) == NULL ||
	    (t->ob = malloc(COMPRESS_CHUNK)) == NULL)
		return -1;
	if (deflateInit2(t->zo, COMPRESS_LEVEL, Z_DEFLATED,
	    -COMPRESS_WINDOW_BITS, COMPRESS_MEM_LEVEL,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(t->zo);
		t->zo = NULL;
		return -1;
	}
	return 0;
}

static int
start_deflate_input(struct transport *t, const void *pending, size_t n)
{
	if (n > COMPRESS_CHUNK || (t->zi = calloc(1, sizeof(*t->zi))) == NULL ||
	    (t->ib = malloc(COMPRESS_CHUNK)) == NULL)
		return -1;
	if (inflateInit2(t->zi, -INFLATE_WINDOW_BITS) != Z_OK) {
		free(t->zi);
		t->zi = NULL;
		return -1;
	}
	if (n > 0)
		memcpy(t->ib, pending, n);
	t->ib_len = n;
	return 0;
}

/* The output side of a switch, once the old way's bytes are out. */
static int
switch_output(struct transport *t)
{
	t->sw_pending = 0;
	if (is_tls(t->sw_layer))
		return start_tls(t, t->sw_layer);
	return start_deflate_output(t);
}

int
transport_switch(struct transport *t, enum transport_layer layer,
    size_t after, const void *pending, size_t npending, time_t now)
{
	if (t->failed || t->sw_pending)
		return -1;
	if (is_tls(layer)) {
		if (t->tls != NULL || t->zi != NULL ||
		    !(layer == TRANSPORT_TLS ? tls_available() :
		    tls_psk_available()))
			return -1;
		/* What came after the command was sent in the clear. */
		t->read_blocked = 1;
		t->hs_since = now;
	} else {
		if (t->zi != NULL || t->hs ||
		    start_deflate_input(t, pending, npending) < 0)
			return -1;
	}
	t->sw_layer = layer;
	t->sw_after = after;
	t->sw_pending = 1;
	if (after == 0 && switch_output(t) < 0) {
		t->failed = 1;
		return -1;
	}
	return 0;
}

int
transport_handshake(struct transport *t)
{
	int	 rc;

	if (t->failed)
		return -1;
	if (!t->hs)
		return 2;
	rc = tls_conn_handshake(t->tls, &t->hs_want_write);
	if (rc == 0)
		return 0;
	t->hs = 0;
	if (rc < 0) {
		t->failed = 1;
		return -1;
	}
	t->tls_up = 1;
	return 1;
}

/* --- reading ------------------------------------------------------------------ */

/* Inflates from the compressed input; reads more from below when dry. */
static ssize_t
inflate_read(struct transport *t, void *p, size_t n)
{
	ssize_t	 r;
	size_t	 produced;
	int	 rc, round;

	for (round = 0; round < READ_ROUNDS; round++) {
		if (t->ib_len > t->ib_start || t->zi_more) {
			t->zi->next_in = t->ib + t->ib_start;
			t->zi->avail_in = (uInt)(t->ib_len - t->ib_start);
			t->zi->next_out = p;
			t->zi->avail_out = (uInt)n;
			rc = inflate(t->zi, Z_SYNC_FLUSH);
			t->ib_start = t->ib_len - t->zi->avail_in;
			if (t->ib_start == t->ib_len)
				t->ib_start = t->ib_len = 0;
			produced = n - t->zi->avail_out;
			/* A stream that ends, or bad data, ends the session. */
			if (rc != Z_OK && rc != Z_BUF_ERROR) {
				t->failed = 1;
				errno = EPROTO;
				return -1;
			}
			t->zi_more = t->zi->avail_out == 0;
			if (produced > 0)
				return (ssize_t)produced;
		}
		if (t->zi_eof)
			return 0;
		if (t->ib_start > 0) {
			memmove(t->ib, t->ib + t->ib_start,
			    t->ib_len - t->ib_start);
			t->ib_len -= t->ib_start;
			t->ib_start = 0;
		}
		if (t->ib_len == COMPRESS_CHUNK) {
			/* inflate took none of a full buffer: not DEFLATE */
			t->failed = 1;
			errno = EPROTO;
			return -1;
		}
		r = lower_read(t, t->ib + t->ib_len, COMPRESS_CHUNK - t->ib_len);
		if (r < 0)
			return -1;
		if (r == 0) {
			t->zi_eof = 1;
			return 0;
		}
		t->ib_len += (size_t)r;
	}
	errno = EAGAIN;
	return -1;
}

ssize_t
transport_read(struct transport *t, void *p, size_t n)
{
	int	 rc;

	if (t->failed) {
		errno = EPROTO;
		return -1;
	}
	if (t->read_blocked) {
		errno = EAGAIN;
		return -1;
	}
	if (t->hs && (rc = transport_handshake(t)) <= 0) {
		errno = rc == 0 ? EAGAIN : EPROTO;
		return -1;
	}
	if (t->zi != NULL)
		return inflate_read(t, p, n);
	return lower_read(t, p, n);
}

/* --- writing ------------------------------------------------------------------ */

/*
 * Sends the compressed output, deflating what zlib still holds.
 * Returns 1 when all is out, 0 when the layer below is full, -1.
 */
static int
flush_deflate(struct transport *t)
{
	ssize_t	 w;

	for (;;) {
		while (t->ob_start < t->ob_len) {
			w = lower_write(t, t->ob + t->ob_start,
			    t->ob_len - t->ob_start);
			if (w <= 0)
				return (int)w;
			t->ob_start += (size_t)w;
		}
		t->ob_start = t->ob_len = 0;
		if (!t->zo_more)
			return 1;
		t->zo->next_in = NULL;
		t->zo->avail_in = 0;
		t->zo->next_out = t->ob;
		t->zo->avail_out = COMPRESS_CHUNK;
		(void)deflate(t->zo, Z_SYNC_FLUSH);
		t->ob_len = COMPRESS_CHUNK - t->zo->avail_out;
		t->zo_more = t->zo->avail_out == 0;
	}
}

/* Compresses cleartext once the previous output has gone out. */
static ssize_t
deflate_write(struct transport *t, const void *p, size_t n)
{
	size_t	 taken;
	int	 rc;

	if ((rc = flush_deflate(t)) <= 0)
		return rc;
	t->zo->next_in = (Bytef *)p;
	t->zo->avail_in = (uInt)n;
	t->zo->next_out = t->ob;
	t->zo->avail_out = COMPRESS_CHUNK;
	rc = deflate(t->zo, Z_SYNC_FLUSH);
	if (rc != Z_OK && rc != Z_BUF_ERROR) {
		t->failed = 1;
		errno = EPROTO;
		return -1;
	}
	taken = n - t->zo->avail_in;
	t->ob_len = COMPRESS_CHUNK - t->zo->avail_out;
	t->zo_more = t->zo->avail_out == 0;
	if (flush_deflate(t) < 0)
		return -1;
	return (ssize_t)taken;
}

ssize_t
transport_write(struct transport *t, const void *p, size_t n)
{
	ssize_t	 w;
	int	 rc;

	if (t->failed) {
		errno = EPIPE;
		return -1;
	}
	if (t->hs) {
		if ((rc = transport_handshake(t)) <= 0) {
			errno = EPIPE;
			return rc == 0 ? 0 : -1;
		}
	}
	if (t->sw_pending && n > t->sw_after)
		n = t->sw_after;
	w = t->zo != NULL ? deflate_write(t, p, n) : lower_write(t, p, n);
	if (w > 0 && t->sw_pending) {
		t->sw_after -= (size_t)w;
		if (t->sw_after == 0 && switch_output(t) < 0) {
			t->failed = 1;
			errno = EPIPE;
			return -1;
		}
	}
	return w;
}

int
transport_flush(struct transport *t)
{
	int	 rc;

	if (t->failed)
		return -1;
	if (t->hs && (rc = transport_handshake(t)) <= 0)
		return rc;
	if (t->zo != NULL)
		return flush_deflate(t);
	return 1;
}

void
transport_abort(struct transport *t)
{
	t->failed = 1;
	t->ob_start = t->ob_len = 0;
	t->zo_more = 0;
	t->hs = 0;
}

/* --- state ----------------------------------------------------------------- */

int
transport_readable(const struct transport *t)
{
	return !t->failed && !t->read_blocked;
}

int
transport_wants(const struct transport *t)
{
	int	 w = 0;

	if (t->failed)
		return 0;
	if (t->hs)
		w |= t->hs_want_write ? TRANSPORT_WANT_WRITE :
		    TRANSPORT_WANT_READ;
	if (t->ob_len > t->ob_start || t->zo_more)
		w |= TRANSPORT_WANT_WRITE;
	return w;
}

int
transport_pending_input(const struct transport *t)
{
	if (t->failed || t->read_blocked || t->hs)
		return 0;
	if (t->zi != NULL && (t->ib_len > t->ib_start || t->zi_more))
		return 1;
	return t->tls_up && tls_conn_pending(t->tls);
}

int
transport_pending_output(const struct transport *t)
{
	return (transport_wants(t) & TRANSPORT_WANT_WRITE) != 0;
}

int
transport_handshaking(const struct transport *t, time_t *since)
{
	if (since != NULL)
		*since = t->hs_since;
	return t->hs || (t->read_blocked && is_tls(t->sw_layer));
}

int
transport_secure(const struct transport *t)
{
	return t->tls_up;
}

int
transport_compressed(const struct transport *t)
{
	return t->zi != NULL;
}

void
transport_tls_info(struct transport *t, char *buf, size_t len)
{
	if (t->tls == NULL)
		snprintf(buf, len, "no TLS");
	else if (t->tls_up)
		snprintf(buf, len, "%s %s", tls_conn_version(t->tls),
		    tls_conn_cipher(t->tls));
	else
		(void)transport_tls_failure(t, buf, len);
}

enum transport_tls_fail
transport_tls_failure(struct transport *t, char *why, size_t len)
{
	const char	*e = t->tls != NULL ? tls_conn_error(t->tls) : NULL;

	if (e == NULL) {
		snprintf(why, len, "no TLS error");
		return TRANSPORT_TLS_OK;
	}
	snprintf(why, len, "%s", e);
	return tls_conn_wrong_key(t->tls) ? TRANSPORT_TLS_WRONG_KEY :
	    TRANSPORT_TLS_ERROR;
}
