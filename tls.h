/*
 * tls.h — TLS for the client listeners, on mbedTLS.
 *
 * The server has one TLS identity at a time: a certificate and key read
 * from --tls-cert/--tls-key, or else one generated in the data directory
 * on first start (ECDSA P-256, self-signed, subject CN = --name).
 * tls_reload() swaps in a freshly read identity; connections already
 * open keep the one they started with until they close.
 *
 * Beside it, the replication channel has a pre-shared key (TLS-PSK,
 * tls_psk_init()): no certificates, both ends prove the key in the
 * handshake, and a connection is made as its server (the master) or
 * its client (a replica).
 *
 * A struct tls_conn is one connection's TLS state over a non-blocking
 * socket.  Nothing here blocks: every call returns what it could do and,
 * with errno EAGAIN, what it waits for.  Only this module and crypto.c
 * include mbedTLS headers.
 */
#ifndef MAILREPD_TLS_H
#define MAILREPD_TLS_H

#include <stddef.h>
#include <sys/types.h>

#define TLS_FINGERPRINT_HEX_LEN	64	/* SHA-256 in hex, no separators */

/*
 * Reads (or, with cert and key NULL, finds or creates in data_dir) the
 * server's certificate and key.  A generated certificate's subject is
 * CN=name.  Logs the certificate's SHA-256 fingerprint.  Returns 0, or
 * -1 after writing a message naming the setting at fault (tls-cert,
 * tls-key, data) into err: missing, unreadable, expired, not yet valid,
 * or a key that does not match the certificate.
 */
int		 tls_init(const char *cert, const char *key,
		    const char *data_dir, const char *name, char *err,
		    size_t errlen);

/* Reads the same files again (SIGHUP).  On failure the old identity stays. */
int		 tls_reload(char *err, size_t errlen);

/* Frees the identity; connections must be freed first. */
void		 tls_shutdown(void);

/* Whether tls_init() succeeded: STARTTLS and IMAPS can be offered. */
int		 tls_available(void);

/*
 * The SHA-256 fingerprint of the certificate in use (of its DER bytes)
 * as TLS_FINGERPRINT_HEX_LEN lower-case hex digits, or NULL before
 * tls_init().  The string stays valid until the next reload.
 */
const char	*tls_fingerprint(void);

/*
 * Sets up TLS-PSK with key (keylen bytes, at most TLS_PSK_MAX) under the
 * given identity, for both roles: only ECDHE-PSK with an AEAD cipher, so
 * that a recorded stream stays secret even if the key leaks later.
 * tls_shutdown() wipes the key.  Returns 0, or -1 with a message in err.
 */
#define TLS_PSK_MAX	32	/* Debian's MBEDTLS_PSK_MAX_LEN */
int		 tls_psk_init(const void *key, size_t keylen,
		    const char *identity, char *err, size_t errlen);

/* Whether tls_psk_init() succeeded. */
int		 tls_psk_available(void);

struct tls_conn;

enum tls_role {
	TLS_SERVER,		/* the server's certificate (IMAPS, STARTTLS) */
	TLS_PSK_SERVER,		/* the pre-shared key, accepting */
	TLS_PSK_CLIENT,		/* the pre-shared key, connecting */
};

/* A TLS connection over fd (not owned); NULL without memory or setup. */
struct tls_conn	*tls_conn_new(int fd, enum tls_role);
void		 tls_conn_free(struct tls_conn *);

/*
 * Runs the handshake as far as the socket allows.  Returns 1 when it is
 * done, 0 when it waits (*want_write says for what), -1 when it failed
 * (tls_conn_error() says why).
 */
int		 tls_conn_handshake(struct tls_conn *, int *want_write);

/*
 * Reads decrypted bytes.  Returns their count, 0 when the peer closed
 * (close_notify or EOF), or -1 with errno EAGAIN (nothing yet) or EPROTO
 * or ECONNRESET (the connection is unusable).
 */
ssize_t		 tls_conn_read(struct tls_conn *, void *, size_t);

/*
 * Encrypts and sends up to n bytes; returns how many were taken, or -1
 * with errno EAGAIN or another error.  After EAGAIN the next call must
 * pass the same bytes again (the buffer may have grown behind them).
 */
ssize_t		 tls_conn_write(struct tls_conn *, const void *, size_t n);

/* Whether decrypted or undecrypted input waits inside the TLS layer. */
int		 tls_conn_pending(const struct tls_conn *);

/* The protocol version and cipher suite, for the log. */
const char	*tls_conn_version(const struct tls_conn *);
const char	*tls_conn_cipher(const struct tls_conn *);

/* The last error as text, for the log; NULL when there was none. */
const char	*tls_conn_error(struct tls_conn *);

/*
 * Whether a PSK handshake failed because the two ends hold different
 * keys (or identities): the peer's Finished did not decrypt, or the
 * peer said so with an alert.  Errors after the handshake never count.
 */
int		 tls_conn_wrong_key(const struct tls_conn *);

#endif /* MAILREPD_TLS_H */
