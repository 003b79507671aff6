/*
 * tls.c — the server's TLS identity and per-connection TLS, on mbedTLS.
 *
 * An identity (struct tls_cred) is a certificate, its key and the
 * mbedtls_ssl_config that serves them.  Every connection holds a
 * reference to the identity it started with, so a reload (SIGHUP) never
 * pulls a configuration from under a live connection: the old identity
 * is freed when its last connection closes.
 *
 * Only TLS 1.2 is negotiated: Debian's mbedTLS 2.28 has no TLS 1.3
 * server, and 1.0/1.1 are refused.  Cipher suites are ECDHE with AEAD
 * only (AES-GCM, ChaCha20-Poly1305), for ECDSA and RSA keys.
 *
 * The replication channel uses a pre-shared key instead (one config per
 * role, set once at start): ECDHE-PSK with ChaCha20-Poly1305, the only
 * suite of mbedTLS 2.28 that has both forward secrecy and an AEAD over a
 * PSK (it has no ECDHE-PSK with AES-GCM; DHE-PSK's would cost a
 * 2048-bit modular exponentiation per handshake).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "config.h"
#include "durable.h"
#include "crypto.h"
#include "log.h"
#include "tls.h"

#define GEN_CERT_FILE	"tls-cert.pem"
#define GEN_KEY_FILE	"tls-key.pem"
#define PEM_MAX		4096		/* a generated P-256 cert or key */

struct tls_cred {
	mbedtls_ssl_config	 conf;
	mbedtls_x509_crt	 crt;
	mbedtls_pk_context	 key;
	char			 fingerprint[TLS_FINGERPRINT_HEX_LEN + 1];
	unsigned		 refs;		/* tls.cur and connections */
};

struct tls_conn {
	mbedtls_ssl_context	 ssl;
	struct tls_cred		*cred;		/* NULL with a PSK */
	int			 psk;
	int			 fd;
	size_t			 pending;	/* bytes of a write that
						   returned WANT_WRITE */
	int			 err;		/* last mbedTLS error */
	int			 hs_err;	/* err came from the handshake */
	unsigned char		 alert;		/* of a fatal alert received */
	char			 errbuf[128];
};

static struct {
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
	int			 seeded;
	struct tls_cred		*cur;
	char			 cert[PATH_MAX];
	char			 key[PATH_MAX];
	char			 name[256];	/* --name, for generating */
	int			 generated;	/* the data directory's pair */
	mbedtls_ssl_config	 psk_srv, psk_cli;
	int			 psk;		/* both set up */
} tls;

static const int suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0
};

static const int psk_suites[] = {
	MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
	0
};

static const mbedtls_ecp_group_id curves[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_NONE
};

static void
strerr(int rc, char *buf, size_t len)
{
	mbedtls_strerror(rc, buf, len);
}

static int
rng_seed(void)
{
	static const unsigned char pers[] = "mailrepd tls";

	if (tls.seeded)
		return 0;
	mbedtls_entropy_init(&tls.entropy);
	mbedtls_ctr_drbg_init(&tls.drbg);
	if (mbedtls_ctr_drbg_seed(&tls.drbg, mbedtls_entropy_func,
	    &tls.entropy, pers, sizeof(pers) - 1) != 0) {
		mbedtls_ctr_drbg_free(&tls.drbg);
		mbedtls_entropy_free(&tls.entropy);
		return -1;
	}
	tls.seeded = 1;
	return 0;
}

static void
cred_unref(struct tls_cred *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_x509_crt_free(&c->crt);
	mbedtls_pk_free(&c->key);
	free(c);
}

/*
 * What every configuration shares: our random generator, TLS 1.2 only,
 * the given cipher suites, our curves, no renegotiation.
 */
static void
conf_common(mbedtls_ssl_config *conf, const int *cs)
{
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &tls.drbg);
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(conf, cs);
	mbedtls_ssl_conf_curves(conf, curves);
	mbedtls_ssl_conf_renegotiation(conf,
	    MBEDTLS_SSL_RENEGOTIATION_DISABLED);
}

