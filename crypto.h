/*
 * crypto.h — hashing, password hashing, key derivation and randomness,
 * on mbedTLS.
 *
 * This module and the TLS layer are the only code that includes mbedTLS
 * headers; everything else speaks of GUIDs, hex strings and bytes.
 */
#ifndef MAILREPD_CRYPTO_H
#define MAILREPD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define GUID_LEN	32		/* SHA-256 of the message bytes */
#define GUID_HEX_LEN	(GUID_LEN * 2)

struct sha256;

/* Incremental SHA-256; crypto_sha256_new() returns NULL without memory. */
struct sha256	*crypto_sha256_new(void);
void		 crypto_sha256_update(struct sha256 *, const void *, size_t);
/* Writes the digest and frees the context. */
void		 crypto_sha256_finish(struct sha256 *, uint8_t out[GUID_LEN]);
void		 crypto_sha256(const void *, size_t, uint8_t out[GUID_LEN]);

/* Fills buf with n bytes from the kernel's CSPRNG; returns 0 or -1. */
int		 crypto_random(void *buf, size_t n);

/* Writes 2n hex digits and a NUL to out. */
void		 crypto_hex(const uint8_t *in, size_t n, char *out);

/* Parses 2n hex digits; returns 0, or -1 for anything else. */
int		 crypto_unhex(const char *in, uint8_t *out, size_t n);
/* The value of one hex digit, either case, or -1. */
int		 crypto_hex_digit(int c);
/* The value of one base64 (RFC 4648) character, or -1. */
int		 crypto_base64_digit(int c);

/*
 * Decodes base64 (RFC 4648) into out (outcap bytes); returns 0 and
 * *outlen, or -1 for bad input or too little room.
 */
int		 crypto_base64_decode(const char *in, size_t inlen, uint8_t *out,
		    size_t outcap, size_t *outlen);

/*
 * Returns "$pbkdf2-sha256$ITER$SALT$HASH" (base64 salt and hash) for the
 * password, malloc'd, or NULL when memory or randomness failed.
 */
char		*crypto_password_hash(const char *password);

/* Returns 1 when password matches the stored hash, else 0. */
int		 crypto_password_verify(const char *password, const char *hash);

/*
 * Returns a stored hash, malloc'd (NULL without memory or randomness),
 * that costs what a real one costs to check and that no password
 * matches: an unknown user is checked against it, so that timing does
 * not tell unknown users from known ones.
 */
char		*crypto_password_dummy(void);

#define HMAC_LEN	32		/* HMAC-SHA256 */

/*
 * HMAC-SHA256 with key over the concatenation of n parts (part[i] of
 * len[i] bytes); writes HMAC_LEN bytes to out.
 */
void		 crypto_hmac_sha256(const void *key, size_t keylen,
		    const void *const *part, const size_t *len, size_t n,
		    uint8_t out[HMAC_LEN]);

/*
 * HKDF-SHA256 (RFC 5869) without a salt: derives outlen bytes (at most
 * 255 * HMAC_LEN) from the key material for the use that info names, so
 * that one secret gives independent keys for different uses.  Returns
 * 0, or -1 (out is then zeroed).
 */
int		 crypto_hkdf_sha256(const void *ikm, size_t ikmlen,
		    const char *info, uint8_t *out, size_t outlen);

/* Compares n bytes in constant time; returns 1 when equal. */
int		 crypto_equal(const void *a, const void *b, size_t n);

#endif /* MAILREPD_CRYPTO_H */
