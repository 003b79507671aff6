/*
 * imap_auth.c — logging in: LOGIN and AUTHENTICATE PLAIN (with SASL-IR)
 * on the password worker (auth.h), the refusal's delay, the per-user
 * session limit, the check that a logged-in session's user and selected
 * mailbox are still what it bound to; and STARTTLS and COMPRESS, which
 * change the connection under the session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "imap.h"
#include "imap_core.h"
#include "log.h"
#include "penalty.h"
#include "settings.h"
#include "store.h"
#include "tls.h"

/*
 * The authentication policy: logging in is allowed over TLS, from a
 * loopback or unix client, with --allow-plaintext-auth, or when this
 * server has no TLS to offer.  Otherwise LOGINDISABLED, no AUTH=PLAIN.
 */
int
imap_login_allowed(const struct session *s)
{
	return session_secure(s) || s->local ||
	    s->srv->settings->allow_plaintext_auth || !tls_available() ||
	    s->tp == NULL;
}

/* The number of this user's logged-in IMAP sessions. */
static unsigned
user_sessions(const struct server *srv, const char *user)
{
	const struct session	*t;
	unsigned		 n = 0;

	for (t = srv->sessions; t != NULL; t = t->next) {
		const struct imap_session *o;

		if (t->ops != &imap_proto || (o = t->proto) == NULL)
			continue;
		if (o->state != IMAP_NOTAUTH && strcasecmp(o->user, user) == 0)
			n++;
	}
	return n;
}

/*
 * Binds the session to the user it is logging in as: the user's id and
 * the digest of the password hash that was verified (p->login_hash, not
 * the one stored now, which a `mailrepd user passwd` may have changed
 * while the worker hashed).  Returns 0 or -1.
 */
static int
bind_user(struct session *s, const char *canon)
{
	struct imap_private	*p = imap_of(s)->priv;
	int			 kept;

	p->users_gen = store_users_generation(s->srv->store);
	if (store_session_check(s->srv->store, canon, NULL, &p->ident,
	    &kept) != STORE_OK)
		return -1;
	memcpy(p->ident.password, p->login_hash, GUID_LEN);
	return 0;
}

/* Logs the session in as user (the stored name); how: "hash", "cache"... */
static void
login_ok(struct session *s, const char *user, const char *how)
{
	struct imap_session	*ims = imap_of(s);

	if (user_sessions(s->srv, user) >= IMAP_MAX_USER_SESSIONS) {
		imap_reply(s, "NO [LIMIT] Too many sessions for this user");
		return;
	}
	if (bind_user(s, user) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Login failed, try again later");
		return;
	}
	snprintf(ims->user, sizeof(ims->user), "%s", user);
	ims->state = IMAP_AUTH;
	penalty_clear(s->peer);
	log_info("imap.login", "session=%llu peer=%s user=%s tls=%d check=%s",
	    (unsigned long long)s->id, s->peer, log_quote(user),
	    session_secure(s), how);
	imap_reply(s, "OK [CAPABILITY %s] Logged in", imap_capabilities(s));
}

/*
 * Refuses a login.  The refusal is held for the address's penalty
 * (IMAP_AUTH_FAIL_DELAY_MS at first) from when the login began, so the
 * time the hashing took (the queue, the hash) does not show; that holds
 * whatever else the loop does.  After IMAP_MAX_AUTH_FAILURES the session
 * ends.  The password is never logged.
 */
static void
login_failed(struct session *s, const char *user)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	unsigned		 delay;

	delay = penalty_fail(s->peer, s->srv->now_ms);
	log_warn("imap.auth.fail", "session=%llu peer=%s user=%s delay_ms=%u",
	    (unsigned long long)s->id, s->peer, log_quote(user), delay);
	p->hold_until = p->login_began + delay;
	imap_reply(s, "NO [AUTHENTICATIONFAILED] Authentication failed");
	if (++p->auth_failures >= IMAP_MAX_AUTH_FAILURES)
		ims->state = IMAP_LOGOUT;
}

/*
 * Whether the session may go on as the user it logged in as and in the
 * mailbox it selected: the user was not deleted (nor added again under
 * its name) and has the password it had, and the selected mailbox was
 * not deleted, re-created or renamed by another session (ARCHITECTURE.md: a
 * session binds to the uniqueid and UIDVALIDITY, never only to a row
 * id).  Otherwise the session says BYE, drops its mailbox and ends after
 * the running command's reply; returns 0.  A store error lets it go on:
 * the command meets the error itself.
 */
