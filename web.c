/*
 * web.c — what the --http listener serves: the route table, /healthz
 * and /metrics (Prometheus text format).  The JSON API is web_api.c's,
 * the page web_page.c's, the event stream web_events.c's, and who asks
 * web_auth.c's.
 *
 * A loopback listener speaks plain HTTP; any other only TLS, with the
 * certificate IMAPS serves, and every request on it logs in
 * (web_auth.h).  Each route says who may ask: anyone (/healthz), a
 * user, who sees only their own mail, or the admin view (/metrics).
 * A change (DELETE, PUT) must come from the same origin, so that a page
 * of another site open in a browser cannot ask for it (CSRF).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "sync.h"
#include "web.h"
#include "web_api.h"
#include "web_auth.h"
#include "web_events.h"
#include "web_headers.h"
#include "web_message.h"
#include "web_page.h"

static void	serve_healthz(struct session *, const struct http_request *,
		    const char *);
static void	serve_metrics(struct session *, const struct http_request *,
		    const char *);

/* Who may ask a route. */
enum access {
	ACCESS_ANYONE,		/* no login: a load balancer's health check */
	ACCESS_USER,		/* a user (their own mail) or the admin view */
	ACCESS_ADMIN,		/* the admin view only */
};

/*
 * Every route: a path where "*" stands for one segment, the handler,
 * the method, whether it changes anything (the same-origin check), and
 * who may ask.  A HEAD is answered as the GET of the same path, without
 * the body.
 */
