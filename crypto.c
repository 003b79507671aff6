/*
 * crypto.c — SHA-256, PBKDF2-HMAC-SHA256, HMAC and HKDF, randomness.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>

#include "config.h"
#include "crypto.h"

#define PBKDF2_HASH_LEN	32

struct sha256 {
	mbedtls_sha256_context	ctx;
};

struct sha256 *
crypto_sha256_new(void)
{
	struct sha256	*h;

	if ((h = malloc(sizeof(*h))) == NULL)
		return NULL;
	mbedtls_sha256_init(&h->ctx);
	mbedtls_sha256_starts_ret(&h->ctx, 0);
	return h;
}

void
crypto_sha256_update(struct sha256 *h, const void *p, size_t n)
{
	mbedtls_sha256_update_ret(&h->ctx, p, n);
}

void
crypto_sha256_finish(struct sha256 *h, uint8_t out[GUID_LEN])
{
	mbedtls_sha256_finish_ret(&h->ctx, out);
	mbedtls_sha256_free(&h->ctx);
	free(h);
}

void
crypto_sha256(const void *p, size_t n, uint8_t out[GUID_LEN])
{
	mbedtls_sha256_ret(p, n, out, 0);
}

int
crypto_random(void *buf, size_t n)
{
	uint8_t	*p = buf;
	ssize_t	 r;

	while (n > 0) {
		if ((r = getrandom(p, n, 0)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= r;
	}
	return 0;
}

void
crypto_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t	 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
crypto_base64_digit(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
crypto_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
crypto_unhex(const char *in, uint8_t *out, size_t n)
{
	size_t	 i;
	int	 hi, lo;

	for (i = 0; i < n; i++) {
		if ((hi = crypto_hex_digit(in[2 * i])) < 0 ||
		    (lo = crypto_hex_digit(in[2 * i + 1])) < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return in[2 * n] == '\0' ? 0 : -1;
}

/* Derives PBKDF2_HASH_LEN bytes from password and salt; returns 0 or -1. */
static int
pbkdf2(const char *password, const uint8_t *salt, size_t saltlen,
    unsigned iterations, uint8_t out[PBKDF2_HASH_LEN])
{
	mbedtls_md_context_t	 md;
	int			 rc;

	mbedtls_md_init(&md);
	rc = mbedtls_md_setup(&md,
	    mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (rc == 0)
		rc = mbedtls_pkcs5_pbkdf2_hmac(&md,
		    (const unsigned char *)password, strlen(password), salt,
		    saltlen, iterations, PBKDF2_HASH_LEN, out);
	mbedtls_md_free(&md);
	return rc == 0 ? 0 : -1;
}

/* The stored form of a salt and a hash: "$pbkdf2-sha256$ITER$SALT$HASH". */
static char *
stored_form(const uint8_t salt[PBKDF2_SALT_LEN],
    const uint8_t hash[PBKDF2_HASH_LEN])
{
	unsigned char	 salt64[64], hash64[64];
	size_t		 n1, n2;
	char		*out;

	mbedtls_base64_encode(salt64, sizeof(salt64), &n1, salt,
	    PBKDF2_SALT_LEN);
	mbedtls_base64_encode(hash64, sizeof(hash64), &n2, hash,
	    PBKDF2_HASH_LEN);
	if (asprintf(&out, "$pbkdf2-sha256$%u$%s$%s", PBKDF2_ITERATIONS,
	    salt64, hash64) < 0)
		return NULL;
	return out;
}

char *
crypto_password_hash(const char *password)
{
	uint8_t		 salt[PBKDF2_SALT_LEN], hash[PBKDF2_HASH_LEN];

	if (crypto_random(salt, sizeof(salt)) < 0 ||
	    pbkdf2(password, salt, sizeof(salt), PBKDF2_ITERATIONS, hash) < 0)
		return NULL;
	return stored_form(salt, hash);
}

/* A random "hash" is the output of no password worth guessing. */
char *
crypto_password_dummy(void)
{
	uint8_t		 salt[PBKDF2_SALT_LEN], hash[PBKDF2_HASH_LEN];

	if (crypto_random(salt, sizeof(salt)) < 0 ||
	    crypto_random(hash, sizeof(hash)) < 0)
		return NULL;
	return stored_form(salt, hash);
}

int
crypto_password_verify(const char *password, const char *stored)
{
	char		 salt64[64], hash64[64];
	uint8_t		 salt[48], want[48], got[PBKDF2_HASH_LEN], diff = 0;
	size_t		 saltlen, wantlen, i;
	unsigned	 iter;

	if (sscanf(stored, "$pbkdf2-sha256$%u$%63[^$]$%63s", &iter, salt64,
	    hash64) != 3 || iter == 0 || iter > 10000000)
		return 0;
	if (mbedtls_base64_decode(salt, sizeof(salt), &saltlen,
	    (unsigned char *)salt64, strlen(salt64)) != 0 ||
	    mbedtls_base64_decode(want, sizeof(want), &wantlen,
	    (unsigned char *)hash64, strlen(hash64)) != 0 ||
	    wantlen != PBKDF2_HASH_LEN)
		return 0;
	if (pbkdf2(password, salt, saltlen, iter, got) < 0)
		return 0;
	for (i = 0; i < PBKDF2_HASH_LEN; i++)
		diff |= got[i] ^ want[i];
	return diff == 0;
}

int
crypto_base64_decode(const char *in, size_t inlen, uint8_t *out,
    size_t outcap, size_t *outlen)
{
	return mbedtls_base64_decode(out, outcap, outlen,
	    (const unsigned char *)in, inlen) == 0 ? 0 : -1;
}

void
crypto_hmac_sha256(const void *key, size_t keylen, const void *const *part,
    const size_t *len, size_t n, uint8_t out[HMAC_LEN])
{
	mbedtls_md_context_t	 md;
	size_t			 i;

	mbedtls_md_init(&md);
	if (mbedtls_md_setup(&md,
	    mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0 ||
	    mbedtls_md_hmac_starts(&md, key, keylen) != 0) {
		/* Out of memory: a MAC nobody can match. */
		memset(out, 0, HMAC_LEN);
		mbedtls_md_free(&md);
		return;
	}
	for (i = 0; i < n; i++)
		mbedtls_md_hmac_update(&md, part[i], len[i]);
	mbedtls_md_hmac_finish(&md, out);
	mbedtls_md_free(&md);
}

int
crypto_hkdf_sha256(const void *ikm, size_t ikmlen, const char *info,
    uint8_t *out, size_t outlen)
{
	if (mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), NULL,
	    0, ikm, ikmlen, (const unsigned char *)info, strlen(info), out,
	    outlen) != 0) {
		memset(out, 0, outlen);
		return -1;
	}
	return 0;
}

int
crypto_equal(const void *a, const void *b, size_t n)
{
	const uint8_t	*x = a, *y = b;
	uint8_t		 diff = 0;
	size_t		 i;

	for (i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