int
imap_session_still_valid(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct store_user_ident	 now;
	enum store_err		 err;
	int			 kept = 1;

	if (ims->state != IMAP_AUTH && ims->state != IMAP_SELECTED)
		return 1;
	p->users_gen = store_users_generation(s->srv->store);
	err = store_session_check(s->srv->store, ims->user, ims->view ?
	    &ims->view->mb : NULL, &now, &kept);
	if (err == STORE_OK && now.id == p->ident.id &&
	    crypto_equal(now.password, p->ident.password, GUID_LEN)) {
		if (kept)
			return 1;
		log_info("imap.bye", "session=%llu user=%s reason=mailbox",
		    (unsigned long long)s->id, log_quote(ims->user));
		session_printf(s, IMAP_BYE_MAILBOX_GONE);
	} else if (err == STORE_OK || err == STORE_NOTFOUND) {
		log_info("imap.bye", "session=%llu user=%s reason=%s",
		    (unsigned long long)s->id, log_quote(ims->user),
		    err == STORE_OK && now.id == p->ident.id ? "password" :
		    "deleted");
		session_printf(s, "* BYE The account was deleted or its "
		    "password changed\r\n");
	} else
		return 1;
	imap_view_free(ims->view);
	ims->view = NULL;
	ims->state = IMAP_LOGOUT;
	return 0;
}

/*
 * Checks user and password.  The stored hash is looked up here; the
 * hashing runs on the worker (auth.h), and the session waits for it in
 * IN_PASSWORD, reading nothing, until imap_checked().  A credential the
 * cache knows logs in at once.  An unknown user costs what a wrong
 * password costs: the worker hashes against a dummy.  A look-up that
 * fails is no unknown user: the client is told to try again, not that
 * its password is wrong (and no failure is counted against it).  In
 * dev mode a user without a password takes any, from loopback.
 */
static void
authenticate(struct session *s, const char *user, const char *password)
{
	struct imap_private	*p = imap_of(s)->priv;
	char			*hash = NULL, canon[USER_MAX_NAME + 1];
	enum store_err		 err;
	int			 known;

	if ((err = store_user_hash(s->srv->store, user, canon, &hash)) !=
	    STORE_OK && err != STORE_NOTFOUND) {
		imap_reply(s, "NO [UNAVAILABLE] Cannot check the password "
		    "now: %s; try again", store_strerror(err));
		return;
	}
	known = err == STORE_OK;
	if (known)
		crypto_sha256(hash, strlen(hash), p->login_hash);
	if (known && strcmp(hash, PASSWORD_NONE) == 0) {
		free(hash);
		if (s->srv->dev && s->local) {
			login_ok(s, canon, "none");
			return;
		}
		hash = NULL;
		known = 0;
	}
	snprintf(p->login_user, sizeof(p->login_user), "%s",
	    known ? canon : user);
	p->login_known = known;
	p->login_began = s->srv->now_ms;
	switch (auth_check(s->id, p->login_user, password, known ? hash :
	    NULL, s->srv->now_ms)) {
	case AUTH_MATCH:
		login_ok(s, canon, "cache");
		break;
	case AUTH_QUEUED:
		p->mode = IN_PASSWORD;
		s->paused = 1;
		break;
	case AUTH_BUSY:
		/* Held, so that a client cannot spin on it. */
		p->hold_until = s->srv->now_ms + IMAP_AUTH_FAIL_DELAY_MS;
		imap_reply(s, "NO [UNAVAILABLE] Too many logins at once, try "
		    "again later");
		break;
	}
	free(hash);
}

/* The worker's answer for the session's login (see authenticate()). */
void
imap_checked(struct session *s, int match)
{
	struct imap_private	*p = imap_of(s)->priv;

	if (p->mode != IN_PASSWORD)
		return;
	p->mode = IN_COMMAND;
	s->paused = 0;
	if (match && p->login_known)
		login_ok(s, p->login_user, "hash");
	else
		login_failed(s, p->login_user);
	if (p->hold_until > s->srv->now_ms)
		imap_hold_reply(s);
	else
		imap_command_reply(s, 1);
}

void
imap_cmd_login(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	const char	*user, *password;

	(void)variant;
	if (nargs != 2 || (user = imap_arg_astring(&args[0])) == NULL ||
	    (password = imap_arg_astring(&args[1])) == NULL) {
		imap_reply(s, "BAD LOGIN wants a user name and a password");
		return;
	}
	if (!imap_login_allowed(s)) {
		imap_reply(s, "NO [PRIVACYREQUIRED] LOGIN is disabled before "
		    "STARTTLS");
		return;
	}
	authenticate(s, user, password);
}

