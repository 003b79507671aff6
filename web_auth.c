/*
 * web_auth.c — who an HTTP request is from (web_auth.h).
 *
 * A request with "Authorization: Basic" is a user's: the password is
 * checked as IMAP's LOGIN checks it (the stored hash looked up here,
 * hashed on auth.c's worker, a failure held for the address's penalty
 * and counted), and the connection keeps who it logged in as for its
 * next requests.  "Authorization: Bearer" must be the admin token.  A
 * request without credentials is the admin view from a loopback client
 * (this machine's), and is refused with 401 from any other.
 *
 * The admin view from loopback also wants Host to name this machine
 * (loopback_host): otherwise a page of another site, its name made to
 * point at 127.0.0.1 (DNS rebinding), could read the mail through a
 * browser running here.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "log.h"
#include "penalty.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "web_auth.h"

enum login_state {
	LOGIN_NONE,		/* nothing checked (or checked again) */
	LOGIN_CHECKING,		/* the worker hashes the password */
	LOGIN_OK,		/* cred logged in as user (or admin) */
	LOGIN_FAILED,		/* cred refused; the 401 held till hold_until */
};

struct web_auth {
	enum login_state state;
	uint8_t		 cred[GUID_LEN];	/* digest of the credentials */
	char		 user[USER_MAX_NAME + 1];	/* stored name */
	int		 known;		/* user exists with a password */
	int		 admin;		/* the admin token */
	uint64_t	 users_gen;	/* of the store when checked */
	int64_t		 began;		/* now_ms the check began */
	int64_t		 hold_until;	/* the refusal goes out then */
	unsigned	 failures;	/* on this connection */
};

static struct {
	int		 set;
	uint8_t		 digest[GUID_LEN];	/* SHA-256 of the token */
} admin_token;

int
web_auth_setup(const char *token_file)
{
	char	 line[HTTP_ADMIN_TOKEN_MAX + 2];
	int	 n;

	if (token_file == NULL)
		return 0;
	if ((n = settings_read_secret("http-admin-token-file", token_file,
	    HTTP_ADMIN_TOKEN_MIN, HTTP_ADMIN_TOKEN_MAX, line,
	    sizeof(line))) < 0)
		return -1;
	crypto_sha256(line, (size_t)n, admin_token.digest);
	admin_token.set = 1;
	explicit_bzero(line, sizeof(line));
	return 0;
}

void
web_auth_shutdown(void)
{
	explicit_bzero(&admin_token, sizeof(admin_token));
}

void
web_auth_free(struct web_auth *a)
{
	if (a != NULL)
		explicit_bzero(a, sizeof(*a));
	free(a);
}

/*
 * Whether Host may name this machine: [::1], 127.x, or a name of one
 * label ("localhost", the host's own name).  A name another site owns
 * has dots, and an address other than loopback is not ours to trust.
 */
static int
loopback_host(const char *host)
{
	size_t	 n;

	if (host == NULL)
		return 1;		/* HTTP/1.0 */
	if (strncmp(host, "[::1]", 5) == 0)
		return host[5] == '\0' || host[5] == ':';
	n = strcspn(host, ":");
	if (n > 4 && strncmp(host, "127.", 4) == 0)
		return strspn(host, "0123456789.") == n;
	return n > 0 && host[0] != '[' && memchr(host, '.', n) == NULL;
}

/* The scheme's credentials after "Scheme ", or NULL for another scheme. */
static const char *
credentials(const char *authorization, const char *scheme)
{
	size_t	 n = strlen(scheme);

	if (strncasecmp(authorization, scheme, n) != 0 ||
	    authorization[n] != ' ')
		return NULL;
	authorization += n;
	while (*authorization == ' ')
		authorization++;
	return authorization;
}

/*
 * The credentials are refused: the refusal is held for the address's
 * penalty from when the check began, so that neither the hashing time
 * nor a quick retry helps a guesser.
 */
static void
login_failed(struct session *s, struct web_auth *a)
{
	unsigned	 delay;

	delay = penalty_fail(s->peer, s->srv->now_ms);
	log_warn("http.auth.fail", "id=%llu peer=%s user=%s delay_ms=%u",
	    (unsigned long long)s->id, s->peer, log_quote(a->admin ? "(token)" :
	    a->user), delay);
	a->state = LOGIN_FAILED;
	a->hold_until = a->began + delay;
	if (a->hold_until > s->srv->now_ms)
		server_timer(s->srv, a->hold_until);
}

/* The credentials are right: kept for the connection's next requests. */
static void
login_ok(struct session *s, struct web_auth *a, const char *how)
{
	a->state = LOGIN_OK;
	penalty_clear(s->peer);
	log_info("http.login", "id=%llu peer=%s user=%s tls=%d check=%s",
	    (unsigned long long)s->id, s->peer, log_quote(a->admin ?
	    "(admin)" : a->user), session_secure(s), how);
}

/*
 * Starts the check of "Basic base64(user:password)": the stored hash
 * looked up here, the hashing queued on the worker.  Returns the state
 * it leaves: LOGIN_OK (the cache knew it, or dev mode's user without a
 * password from loopback), LOGIN_CHECKING, LOGIN_FAILED (a malformed
 * value, also held), or LOGIN_NONE when the worker is busy or the store
 * failed to look the user up.
 */
