/*
 * dev.c — `mailrepd dev`: a ready server on a throw-away store.
 *
 * Start-up is kept well under 100 ms: the ready user is made without a
 * password (PASSWORD_NONE), so no PBKDF2 hash (~100 ms at
 * PBKDF2_ITERATIONS) is computed; dev mode lets a user without a
 * password log in with any password from loopback instead.  What costs
 * time is one new SQLite store, its first commits and the generated TLS
 * certificate.  A temporary store (removed on exit, no --keep) commits
 * without fsync: a crash of dev loses nothing anyone keeps.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dev.h"
#include "json.h"
#include "log.h"
#include "settings.h"
#include "store.h"
#include "tls.h"

/* The listeners dev reports, in the order it prints them. */
enum dev_port {
	PORT_SMTP,
	PORT_LMTP,
	PORT_IMAP,
	PORT_IMAPS,
	PORT_HTTP,
	NPORTS
};

static const struct {
	const char	*proto;		/* proto_ops name */
	const char	*label;		/* in the printed block */
	int		 fixed;		/* the default port */
} ports[NPORTS] = {
	[PORT_SMTP] = { "smtp", "SMTP", DEV_SMTP_PORT },
	[PORT_LMTP] = { "lmtp", "LMTP", DEV_LMTP_PORT },
	[PORT_IMAP] = { "imap", "IMAP", DEV_IMAP_PORT },
	[PORT_IMAPS] = { "imaps", "IMAPS", DEV_IMAPS_PORT },
	[PORT_HTTP] = { "http", "HTTP", DEV_HTTP_PORT },
};

struct dev {
	char		*data_dir;	/* a copy of set->data_dir */
	int		 temporary;	/* data_dir is ours to remove */
	int		 keep;		/* --keep */
	int		 json;		/* --json */
	int		 port[NPORTS];	/* bound port, 0 when none */
	char		 host[INET6_ADDRSTRLEN];
	struct timespec	 t0;		/* dev_setup() began */
};

static void
dev_usage(FILE *f, const struct cmd_option *opts, int n)
{
	fprintf(f, "usage: mailrepd dev [--ports auto] [--json] [--keep] "
	    "[--data DIR] [--key VALUE ...]\n\n"
	    "Starts a throw-away server for development and CI in the "
	    "foreground: a\ntemporary data directory under $TMPDIR (removed "
	    "on exit, SIGQUIT included,\nunless --keep), loopback listeners "
	    "on SMTP %d, LMTP %d, IMAP %d, IMAPS %d\nand HTTP %d (--ports auto "
	    "picks free ones), "
	    "and the user '%s'.  It prints how to\nconnect, with --json as "
	    "one JSON line on stdout.  Any recipient is\naccepted (a new "
	    "local part becomes a user); NAME+tempfail, NAME+permfail\nand "
	    "NAME+slow get a 451, a 550 or a %d s late reply.  Users without "
	    "a\npassword (all that dev makes) log in with any password, from "
	    "loopback only.\n\nOptions:\n", DEV_SMTP_PORT, DEV_LMTP_PORT,
	    DEV_IMAP_PORT, DEV_IMAPS_PORT, DEV_HTTP_PORT, DEV_USER, DEV_SLOW_SECONDS);
	settings_usage_options(f, opts, n);
	fprintf(f, "\n");
	settings_usage(f);
}

/* Sets a listener setting to 127.0.0.1:PORT unless it was given. */
static int
default_listener(char **setting, int port)
{
	char	 spec[32];

	if (*setting != NULL)
		return 0;
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	return (*setting = strdup(spec)) == NULL ? -1 : 0;
}

/* Makes $TMPDIR/mailrepd-dev-XXXXXX (mode 0700); returns it or NULL. */
static char *
make_temp_dir(void)
{
	const char	*tmp = getenv("TMPDIR");
	char		 path[PATH_MAX];

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(path, sizeof(path), "%s/mailrepd-dev-XXXXXX",
	    tmp) >= sizeof(path) || mkdtemp(path) == NULL) {
		fprintf(stderr, "mailrepd: dev: cannot make a temporary "
		    "directory in '%s' (TMPDIR): %s\n", tmp, strerror(errno));
		return NULL;
	}
	return strdup(path);
}

int
dev_setup(struct settings *set, int argc, char **argv, struct dev **out)
{
	struct cmd_option opts[] = {
		{ "ports", 1, "'auto': free loopback ports, not the fixed "
		    "ones", NULL },
		{ "json", 0, "print how to connect as one JSON line on stdout",
		    NULL },
		{ "keep", 0, "keep the temporary data directory on exit",
		    NULL },
		{ "data", 1, "use (and keep) DIR instead of a temporary one",
		    NULL },
		{ "help", 0, "show this help", NULL },
	};
	const int	 nopts = sizeof(opts) / sizeof(*opts);
	struct dev	*dev;
	int		 npos = 0, autop;

	*out = NULL;
	if (settings_parse(set, argc, argv, 2, opts, nopts, NULL, &npos) < 0)
		return -1;
	if (opts[4].value != NULL) {
		dev_usage(stdout, opts, nopts);
		return 1;
	}
	if (opts[0].value != NULL && strcmp(opts[0].value, "auto") != 0) {
		fprintf(stderr, "mailrepd: --ports wants 'auto', not '%s' "
		    "(give --smtp, --lmtp or --imap ADDR:PORT for one port)\n",
		    opts[0].value);
		return -1;
	}
	autop = opts[0].value != NULL;
	if ((dev = calloc(1, sizeof(*dev))) == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &dev->t0);
	dev->json = opts[1].value != NULL;
	dev->keep = opts[2].value != NULL;
	if (opts[3].value != NULL)
		dev->data_dir = strdup(opts[3].value);
	else {
		dev->data_dir = make_temp_dir();
		dev->temporary = 1;
	}
	free(set->data_dir);
	set->data_dir = dev->data_dir ? strdup(dev->data_dir) : NULL;
	if (set->data_dir == NULL ||
	    default_listener(&set->smtp, autop ? 0 : DEV_SMTP_PORT) < 0 ||
	    default_listener(&set->lmtp, autop ? 0 : DEV_LMTP_PORT) < 0 ||
	    default_listener(&set->imap, autop ? 0 : DEV_IMAP_PORT) < 0 ||
	    default_listener(&set->imaps, autop ? 0 : DEV_IMAPS_PORT) < 0 ||
	    default_listener(&set->http, autop ? 0 : DEV_HTTP_PORT) < 0) {
		dev_finish(dev);
		return -1;
	}
	*out = dev;
	return 0;
}