/* "YYYY-MM-DD" of an X.509 time, for error messages. */
static void
x509_date(const mbedtls_x509_time *t, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d-%02d", t->year, t->mon, t->day);
}

/*
 * Writes data to path atomically and durably (a temporary file, then
 * durable_replace()), with the given mode.  Returns 0 or -1 (errno set).
 */
static int
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char	 tmp[PATH_MAX];
	int	 fd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len) {
		saved = errno ? errno : EIO;
		close(fd);
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) < 0 || durable_replace(tmp, path) < 0) {
		saved = errno;
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Appends one GeneralName (tag, bytes) at out[*n]. */
static void
general_name(unsigned char *out, size_t *n, unsigned char tag,
    const char *p, size_t len)
{
	size_t	 i;

	out[(*n)++] = tag;
	out[(*n)++] = (unsigned char)len;
	for (i = 0; i < len; i++)
		out[(*n)++] = (unsigned char)p[i];
}

/*
 * The subjectAltName extension's value for a generated certificate:
 * DNS:name (when it is a host name), DNS:localhost and IP:127.0.0.1.
 * Returns its length in out (at least 128 bytes).
 */
static size_t
san_der(const char *name, unsigned char *out)
{
	unsigned char	 inner[128];
	size_t		 n = 0, len = strlen(name);

	/* [2] dNSName, [7] iPAddress */
	if (len > 0 && len <= 64 && strcmp(name, "localhost") != 0)
		general_name(inner, &n, 0x82, name, len);
	general_name(inner, &n, 0x82, "localhost", 9);
	general_name(inner, &n, 0x87, "\x7f\x00\x00\x01", 4);
	out[0] = 0x30;
	out[1] = (unsigned char)n;
	memcpy(out + 2, inner, n);
	return n + 2;
}

/*
 * Creates a self-signed ECDSA P-256 certificate and its key at the given
 * paths.  The name is reduced to host-name characters for the subject.
 * Returns 0, or -1 with a message in err.
 */
static int
generate(const char *certpath, const char *keypath, const char *name,
    char *err, size_t errlen)
{
	mbedtls_pk_context	 key;
	mbedtls_x509write_cert	 crt;
	mbedtls_mpi		 serial;
	unsigned char		 pem[PEM_MAX], rnd[16], san[140];
	char			 cn[80], subject[96], from[16], to[16];
	char			 msg[128];
	time_t			 now = time(NULL), later;
	struct tm		 tm;
	size_t			 i, n = 0, sanlen;
	int			 rc;

	for (i = 0; name[i] != '\0' && n < 64; i++) {
		char	 c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.')
			cn[n++] = c;
	}
	cn[n] = '\0';
	if (n == 0)
		snprintf(cn, sizeof(cn), "localhost");
	snprintf(subject, sizeof(subject), "CN=%s", cn);
	later = now + (time_t)TLS_GEN_CERT_DAYS * 86400;
	now -= 86400;	/* a client whose clock is a little behind */
	gmtime_r(&now, &tm);
	strftime(from, sizeof(from), "%Y%m%d%H%M%S", &tm);
	gmtime_r(&later, &tm);
	strftime(to, sizeof(to), "%Y%m%d%H%M%S", &tm);
	sanlen = san_der(cn, san);

	mbedtls_pk_init(&key);
	mbedtls_x509write_crt_init(&crt);
	mbedtls_mpi_init(&serial);
	if ((rc = mbedtls_pk_setup(&key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
	    (rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
	    mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, &tls.drbg)) != 0 ||
	    (rc = mbedtls_ctr_drbg_random(&tls.drbg, rnd, sizeof(rnd))) != 0)
		goto fail;
	rnd[0] &= 0x7f;		/* a positive serial number */
	rnd[0] |= 0x40;
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, &key);
	mbedtls_x509write_crt_set_issuer_key(&crt, &key);
	if ((rc = mbedtls_mpi_read_binary(&serial, rnd, sizeof(rnd))) != 0 ||
	    (rc = mbedtls_x509write_crt_set_serial(&crt, &serial)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&crt, subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_validity(&crt, from, to)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_basic_constraints(&crt, 0,
	    -1)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_key_usage(&crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_key_identifier(&crt)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_extension(&crt,
	    MBEDTLS_OID_SUBJECT_ALT_NAME,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san,
	    sanlen)) != 0)
		goto fail;
	/* The key first: a certificate file never exists without its key. */
	if ((rc = mbedtls_pk_write_key_pem(&key, pem, sizeof(pem))) != 0)
		goto fail;
	if (write_file(keypath, pem, strlen((char *)pem), 0600) < 0) {
		snprintf(err, errlen, "setting 'data': cannot write '%s': %s",
		    keypath, strerror(errno));
		goto out;
	}
	if ((rc = mbedtls_x509write_crt_pem(&crt, pem, sizeof(pem),
	    mbedtls_ctr_drbg_random, &tls.drbg)) != 0)
		goto fail;
	if (write_file(certpath, pem, strlen((char *)pem), 0644) < 0) {
		snprintf(err, errlen, "setting 'data': cannot write '%s': %s",
		    certpath, strerror(errno));
		goto out;
	}
	explicit_bzero(pem, sizeof(pem));
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&crt);
	mbedtls_pk_free(&key);
	log_info("tls.generate", "cert=%s subject=%s days=%d",
	    log_quote(certpath), log_quote(subject), TLS_GEN_CERT_DAYS);
	return 0;
fail:
	strerr(rc, msg, sizeof(msg));
	snprintf(err, errlen, "cannot generate a TLS certificate: %s", msg);
out:
	explicit_bzero(pem, sizeof(pem));
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&crt);
	mbedtls_pk_free(&key);
	return -1;
}

