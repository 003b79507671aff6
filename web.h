/*
 * web.h — what the HTTP listener serves (web.c): the route table,
 * /healthz and /metrics, behind http.c's web_handle().
 */
#ifndef MAILREPD_WEB_H
#define MAILREPD_WEB_H

/*
 * Checks the --http listeners (comma-separated ADDR:PORT, NULL: none):
 * loopback only (127.0.0.0/8, [::1]) until the web view has
 * TLS and logins.  Returns 0, or -1 after saying which one is refused.
 */
int	web_check_listen(const char *specs);

#endif /* MAILREPD_WEB_H */