static const struct {
	const char		*pattern;
	void			(*handle)(struct session *,
				    const struct http_request *, const char *);
	enum http_method	 method;
	int			 change;
	enum access		 access;
} routes[] = {
	{ "/", web_page_serve, HTTP_GET, 0, ACCESS_USER },
	{ "/app.css", web_page_serve, HTTP_GET, 0, ACCESS_USER },
	{ "/app.js", web_page_serve, HTTP_GET, 0, ACCESS_USER },
	{ "/live.js", web_page_serve, HTTP_GET, 0, ACCESS_USER },
	{ "/healthz", serve_healthz, HTTP_GET, 0, ACCESS_ANYONE },
	{ "/metrics", serve_metrics, HTTP_GET, 0, ACCESS_ADMIN },
	{ "/api/v1/messages", web_api_list, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/messages", web_api_delete, HTTP_DELETE, 1, ACCESS_USER },
	{ "/api/v1/messages", web_api_read, HTTP_PUT, 1, ACCESS_USER },
	{ "/api/v1/search", web_api_search, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/message/*", web_api_message, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/message/*/raw", web_api_raw, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/message/*/headers", web_api_headers, HTTP_GET, 0,
	    ACCESS_USER },
	{ "/api/v1/message/*/html", web_api_html, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/message/*/cid/*", web_api_cid, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/message/*/part/*", web_api_part, HTTP_GET, 0,
	    ACCESS_USER },
	{ "/api/v1/mailboxes", web_api_mailboxes, HTTP_GET, 0, ACCESS_USER },
	{ "/api/v1/events", web_events_serve, HTTP_GET, 0, ACCESS_USER },
};

/*
 * Whether path matches pattern; the segments the "*"s matched are
 * copied to arg, joined by '/' (NUL-terminated, "" when the pattern has
 * none).
 */
static int
route_match(const char *pattern, const char *path, char arg[WEB_MAX_SEGMENT])
{
	size_t	 n, used = 0;

	arg[0] = '\0';
	while (*pattern != '\0') {
		if (*pattern == '*') {
			n = strcspn(path, "/");
			if (n == 0 || used + n + 1 >= WEB_MAX_SEGMENT)
				return 0;
			if (used > 0)
				arg[used++] = '/';
			memcpy(arg + used, path, n);
			arg[used += n] = '\0';
			path += n;
			pattern++;
		} else if (*pattern++ != *path++)
			return 0;
	}
	return *path == '\0';
}

/*
 * The same-origin check of a change: a browser names the page's origin
 * (Origin) and whether it is this site's (Sec-Fetch-Site); either, when
 * sent, must say it is.  Clients that are not browsers (curl, a test
 * suite) send neither and are let through.
 */
static int
same_origin(const struct session *s, const struct http_request *req)
{
	const char	*scheme = session_secure(s) ? "https://" : "http://";
	size_t		 n, k = strlen(scheme);

	if (req->fetch_site != NULL && strcmp(req->fetch_site,
	    "same-origin") != 0 && strcmp(req->fetch_site, "none") != 0)
		return 0;
	if (req->origin == NULL)
		return 1;
	if (req->host == NULL || strncmp(req->origin, scheme, k) != 0)
		return 0;
	n = strlen(req->host);
	return strncmp(req->origin + k, req->host, n) == 0 &&
	    req->origin[k + n] == '\0';
}

/*
 * Runs route r for req once its access allows who asks: req->user is
 * then the user it is limited to, NULL for the admin view.
 */
static int
route_run(struct session *s, size_t r, const struct http_request *req,
    const char *arg)
{
	struct http_request	 asked = *req;
	char			 user[USER_MAX_NAME + 1];
	enum web_who		 who = WHO_ADMIN;

	if (routes[r].change && !same_origin(s, req)) {
		http_error(s, 403, "cross-origin request refused");
		return 0;
	}
	if (routes[r].access != ACCESS_ANYONE)
		who = web_auth_request(s, req, user);
	if (who == WHO_WAIT)
		return WEB_WAIT;
	if (who == WHO_REFUSED)
		return 0;
	if (who == WHO_USER && routes[r].access == ACCESS_ADMIN) {
		http_error(s, 403, "for the admin view only");
		return 0;
	}
	asked.user = who == WHO_USER ? user : NULL;
	routes[r].handle(s, &asked, arg[0] != '\0' ? arg : NULL);
	return 0;
}

int
web_handle(struct session *s, const struct http_request *req)
{
	enum http_method	 m;
	char			 arg[WEB_MAX_SEGMENT];
	size_t			 i;
	int			 path_known = 0;

	m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
	for (i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
		if (!route_match(routes[i].pattern, req->path, arg))
			continue;
		path_known = 1;
		if (routes[i].method == m)
			return route_run(s, i, req, arg);
	}
	http_error(s, path_known ? 405 : 404, path_known ?
	    "method not allowed" : "not found");
	return 0;
}

/* 200 while serving, 503 while draining: what a load balancer asks. */
static void
serve_healthz(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct store_node	 me;
	char			 body[128];
	int			 n, draining = s->srv->draining;

	(void)req;
	(void)arg;
	if (store_node_get(s->srv->store, &me) != STORE_OK)
		snprintf(me.role, sizeof(me.role), "unknown");
	n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"role\":\"%s\","
	    "\"draining\":%s}\n", draining ? "draining" : "ok", me.role,
	    draining ? "true" : "false");
	http_reply(s, draining ? 503 : 200, "application/json", body,
	    (size_t)n, NULL);
}

/* A Prometheus label value: backslash, quote and line feed escaped. */
static void
label_value(FILE *f, const char *v)
{
	for (; *v != '\0'; v++)
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			putc(*v, f);
}

/* Sessions open, per protocol. */
static void
metrics_sessions(FILE *f, const struct server *srv)
{
	static const char *const names[] = {
		"lmtp", "smtp", "imap", "http", "repl"
	};
	const struct session	*s;
	size_t			 i;
	unsigned		 n;

	fputs("# HELP mailrepd_sessions Sessions open, per protocol.\n"
	    "# TYPE mailrepd_sessions gauge\n", f);
	for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
		n = 0;
		for (s = srv->sessions; s != NULL; s = s->next)
			if (strncmp(s->ops->name, names[i],
			    strlen(names[i])) == 0)
				n++;
		fprintf(f, "mailrepd_sessions{protocol=\"%s\"} %u\n", names[i],
		    n);
	}
}

/* Deliveries since start, per outcome (LMTP and SMTP). */
static void
metrics_deliveries(FILE *f, const struct server *srv)
{
	size_t	 i;

	fputs("# HELP mailrepd_deliveries_total Deliveries to one recipient "
	    "since start, per outcome.\n"
	    "# TYPE mailrepd_deliveries_total counter\n", f);
	for (i = 0; i <= STORE_IO + 1; i++)
		fprintf(f, "mailrepd_deliveries_total{outcome=\"%s\"} %llu\n",
		    i <= STORE_IO ? store_strerror((enum store_err)i) :
		    "uncommitted", (unsigned long long)srv->deliveries[i]);
}

struct replica_walk {
	FILE	*f;
	int64_t	 head;
};

static int
metrics_replica(void *arg, const struct store_replica *r)
{
	struct replica_walk	*w = arg;
	const char		*metric[] = {
		"mailrepd_replica_acked_position",
		"mailrepd_replica_lag_records",
		"mailrepd_replica_connected",
	};
	int64_t			 value[] = {
		r->acked, w->head > r->acked ? w->head - r->acked : 0,
		r->connected,
	};
	size_t			 i;

	for (i = 0; i < sizeof(value) / sizeof(*value); i++) {
		fprintf(w->f, "%s{replica=\"", metric[i]);
		label_value(w->f, r->name);
		fprintf(w->f, "\"} %lld\n", (long long)value[i]);
	}
	return 0;
}

/*
 * The log head, and each replica's position and lag behind it; -1 when
 * the store cannot say (no figure is better than a wrong one).
 */
static int
metrics_replication(FILE *f, struct server *srv)
{
	struct replica_walk	 w;

	w.f = f;
	if ((w.head = store_replog_head(srv->store)) < 0)
		return -1;
	fprintf(f, "# HELP mailrepd_replog_head Last position of this node's "
	    "replication log.\n# TYPE mailrepd_replog_head gauge\n"
	    "mailrepd_replog_head %lld\n"
	    "# HELP mailrepd_replica_lag_records Log records a replica has "
	    "not acknowledged.\n"
	    "# TYPE mailrepd_replica_acked_position gauge\n"
	    "# TYPE mailrepd_replica_lag_records gauge\n"
	    "# TYPE mailrepd_replica_connected gauge\n", (long long)w.head);
	return store_replica_foreach(srv->store, metrics_replica, &w) ==
	    STORE_OK ? 0 : -1;
}

/* The group commits' time, as a Prometheus histogram in seconds. */
static void
metrics_commits(FILE *f, const struct server *srv)
{
	uint64_t	 n = 0;
	size_t		 i;

	fputs("# HELP mailrepd_commit_seconds Time a group commit (and its "
	    "sync) took.\n# TYPE mailrepd_commit_seconds histogram\n", f);
	for (i = 0; i <= SERVER_COMMIT_BUCKETS; i++) {
		n += srv->commits[i];
		if (i < SERVER_COMMIT_BUCKETS)
			fprintf(f, "mailrepd_commit_seconds_bucket{le=\"%g\"} "
			    "%llu\n", server_commit_bounds_us[i] / 1e6,
			    (unsigned long long)n);
	}
	fprintf(f, "mailrepd_commit_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "mailrepd_commit_seconds_sum %.6f\n"
	    "mailrepd_commit_seconds_count %llu\n", (unsigned long long)n,
	    srv->commit_us / 1e6, (unsigned long long)n);
}

struct pause_count {
	long long	 users, held;
};

static int
count_pause(void *arg, const struct store_pause *p)
{
	struct pause_count	*c = arg;

	c->users++;
	c->held += p->held;
	return 0;
}

/*
 * Unresolved conflicts, the mass-delete guard's paused users and the
 * records it holds of them, and the bytes free on the store's disk; -1
 * when the store cannot say (an unread list is not "none paused").
 */
static int
metrics_store(FILE *f, struct server *srv)
{
	struct pause_count	 c = { 0, 0 };
	int64_t			 disk, conflicts;

	if (store_pause_foreach(srv->store, count_pause, &c) != STORE_OK ||
	    (conflicts = store_conflict_count(srv->store, NULL)) < 0)
		return -1;
	fprintf(f, "# HELP mailrepd_conflicts Unresolved conflicts (one UID, "
	    "two messages).\n# TYPE mailrepd_conflicts gauge\n"
	    "mailrepd_conflicts %lld\n"
	    "# HELP mailrepd_guard_paused_users Users whose records the "
	    "mass-delete guard holds.\n"
	    "# TYPE mailrepd_guard_paused_users gauge\n"
	    "mailrepd_guard_paused_users %lld\n"
	    "# HELP mailrepd_guard_held_records Records the guard holds.\n"
	    "# TYPE mailrepd_guard_held_records gauge\n"
	    "mailrepd_guard_held_records %lld\n",
	    (long long)conflicts, c.users, c.held);
	if ((disk = store_disk_free(srv->store)) >= 0)
		fprintf(f, "# HELP mailrepd_disk_free_bytes Bytes free for "
		    "the store on its disk.\n"
		    "# TYPE mailrepd_disk_free_bytes gauge\n"
		    "mailrepd_disk_free_bytes %lld\n", (long long)disk);
	return 0;
}

static void
serve_metrics(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct server	*srv = s->srv;
	char		*text = NULL;
	size_t		 len = 0;
	int64_t		 db, wal;
	FILE		*f;
	int		 unread;

	(void)req;
	(void)arg;
	if ((f = http_memstream(&text, &len)) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	fprintf(f, "# HELP mailrepd_draining 1 while a SIGQUIT drain runs.\n"
	    "# TYPE mailrepd_draining gauge\nmailrepd_draining %d\n",
	    srv->draining);
	metrics_sessions(f, srv);
	metrics_deliveries(f, srv);
	unread = metrics_replication(f, srv) < 0;
	metrics_commits(f, srv);
	unread |= metrics_store(f, srv) < 0;
	store_file_bytes(srv->store, &db, &wal);
	fprintf(f, "# HELP mailrepd_store_bytes Size of the store's files.\n"
	    "# TYPE mailrepd_store_bytes gauge\n"
	    "mailrepd_store_bytes{file=\"db\"} %lld\n"
	    "mailrepd_store_bytes{file=\"wal\"} %lld\n"
	    "# HELP mailrepd_session_buffer_bytes Memory every session's "
	    "buffers hold.\n# TYPE mailrepd_session_buffer_bytes gauge\n"
	    "mailrepd_session_buffer_bytes %zu\n", (long long)db,
	    (long long)wal, srv->buffered);
	if (fclose(f) != 0 || unread) {
		free(text);
		/* A scrape that fails says so; partial figures would not. */
		http_error(s, unread ? 503 : 500, unread ? "the store cannot be "
		    "read" : "out of memory");
		return;
	}
	http_reply(s, 200, "text/plain; version=0.0.4; charset=utf-8", text,
	    len, NULL);
	free(text);
}

/* Whether one listener's address (numeric: net_listen) is loopback. */
static int
loopback_spec(const char *spec)
{
	static const char *const loopback[] = {
		"127.", "[::1]:",
	};
	size_t	 i;

	for (i = 0; i < sizeof(loopback) / sizeof(*loopback); i++)
		if (strncmp(spec, loopback[i], strlen(loopback[i])) == 0)
			return 1;
	return 0;
}

int
web_spec_tls(const char *spec)
{
	return !loopback_spec(spec);
}

int
web_setup(const struct settings *set)
{
	const char	*p = set->http;
	size_t		 n;
	char		 spec[256];

	while (p != NULL && *p != '\0') {
		n = strcspn(p, ",");
		snprintf(spec, sizeof(spec), "%.*s", (int)n, p);
		if (!loopback_spec(spec) && (set->tls_cert == NULL ||
		    set->tls_key == NULL)) {
			fprintf(stderr, "mailrepd: setting 'http': '%s' is not "
			    "a loopback address: the web view is served there "
			    "over TLS only, with logins, and needs the "
			    "certificate IMAPS serves as tls-cert and tls-key "
			    "(or listen on 127.0.0.1 or [::1])\n", spec);
			return -1;
		}
		p += n + (p[n] == ',');
	}
	return web_auth_setup(set->http_admin_token_file);
}