/*
 * Reads a certificate and key into a new identity.  `what` names the
 * settings for messages ("tls-cert" or "data").  Returns it with one
 * reference, or NULL with a message in err.
 */
static struct tls_cred *
cred_load(const char *certpath, const char *keypath, const char *cset,
    const char *kset, char *err, size_t errlen)
{
	struct tls_cred	*c;
	char		 msg[128], date[16];
	uint8_t		 digest[32];
	int		 rc, fd;

	/* Say plainly that a file is missing or unreadable. */
	if ((fd = open(certpath, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "setting '%s': cannot read the "
		    "certificate '%s': %s", cset, certpath, strerror(errno));
		return NULL;
	}
	close(fd);
	if ((fd = open(keypath, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "setting '%s': cannot read the key "
		    "'%s': %s", kset, keypath, strerror(errno));
		return NULL;
	}
	close(fd);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->refs = 1;
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_x509_crt_init(&c->crt);
	mbedtls_pk_init(&c->key);
	if ((rc = mbedtls_x509_crt_parse_file(&c->crt, certpath)) != 0) {
		strerr(rc, msg, sizeof(msg));
		snprintf(err, errlen, "setting '%s': '%s' is not a PEM "
		    "certificate: %s", cset, certpath, msg);
		goto fail;
	}
	if (mbedtls_x509_time_is_past(&c->crt.valid_to)) {
		x509_date(&c->crt.valid_to, date, sizeof(date));
		snprintf(err, errlen, "setting '%s': the certificate '%s' "
		    "expired on %s", cset, certpath, date);
		goto fail;
	}
	if (mbedtls_x509_time_is_future(&c->crt.valid_from)) {
		x509_date(&c->crt.valid_from, date, sizeof(date));
		snprintf(err, errlen, "setting '%s': the certificate '%s' is "
		    "not valid before %s", cset, certpath, date);
		goto fail;
	}
	if ((rc = mbedtls_pk_parse_keyfile(&c->key, keypath, NULL)) != 0) {
		strerr(rc, msg, sizeof(msg));
		snprintf(err, errlen, "setting '%s': '%s' is not a PEM "
		    "private key without a passphrase: %s", kset, keypath, msg);
		goto fail;
	}
	if (mbedtls_pk_check_pair(&c->crt.pk, &c->key) != 0) {
		snprintf(err, errlen, "setting '%s': the key '%s' does not "
		    "belong to the certificate '%s'", kset, keypath, certpath);
		goto fail;
	}
	if ((rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0 ||
	    (rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->crt,
	    &c->key)) != 0) {
		strerr(rc, msg, sizeof(msg));
		snprintf(err, errlen, "setting '%s': cannot serve '%s': %s",
		    cset, certpath, msg);
		goto fail;
	}
	conf_common(&c->conf, suites);
	mbedtls_sha256_ret(c->crt.raw.p, c->crt.raw.len, digest, 0);
	crypto_hex(digest, sizeof(digest), c->fingerprint);
	return c;
fail:
	cred_unref(c);
	return NULL;
}

/*
 * Loads the configured files, or the generated pair in the data
 * directory (creating it, or re-creating it when it has expired).
 */
static struct tls_cred *
load_current(char *err, size_t errlen)
{
	struct tls_cred	*c;
	struct stat	 sb;
	char		 why[256];

	if (!tls.generated)
		return cred_load(tls.cert, tls.key, "tls-cert", "tls-key",
		    err, errlen);
	if (stat(tls.cert, &sb) == 0 && stat(tls.key, &sb) == 0) {
		if ((c = cred_load(tls.cert, tls.key, "data", "data", why,
		    sizeof(why))) != NULL)
			return c;
		log_warn("tls.generate", "msg=%s", log_quote(why));
	}
	if (generate(tls.cert, tls.key, tls.name, err, errlen) < 0)
		return NULL;
	return cred_load(tls.cert, tls.key, "data", "data", err, errlen);
}

/* Logs the identity now in use: this is how a client pins it. */
static void
log_cred(const char *event, const struct tls_cred *c)
{
	char	 subject[256];

	if (mbedtls_x509_dn_gets(subject, sizeof(subject),
	    &c->crt.subject) < 0)
		subject[0] = '\0';
	log_info(event, "cert=%s subject=%s not_after=%04d-%02d-%02d "
	    "fingerprint=%s", log_quote(tls.cert), log_quote(subject),
	    c->crt.valid_to.year, c->crt.valid_to.mon, c->crt.valid_to.day,
	    c->fingerprint);
}

int
tls_init(const char *cert, const char *key, const char *data_dir,
    const char *name, char *err, size_t errlen)
{
	struct tls_cred	*c;

	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "setting '%s': give both tls-cert and "
		    "tls-key, or neither (a certificate is then generated)",
		    cert == NULL ? "tls-cert" : "tls-key");
		return -1;
	}
	if (rng_seed() < 0) {
		snprintf(err, errlen, "cannot seed the random generator");
		return -1;
	}
	tls.generated = cert == NULL;
	if (cert != NULL) {
		snprintf(tls.cert, sizeof(tls.cert), "%s", cert);
		snprintf(tls.key, sizeof(tls.key), "%s", key);
	} else {
		snprintf(tls.cert, sizeof(tls.cert), "%s/" GEN_CERT_FILE,
		    data_dir);
		snprintf(tls.key, sizeof(tls.key), "%s/" GEN_KEY_FILE,
		    data_dir);
	}
	snprintf(tls.name, sizeof(tls.name), "%s", name ? name : "");
	if ((c = load_current(err, errlen)) == NULL)
		return -1;
	cred_unref(tls.cur);
	tls.cur = c;
	log_cred("tls.cert", c);
	return 0;
}