int
dev_store(struct dev *dev, struct store *st)
{
	char		 canon[USER_MAX_NAME + 1];
	enum store_err	 err;

	/* A store removed on exit needs no fsync per commit. */
	err = dev->temporary && !dev->keep ? store_set_throwaway(st) :
	    STORE_OK;
	if (err == STORE_OK)
		err = store_user_find(st, DEV_USER, canon);
	if (err == STORE_NOTFOUND) {
		err = store_user_add(st, DEV_USER, PASSWORD_NONE);
		if (err == STORE_OK)
			err = store_commit(st);
	}
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: dev: cannot make the user '%s': "
		    "%s\n", DEV_USER, store_strerror(err));
		return -1;
	}
	return 0;
}

void
dev_listener(struct dev *dev, const char *proto, int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 i, port;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return;		/* a unix socket has no port to print */
	for (i = 0; i < NPORTS; i++) {
		if (strcmp(ports[i].proto, proto) != 0 || dev->port[i] != 0)
			continue;
		dev->port[i] = port;
		if (dev->host[0] != '\0')
			break;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
			    sin_addr, dev->host, sizeof(dev->host));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
			    sin6_addr, dev->host, sizeof(dev->host));
		break;
	}
}

/* The one JSON line: host, ports (null when not listening), user... */
static void
print_json(const struct dev *dev)
{
	static const enum dev_port order[] = {
		PORT_SMTP, PORT_IMAP, PORT_IMAPS, PORT_LMTP, PORT_HTTP
	};
	size_t	 i;

	printf("{\"host\":");
	json_str(stdout, dev->host);
	printf(",\"ports\":{");
	for (i = 0; i < sizeof(order) / sizeof(*order); i++) {
		printf("%s\"%s\":", i ? "," : "", ports[order[i]].proto);
		if (dev->port[order[i]] != 0)
			printf("%d", dev->port[order[i]]);
		else
			printf("null");
	}
	printf("},\"user\":");
	json_str(stdout, DEV_USER);
	printf(",\"password\":");
	json_str(stdout, DEV_PASSWORD);
	printf(",\"fingerprint\":");
	json_str(stdout, tls_fingerprint());
	printf(",\"data_dir\":");
	json_str(stdout, dev->data_dir);
	printf("}\n");
}

void
dev_ready(struct dev *dev)
{
	FILE		*f = dev->json ? stderr : stdout;
	struct timespec	 t1;
	long		 us;
	int		 i;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (t1.tv_sec - dev->t0.tv_sec) * 1000000L +
	    (t1.tv_nsec - dev->t0.tv_nsec) / 1000;
	fprintf(f, "mailrepd dev is ready (%ld.%ld ms), data in %s%s\n",
	    us / 1000, us % 1000 / 100, dev->data_dir, !dev->temporary ?
	    "" : dev->keep ? " (kept on exit)" : " (removed on exit)");
	for (i = 0; i < NPORTS; i++)
		if (dev->port[i] != 0)
			fprintf(f, "  %-6s %s:%d%s\n", ports[i].label,
			    dev->host, dev->port[i], i == PORT_SMTP ?
			    "  (AUTH PLAIN/LOGIN: any name and password)" : "");
	if (tls_fingerprint() != NULL)
		fprintf(f, "  TLS    STARTTLS on SMTP, LMTP and IMAP; "
		    "self-signed certificate, SHA-256\n         %s\n",
		    tls_fingerprint());
	fprintf(f, "  user   %s / %s  (any password; loopback only)\n"
	    "Any recipient is accepted: a new local part becomes a user.  "
	    "NAME+tempfail,\nNAME+permfail and NAME+slow get a 451, a 550 "
	    "or a %d s late reply.\n"
	    "What arrived: mailrepd messages --data %s [--json]\n",
	    DEV_USER, DEV_PASSWORD, DEV_SLOW_SECONDS, dev->data_dir);
	if (dev->json)
		print_json(dev);
	fflush(stdout);
	fflush(stderr);
	log_info("dev.ready", "data=%s us=%ld", log_quote(dev->data_dir), us);
}

static int
remove_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		log_warn("dev.cleanup", "path=%s msg=%s", log_quote(path),
		    log_quote(strerror(errno)));
	return 0;
}

void
dev_finish(struct dev *dev)
{
	if (dev == NULL)
		return;
	if (dev->temporary && !dev->keep && dev->data_dir != NULL) {
		nftw(dev->data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		log_info("dev.cleanup", "removed=%s",
		    log_quote(dev->data_dir));
	}
	free(dev->data_dir);
	free(dev);
}
