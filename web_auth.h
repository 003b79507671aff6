/*
 * web_auth.h — who an HTTP request is from (web_auth.c): a user who
 * logged in with HTTP basic authentication, or the admin view of every
 * user's mail (a loopback client without credentials, or the token of
 * --http-admin-token-file as "Authorization: Bearer TOKEN").
 *
 * Passwords are checked off the loop (auth.h) and refusals held as IMAP
 * holds them (penalty.h): while a check runs or a refusal is held, the
 * request waits in the session, which reads nothing (web_handle()
 * returns WEB_WAIT).  What a connection logged in as is kept for its
 * next requests until the users change (store_users_generation).
 */
#ifndef MAILREPD_WEB_AUTH_H
#define MAILREPD_WEB_AUTH_H

#include "store.h"

struct http_request;
struct session;
struct web_auth;

enum web_who {
	WHO_USER,		/* a user: their own mail only */
	WHO_ADMIN,		/* every user's mail */
	WHO_WAIT,		/* not known yet: return WEB_WAIT */
	WHO_REFUSED,		/* answered (401, 403, 503) */
};

/*
 * Reads the admin token (path NULL: none) and keeps its digest only.
 * Returns 0, or -1 after saying why on stderr.
 */
int		web_auth_setup(const char *token_file);
/* Forgets the token's digest. */
void		web_auth_shutdown(void);

/*
 * Who asks req on s; for WHO_USER the user's stored name goes to user.
 * Answers the request itself when it refuses it.
 */
enum web_who	web_auth_request(struct session *, const struct http_request *,
		    char user[USER_MAX_NAME + 1]);

/* proto_ops.checked: the password check the connection asked is done. */
void		web_auth_checked(struct session *, int match);
/* From http_wake: a refusal held past its delay goes out now. */
void		web_auth_wake(struct session *);
void		web_auth_free(struct web_auth *);

#endif /* MAILREPD_WEB_AUTH_H */