static enum login_state
check_basic(struct session *s, struct web_auth *a, const char *b64)
{
	uint8_t		 raw[USER_MAX_NAME + PASSWORD_MAX + 2];
	char		*hash = NULL, *colon, canon[USER_MAX_NAME + 1];
	size_t		 n;
	enum auth_status st;
	enum store_err	 err;
	int		 known;

	a->admin = 0;
	if (crypto_base64_decode(b64, strlen(b64), raw, sizeof(raw) - 1,
	    &n) < 0 || (raw[n] = '\0', colon = strchr((char *)raw, ':')) ==
	    NULL || memchr(raw, '\0', n) != NULL) {
		snprintf(a->user, sizeof(a->user), "%s", "(malformed)");
		login_failed(s, a);
		return a->state;
	}
	*colon = '\0';
	/* A look-up that fails is no unknown user: asked again. */
	if ((err = store_user_hash(s->srv->store, (char *)raw, canon,
	    &hash)) != STORE_OK && err != STORE_NOTFOUND) {
		explicit_bzero(raw, sizeof(raw));
		return a->state = LOGIN_NONE;
	}
	known = err == STORE_OK;
	snprintf(a->user, sizeof(a->user), "%.*s", USER_MAX_NAME, known ?
	    canon : (char *)raw);
	if (known && strcmp(hash, PASSWORD_NONE) == 0) {
		known = 0;
		if (s->srv->dev && s->local) {
			free(hash);
			explicit_bzero(raw, sizeof(raw));
			login_ok(s, a, "none");
			return a->state;
		}
	}
	a->known = known;
	st = auth_check(s->id, a->user, colon + 1, known ? hash : NULL,
	    s->srv->now_ms);
	free(hash);
	explicit_bzero(raw, sizeof(raw));
	if (st == AUTH_MATCH && a->known)
		login_ok(s, a, "cache");
	else if (st == AUTH_QUEUED)
		a->state = LOGIN_CHECKING;
	else
		a->state = LOGIN_NONE;
	return a->state;
}

/*
 * Checks the request's credentials anew (other than those the
 * connection logged in with, or the users changed since).
 */
static void
check_credentials(struct session *s, struct web_auth *a,
    const struct http_request *req)
{
	const char	*v;
	uint8_t		 digest[GUID_LEN];

	a->began = s->srv->now_ms;
	a->users_gen = store_users_generation(s->srv->store);
	a->state = LOGIN_NONE;
	if ((v = credentials(req->authorization, "Bearer")) != NULL) {
		a->admin = 1;
		crypto_sha256(v, strlen(v), digest);
		if (admin_token.set && crypto_equal(digest,
		    admin_token.digest, GUID_LEN))
			login_ok(s, a, "token");
		else
			login_failed(s, a);
	} else if ((v = credentials(req->authorization, "Basic")) != NULL)
		(void)check_basic(s, a, v);
	else {
		a->admin = 0;
		snprintf(a->user, sizeof(a->user), "%s", "(scheme)");
		login_failed(s, a);
	}
}

/* The held refusal goes out: 401, and the connection ends after a few. */
static enum web_who
refuse_login(struct session *s, struct web_auth *a)
{
	a->state = LOGIN_NONE;
	memset(a->cred, 0, GUID_LEN);	/* a retry is checked (and held) */
	http_error(s, 401, "authentication failed");
	if (++a->failures >= HTTP_MAX_AUTH_FAILURES)
		session_close(s);
	return WHO_REFUSED;
}

enum web_who
web_auth_request(struct session *s, const struct http_request *req,
    char user[USER_MAX_NAME + 1])
{
	struct web_auth	**slot = http_auth_slot(s), *a;
	uint8_t		  cred[GUID_LEN];

	if (req->authorization == NULL) {
		if (!s->local) {
			http_error(s, 401, "log in with your mail password");
			return WHO_REFUSED;
		}
		if (!loopback_host(req->host)) {
			http_error(s, 403, "Host is not a loopback name");
			return WHO_REFUSED;
		}
		return WHO_ADMIN;
	}
	if (*slot == NULL && (*slot = calloc(1, sizeof(**slot))) == NULL) {
		http_error(s, 503, "out of memory");
		return WHO_REFUSED;
	}
	a = *slot;
	crypto_sha256(req->authorization, strlen(req->authorization), cred);
	if (!crypto_equal(cred, a->cred, GUID_LEN) || (a->state == LOGIN_OK &&
	    a->users_gen != store_users_generation(s->srv->store))) {
		memcpy(a->cred, cred, GUID_LEN);
		check_credentials(s, a, req);
	}
	switch (a->state) {
	case LOGIN_OK:
		snprintf(user, USER_MAX_NAME + 1, "%s", a->user);
		return a->admin ? WHO_ADMIN : WHO_USER;
	case LOGIN_FAILED:
		if (a->hold_until <= s->srv->now_ms)
			return refuse_login(s, a);
		break;
	case LOGIN_NONE:
		memset(a->cred, 0, GUID_LEN);	/* asked again next time */
		http_error(s, 503, "cannot check the credentials now (too "
		    "many logins at once, or the store failed), try again");
		return WHO_REFUSED;
	case LOGIN_CHECKING:
		break;
	}
	s->paused = 1;
	return WHO_WAIT;
}

void
web_auth_checked(struct session *s, int match)
{
	struct web_auth	*a = *http_auth_slot(s);

	if (a == NULL || a->state != LOGIN_CHECKING)
		return;
	s->paused = 0;		/* the request is taken again */
	if (a->users_gen != store_users_generation(s->srv->store))
		memset(a->cred, 0, GUID_LEN);	/* checked against a stale
						   hash: again */
	else if (match && a->known)
		login_ok(s, a, "hash");
	else {
		login_failed(s, a);
		s->paused = a->hold_until > s->srv->now_ms;
	}
}

void
web_auth_wake(struct session *s)
{
	struct web_auth	*a = *http_auth_slot(s);

	if (a != NULL && a->state == LOGIN_FAILED && s->paused &&
	    a->hold_until <= s->srv->now_ms)
		s->paused = 0;
}