/*
 * Takes a SASL PLAIN response (RFC 4616), base64: authzid NUL authcid
 * NUL password.  An authzid other than the authcid is refused.
 */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	uint8_t		 raw[USER_MAX_NAME * 2 + PASSWORD_MAX + 3];
	size_t		 n;
	char		*authz, *authc, *pass, *end;

	if (crypto_base64_decode(b64, len, raw, sizeof(raw) - 1, &n) < 0) {
		imap_reply(s, "BAD Invalid base64 in AUTHENTICATE");
		return;
	}
	raw[n] = '\0';
	authz = (char *)raw;
	end = (char *)raw + n;
	authc = memchr(authz, '\0', n);
	pass = authc ? memchr(authc + 1, '\0', end - authc - 1) : NULL;
	if (authc == NULL || pass == NULL || memchr(pass + 1, '\0',
	    end - pass - 1) != NULL) {
		imap_reply(s, "BAD Invalid PLAIN response");
		return;
	}
	authc++;
	pass++;
	if (*authz != '\0' && strcmp(authz, authc) != 0) {
		imap_reply(s, "NO [AUTHORIZATIONFAILED] Cannot log in as "
		    "another user");
		return;
	}
	authenticate(s, authc, pass);
	explicit_bzero(raw, sizeof(raw));
}

void
imap_cmd_authenticate(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	const char	*ir;

	(void)variant;
	if (nargs < 1 || nargs > 2 || args[0].type != IMAP_ARG_ATOM) {
		imap_reply(s, "BAD AUTHENTICATE wants a mechanism");
		return;
	}
	if (strcasecmp(args[0].str, "PLAIN") != 0) {
		imap_reply(s, "NO [CANNOT] Unsupported authentication "
		    "mechanism");
		return;
	}
	if (!imap_login_allowed(s)) {
		imap_reply(s, "NO [PRIVACYREQUIRED] Authentication is disabled "
		    "before STARTTLS");
		return;
	}
	if (nargs == 1) {
		/* No SASL-IR: ask for the response. */
		session_printf(s, "+ \r\n");
		imap_of(s)->priv->mode = IN_AUTH;
		return;
	}
	if ((ir = imap_arg_astring(&args[1])) == NULL) {
		imap_reply(s, "BAD Invalid initial response");
		return;
	}
	auth_plain(s, ir, strcmp(ir, "=") == 0 ? 0 : strlen(ir));
}


/*
 * The line after "+ " in AUTHENTICATE: "*" cancels (RFC 3501 6.2.2).
 * Like every input mode, returns 1 when it made progress and 0 when it
 * needs more input.
 */
int
imap_input_auth(struct session *s)
{
	char	*line;
	size_t	 len;
	int	 got;

	if ((got = imap_mode_line(s, &line, &len)) == 0)
		return 0;
	if (got < 0)
		imap_reply(s, "BAD AUTHENTICATE response too long");
	else if (strcmp(line, "*") == 0)
		imap_reply(s, "BAD AUTHENTICATE cancelled");
	else {
		auth_plain(s, line, len);
		explicit_bzero(line, len);
	}
	if (imap_of(s)->priv->mode == IN_COMMAND)
		imap_command_finish(s);
	return 1;
}

/* --- STARTTLS (RFC 3501 6.2.1) and COMPRESS (RFC 4978) ------------------- */

/*
 * The TLS handshake begins once the OK is out; input pipelined behind
 * STARTTLS is dropped (see session_start_tls()).
 */
void
imap_cmd_starttls(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)variant;
	if (nargs != 0)
		imap_reply(s, "BAD STARTTLS takes no arguments");
	else if (session_secure(s))
		imap_reply(s, "BAD TLS is already active");
	else if (!session_can_starttls(s))
		imap_reply(s, "NO [UNAVAILABLE] TLS is not available now");
	else {
		imap_of(s)->priv->after_reply = AFTER_STARTTLS;
		imap_reply(s, "OK Begin TLS negotiation now");
	}
}

/* Everything after the OK is compressed, both ways. */
void
imap_cmd_compress(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)variant;
	if (nargs != 1 || args[0].type != IMAP_ARG_ATOM ||
	    strcasecmp(args[0].str, "DEFLATE") != 0)
		imap_reply(s, "BAD COMPRESS wants DEFLATE");
	else if (session_compressed(s))
		imap_reply(s, "NO [COMPRESSIONACTIVE] DEFLATE is already "
		    "active");
	else if (s->tp == NULL)
		imap_reply(s, "NO [UNAVAILABLE] Compression is not available");
	else if (!session_take_compress_slot(s))
		imap_reply(s, "NO [LIMIT] Too many compressed connections; go "
		    "on without compression");
	else {
		imap_of(s)->priv->after_reply = AFTER_COMPRESS;
		imap_reply(s, "OK DEFLATE active");
	}
}