int
tls_reload(char *err, size_t errlen)
{
	struct tls_cred	*c;

	if (tls.cur == NULL) {
		snprintf(err, errlen, "TLS is not set up");
		return -1;
	}
	if ((c = load_current(err, errlen)) == NULL)
		return -1;
	cred_unref(tls.cur);
	tls.cur = c;
	log_cred("tls.reload", c);
	return 0;
}

/*
 * One role's PSK configuration.  mbedTLS keeps its own copy of the key
 * and wipes it in mbedtls_ssl_config_free().
 */
static int
psk_conf(mbedtls_ssl_config *conf, int endpoint, const void *key,
    size_t keylen, const char *identity)
{
	int	 rc;

	mbedtls_ssl_config_init(conf);
	if ((rc = mbedtls_ssl_config_defaults(conf, endpoint,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0 ||
	    (rc = mbedtls_ssl_conf_psk(conf, key, keylen,
	    (const unsigned char *)identity, strlen(identity))) != 0)
		return rc;
	conf_common(conf, psk_suites);
	return 0;
}

int
tls_psk_init(const void *key, size_t keylen, const char *identity,
    char *err, size_t errlen)
{
	char	 msg[128];
	int	 rc;

	if (tls.psk || keylen == 0 || keylen > TLS_PSK_MAX) {
		snprintf(err, errlen, "TLS-PSK: a key of 1 to %d bytes, once",
		    TLS_PSK_MAX);
		return -1;
	}
	if (rng_seed() < 0) {
		snprintf(err, errlen, "cannot seed the random generator");
		return -1;
	}
	if ((rc = psk_conf(&tls.psk_srv, MBEDTLS_SSL_IS_SERVER, key, keylen,
	    identity)) != 0 || (rc = psk_conf(&tls.psk_cli,
	    MBEDTLS_SSL_IS_CLIENT, key, keylen, identity)) != 0) {
		mbedtls_ssl_config_free(&tls.psk_srv);
		mbedtls_ssl_config_free(&tls.psk_cli);
		strerr(rc, msg, sizeof(msg));
		snprintf(err, errlen, "cannot set up TLS-PSK: %s", msg);
		return -1;
	}
	tls.psk = 1;
	return 0;
}

int
tls_psk_available(void)
{
	return tls.psk;
}

void
tls_shutdown(void)
{
	cred_unref(tls.cur);
	tls.cur = NULL;
	if (tls.psk) {
		mbedtls_ssl_config_free(&tls.psk_srv);
		mbedtls_ssl_config_free(&tls.psk_cli);
		tls.psk = 0;
	}
	if (tls.seeded) {
		mbedtls_ctr_drbg_free(&tls.drbg);
		mbedtls_entropy_free(&tls.entropy);
		tls.seeded = 0;
	}
}

int
tls_available(void)
{
	return tls.cur != NULL;
}

const char *
tls_fingerprint(void)
{
	return tls.cur != NULL ? tls.cur->fingerprint : NULL;
}

/* --- connections ----------------------------------------------------------- */

/*
 * A client's first send or receive is where a failed non-blocking
 * connect shows: say so rather than "sending failed".
 */
static int
bio_connect_error(int otherwise)
{
	if (errno == ECONNREFUSED || errno == ETIMEDOUT ||
	    errno == EHOSTUNREACH || errno == ENETUNREACH)
		return MBEDTLS_ERR_NET_CONNECT_FAILED;
	return otherwise;
}

static int
bio_send(void *ctx, const unsigned char *p, size_t n)
{
	ssize_t	 r = send(*(int *)ctx, p, n, MSG_NOSIGNAL);

	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (errno == EPIPE || errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return bio_connect_error(MBEDTLS_ERR_NET_SEND_FAILED);
}

static int
bio_recv(void *ctx, unsigned char *p, size_t n)
{
	ssize_t	 r = read(*(int *)ctx, p, n);

	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return bio_connect_error(MBEDTLS_ERR_NET_RECV_FAILED);
}

struct tls_conn *
tls_conn_new(int fd, enum tls_role role)
{
	struct tls_conn		*c;
	const mbedtls_ssl_config *conf;

	if (role == TLS_SERVER)
		conf = tls.cur != NULL ? &tls.cur->conf : NULL;
	else if (tls.psk)
		conf = role == TLS_PSK_SERVER ? &tls.psk_srv : &tls.psk_cli;
	else
		conf = NULL;
	if (conf == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return NULL;
	}
	c->psk = role != TLS_SERVER;
	if (role == TLS_SERVER) {
		c->cred = tls.cur;
		c->cred->refs++;
	}
	mbedtls_ssl_set_bio(&c->ssl, &c->fd, bio_send, bio_recv, NULL);
	return c;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	mbedtls_ssl_free(&c->ssl);
	cred_unref(c->cred);
	free(c);
}

/* Keeps an error for tls_conn_error() and tls_conn_wrong_key(). */
static void
note_error(struct tls_conn *c, int rc, int handshake)
{
	c->err = rc;
	c->hs_err = handshake;
	c->alert = 0;
	/* mbedTLS leaves a fatal alert's description in the record. */
	if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && c->ssl.in_msg != NULL)
		c->alert = c->ssl.in_msg[1];
}

int
tls_conn_handshake(struct tls_conn *c, int *want_write)
{
	int	 rc = mbedtls_ssl_handshake(&c->ssl);

	*want_write = 0;
	if (rc == 0)
		return 1;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ)
		return 0;
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
		*want_write = 1;
		return 0;
	}
	note_error(c, rc, 1);
	return -1;
}

