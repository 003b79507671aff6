/*
 * transport.h — how a session's bytes reach its socket.
 *
 * A transport is a stack over one non-blocking socket: plain, or TLS
 * (tls.h: the server's certificate, or the replication channel's
 * pre-shared key as its server or client), with optionally a DEFLATE
 * layer on top (IMAP COMPRESS, RFC 4978).  The session layer reads cleartext from it into its input
 * buffer and hands it cleartext from its output buffer; the protocols
 * never see the layers.
 *
 * Switching layers in the middle of a connection (STARTTLS, COMPRESS)
 * is ordered against the output: transport_switch() takes effect for
 * input at once, and for output after the `after` bytes that the
 * session has already queued (the protocol's "go ahead" reply) have
 * been sent the old way.  Until a STARTTLS switch happens nothing is
 * read, so that no plaintext can be taken as if it came over TLS.
 *
 * Memory: a TLS connection costs mbedTLS's two record buffers (about
 * 16.7 KiB each with Debian's MBEDTLS_SSL_MAX_CONTENT_LEN of 16 KiB);
 * DEFLATE adds a 32 KiB inflate window, the deflate state of
 * COMPRESS_WINDOW_BITS/COMPRESS_MEM_LEVEL and two COMPRESS_CHUNK
 * buffers, 80 KiB in all (config.h), which is why IMAP sessions hold it
 * only in one of --max-compress-sessions slots (proto.h).
 */
#ifndef MAILREPD_TRANSPORT_H
#define MAILREPD_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct transport;

enum transport_layer {
	TRANSPORT_TLS,		/* start a server TLS handshake */
	TRANSPORT_TLS_PSK_SERVER, /* the same with the pre-shared key */
	TRANSPORT_TLS_PSK_CLIENT, /* a client handshake with it: speaks
				   first, once the socket is writable */
	TRANSPORT_DEFLATE,	/* compress both ways (raw DEFLATE) */
};

/* A plain transport over fd (not owned); NULL without memory. */
struct transport *transport_new(int fd);
void		  transport_free(struct transport *);

/*
 * Adds a layer: for input now, for output once `after` more bytes have
 * been written.  `pending` is input the session had already buffered
 * past the command that asked for the switch: it is dropped for TLS
 * (plaintext injection) and taken as compressed input for DEFLATE.
 * Returns 0, or -1 when the layer cannot be added (no TLS identity, no
 * memory, already active).
 */
int	transport_switch(struct transport *, enum transport_layer,
	    size_t after, const void *pending, size_t npending, time_t now);

/*
 * Runs a TLS handshake as far as the socket allows: 1 when it has just
 * finished, 2 when none is running, 0 while it waits, -1 when it failed.
 */
int	transport_handshake(struct transport *);

/*
 * Reads cleartext: returns its count, 0 at the end of the stream, or -1
 * with errno EAGAIN (nothing now; also while a handshake runs) or
 * another error.
 */
ssize_t	transport_read(struct transport *, void *, size_t);

/*
 * Takes up to n bytes of cleartext to send; returns how many were taken
 * (0 when the lower layers are full), or -1 with errno set when the
 * connection is unusable.  After a short count the rest must be offered
 * again unchanged.
 */
ssize_t	transport_write(struct transport *, const void *, size_t);

/*
 * Sends what the layers hold (DEFLATE output, a TLS record).  Returns 1
 * when nothing is left, 0 when some is, -1 on an error.
 */
int	transport_flush(struct transport *);

/* Drops whatever output the layers hold: the peer will not read it. */
void	transport_abort(struct transport *);

/* Whether the session may read now (not while a STARTTLS switch waits). */
int	transport_readable(const struct transport *);

/* What poll() should wait for on the transport's own behalf. */
#define TRANSPORT_WANT_READ	0x1
#define TRANSPORT_WANT_WRITE	0x2
int	transport_wants(const struct transport *);

/* Input already inside the layers: read again without waiting for poll. */
int	transport_pending_input(const struct transport *);

/* Output inside the layers not yet on the socket. */
int	transport_pending_output(const struct transport *);

/*
 * Whether a TLS handshake is running, and when it began; whether TLS is
 * up (the handshake done); whether DEFLATE is on.
 */
int	transport_handshaking(const struct transport *, time_t *since);
int	transport_secure(const struct transport *);
int	transport_compressed(const struct transport *);

/* For the log: "TLSv1.2 cipher", or why the handshake failed. */
void	transport_tls_info(struct transport *, char *, size_t);

/* Whether and how TLS failed, in the handshake or on a later record. */
enum transport_tls_fail {
	TRANSPORT_TLS_OK,	/* no TLS, or no TLS error */
	TRANSPORT_TLS_ERROR,	/* the reason is in the text */
	TRANSPORT_TLS_WRONG_KEY, /* the peer holds another pre-shared key */
};

/* Says how TLS failed; the reason, for the log, goes to why. */
enum transport_tls_fail transport_tls_failure(struct transport *,
	    char *why, size_t len);


#endif /* MAILREPD_TRANSPORT_H */
