/*
 * web.h — what the HTTP listener serves (web.c): the route table,
 * /healthz and /metrics, behind http.c's web_handle(); and which
 * listeners may be opened, and how.
 */
#ifndef MAILREPD_WEB_H
#define MAILREPD_WEB_H

struct settings;

/*
 * Checks the --http listeners and reads the admin token: a listener
 * other than loopback (127.0.0.0/8, [::1]) serves TLS only, with
 * logins, so it needs tls-cert and tls-key.  Returns 0, or -1 after
 * saying which setting is at fault.
 */
int	web_setup(const struct settings *);

/* Whether an --http listener (ADDR:PORT) is served over TLS. */
int	web_spec_tls(const char *spec);

#endif /* MAILREPD_WEB_H */