ssize_t
tls_conn_read(struct tls_conn *c, void *p, size_t n)
{
	int	 rc = mbedtls_ssl_read(&c->ssl, p, n);

	if (rc > 0)
		return rc;
	/*
	 * A peer that closes without close_notify has ended the stream all
	 * the same; every protocol on top is framed, so a cut is seen there.
	 */
	if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
	    rc == MBEDTLS_ERR_SSL_CONN_EOF)
		return 0;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ ||
	    rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	note_error(c, rc, 0);
	errno = rc == MBEDTLS_ERR_NET_CONN_RESET ? ECONNRESET : EPROTO;
	return -1;
}

ssize_t
tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
	int	 rc;

	/* mbedTLS wants a write it could not finish repeated exactly. */
	if (c->pending > 0 && n > c->pending)
		n = c->pending;
	if (n > (size_t)MBEDTLS_SSL_OUT_CONTENT_LEN)
		n = MBEDTLS_SSL_OUT_CONTENT_LEN;
	rc = mbedtls_ssl_write(&c->ssl, p, n);
	if (rc >= 0) {
		c->pending = 0;
		return rc;
	}
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
	    rc == MBEDTLS_ERR_SSL_WANT_READ) {
		c->pending = n;
		errno = EAGAIN;
		return -1;
	}
	note_error(c, rc, 0);
	errno = rc == MBEDTLS_ERR_NET_CONN_RESET ? EPIPE : EPROTO;
	return -1;
}

int
tls_conn_pending(const struct tls_conn *c)
{
	return mbedtls_ssl_check_pending(&c->ssl);
}

const char *
tls_conn_version(const struct tls_conn *c)
{
	return mbedtls_ssl_get_version(&c->ssl);
}

const char *
tls_conn_cipher(const struct tls_conn *c)
{
	return mbedtls_ssl_get_ciphersuite(&c->ssl);
}

const char *
tls_conn_error(struct tls_conn *c)
{
	size_t	 n;

	if (c->err == 0)
		return NULL;
	strerr(c->err, c->errbuf, sizeof(c->errbuf));
	n = strlen(c->errbuf);
	if (c->err == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && c->alert != 0)
		snprintf(c->errbuf + n, sizeof(c->errbuf) - n, " (alert %u)",
		    c->alert);
	return c->errbuf;
}

int
tls_conn_wrong_key(const struct tls_conn *c)
{
	if (!c->psk || !c->hs_err)
		return 0;
	/* Our peer's Finished failed to decrypt under our key. */
	if (c->err == MBEDTLS_ERR_SSL_INVALID_MAC ||
	    c->err == MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY)
		return 1;
	/* Ours failed under the peer's, and it told us so. */
	return c->err == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE &&
	    (c->alert == MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC ||
	    c->alert == MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR ||
	    c->alert == MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY);
}
