/*
 * settings.c — the settings table, the config-file reader and the
 * long-option parser, all driven by one table.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "settings.h"

enum setting_type {
	SET_STRING,
	SET_LONG,
	SET_BOOL,
	SET_ENUM,
	SET_LIST,	/* a string; each further value appends a line */
};

struct setting {
	const char		*name;
	enum setting_type	 type;
	size_t			 offset;	/* into struct settings */
	const char		*def;		/* default, as text, or NULL */
	long			 ldef;		/* default of a SET_LONG */
	long			 min, max;	/* bounds of a SET_LONG */
	const char *const	*words;		/* for SET_ENUM, NULL-ended */
	const char		*help;
};

static const char *const conflict_policies[] = {
	"renumber", "keep", NULL
};

static const char *const log_levels[] = {
	"debug", "info", "warn", "error", NULL
};

#define OFF(f)	offsetof(struct settings, f)

static const struct setting table[] = {
	{ "config", SET_STRING, OFF(config), NULL, 0, 0, 0, NULL,
	    "read settings from FILE (key = value lines)" },
	{ "data", SET_STRING, OFF(data_dir), DEFAULT_DATA_DIR, 0, 0, 0, NULL,
	    "data directory; created if missing" },
	{ "lmtp", SET_STRING, OFF(lmtp), NULL, 0, 0, 0, NULL,
	    "LMTP listeners: ADDR:PORT, [V6ADDR]:PORT or unix:PATH, comma "
	    "separated" },
	{ "imap", SET_STRING, OFF(imap), NULL, 0, 0, 0, NULL,
	    "IMAP listeners: ADDR:PORT or [V6ADDR]:PORT, comma separated" },
	{ "smtp", SET_STRING, OFF(smtp), NULL, 0, 0, 0, NULL,
	    "SMTP listeners for local delivery (never relays): ADDR:PORT" },
	{ "name", SET_STRING, OFF(name), NULL, 0, 0, 0, NULL,
	    "this node's name, used in greetings (default: the host name)" },
	{ "domains", SET_STRING, OFF(domains), NULL, 0, 0, 0, NULL,
	    "recipient domains accepted, comma separated (default: any)" },
	{ "imaps", SET_STRING, OFF(imaps), NULL, 0, 0, 0, NULL,
	    "IMAP listeners with implicit TLS: ADDR:PORT, comma separated" },
	{ "http", SET_STRING, OFF(http), NULL, 0, 0, 0, NULL,
	    "HTTP listeners (web view, API, health, metrics): ADDR:PORT, "
	    "comma separated; other than loopback only over TLS with logins "
	    "(needs tls-cert and tls-key)" },
	{ "http-admin-token-file", SET_STRING, OFF(http_admin_token_file),
	    NULL, 0, 0, 0, NULL, "token (one line, mode 600) that opens "
	    "every user's mail over HTTP as \"Authorization: Bearer TOKEN\"" },
	{ "tls-cert", SET_STRING, OFF(tls_cert), NULL, 0, 0, 0, NULL,
	    "TLS certificate chain, PEM (default: generated in the data "
	    "directory)" },
	{ "tls-key", SET_STRING, OFF(tls_key), NULL, 0, 0, 0, NULL,
	    "TLS private key of tls-cert, PEM" },
	{ "allow-plaintext-auth", SET_BOOL, OFF(allow_plaintext_auth), "no",
	    0, 0, 0, NULL,
	    "allow IMAP login without TLS from non-loopback clients" },
	{ "imap-literal-minus", SET_BOOL, OFF(imap_literal_minus), "no",
	    0, 0, 0, NULL,
	    "offer LITERAL- instead of LITERAL+: a non-synchronizing literal "
	    "over 4096 bytes gets BAD [TOOBIG] (RFC 7888)" },
	{ "tls-handshake-timeout", SET_LONG, OFF(tls_handshake_timeout),
	    NULL, DEFAULT_TLS_HANDSHAKE_TIMEOUT, 1, 600, NULL,
	    "seconds a TLS handshake may take" },
	{ "max-tls-handshakes", SET_LONG, OFF(max_tls_handshakes),
	    NULL, DEFAULT_MAX_TLS_HANDSHAKES, 1, 100000, NULL,
	    "TLS handshakes in progress at once on each kind of listener; "
	    "past it the oldest one is dropped" },
	{ "max-tls-sessions", SET_LONG, OFF(max_tls_sessions),
	    NULL, DEFAULT_MAX_TLS_SESSIONS, 1, 100000, NULL,
	    "client connections with TLS at once (36 KiB each); past it a "
	    "stalled handshake gives its place up, else IMAPS is refused "
	    "and STARTTLS answered NO / 454" },
	{ "max-compress-sessions", SET_LONG, OFF(max_compress_sessions),
	    NULL, DEFAULT_MAX_COMPRESS_SESSIONS, 1, 100000, NULL,
	    "IMAP connections with COMPRESS=DEFLATE on at once (80 KiB "
	    "each); past it COMPRESS is answered NO [LIMIT]" },
	{ "max-connections", SET_LONG, OFF(max_connections),
	    NULL, DEFAULT_MAX_CONNECTIONS, 1, 100000, NULL,
	    "concurrent IMAP clients, and separately LMTP/SMTP senders; more "
	    "get 421 4.3.2 / * BYE" },
	{ "max-per-address", SET_LONG, OFF(max_per_address),
	    NULL, DEFAULT_MAX_PER_ADDRESS, 1, 100000, NULL,
	    "connections from one client address (IMAP, and separately "
	    "LMTP/SMTP and replication); loopback and unix clients exempt" },
	{ "idle-timeout", SET_LONG, OFF(idle_timeout),
	    NULL, DEFAULT_IDLE_TIMEOUT, 1, 86400, NULL,
	    "seconds before an idle connection is closed" },
	{ "prelogin-timeout", SET_LONG, OFF(prelogin_timeout),
	    NULL, DEFAULT_PRELOGIN_TIMEOUT, 1, 3600, NULL,
	    "seconds from connecting to logging in (IMAP) or greeting (LMTP, "
	    "SMTP), however often the client sends" },
	{ "max-mailboxes", SET_LONG, OFF(max_mailboxes),
	    NULL, DEFAULT_MAX_MAILBOXES, 1, 1000000, NULL,
	    "mailboxes one user may have; CREATE past it (and a name deeper "
	    "than 32 levels) gets NO [LIMIT]" },
	{ "max-messages", SET_LONG, OFF(max_messages),
	    NULL, DEFAULT_MAX_MESSAGES, 1, 1L << 31, NULL,
	    "messages one mailbox may hold; more get NO [LIMIT] (IMAP) or "
	    "552 5.2.2 (LMTP)" },
	{ "quota-storage", SET_LONG, OFF(quota_storage),
	    NULL, DEFAULT_QUOTA_STORAGE, 0, 1L << 50, NULL,
	    "bytes of mail one user may keep in all their mailboxes (IMAP "
	    "QUOTA); more get NO [OVERQUOTA] (IMAP) or 552 5.2.2 (LMTP); 0: "
	    "no limit" },
	{ "quota-messages", SET_LONG, OFF(quota_messages),
	    NULL, DEFAULT_QUOTA_MESSAGES, 0, 1L << 40, NULL,
	    "messages one user may keep in all their mailboxes, refused as "
	    "quota-storage's bytes; 0: no limit" },
	{ "quota-lmtp-temporary", SET_BOOL, OFF(quota_lmtp_temporary), "no",
	    0, 0, 0, NULL,
	    "answer an LMTP recipient over quota 452 4.2.2 (try again later) "
	    "instead of 552 5.2.2 (bounce)" },
	{ "search-index", SET_BOOL, OFF(search_index), "yes", 0, 0, 0, NULL,
	    "keep a full-text index that makes SEARCH of 3 or more "
	    "characters fast (results stay the same without it)" },
	{ "disk-reserve", SET_LONG, OFF(disk_reserve),
	    NULL, DEFAULT_DISK_RESERVE, 0, 1L << 40, NULL,
	    "bytes of disk kept in the data directory (file 'reserve') so "
	    "that users can still delete mail when the disk is full; 0: none" },
	{ "max-message-size", SET_LONG, OFF(max_message_size),
	    NULL, DEFAULT_MAX_MESSAGE_SIZE, 1024, 1L << 30, NULL,
	    "largest message accepted, in bytes (LMTP SIZE)" },
	{ "repl-listen", SET_STRING, OFF(repl_listen), NULL, 0, 0, 0, NULL,
	    "accept replicas on ADDR:PORT, comma separated" },
	{ "replicate-from", SET_STRING, OFF(replicate_from), NULL, 0, 0, 0,
	    NULL, "run as a replica of the master at HOST:PORT" },
	{ "repl-secret-file", SET_STRING, OFF(repl_secret_file), NULL, 0, 0,
	    0, NULL, "shared secret of the replication channel (mode 600)" },
	{ "conflict-notify", SET_STRING, OFF(conflict_notify), NULL, 0, 0, 0,
	    NULL, "command run (sh -c) for each GUID conflict" },
	{ "repl-log-retention", SET_LONG, OFF(repl_log_retention),
	    NULL, DEFAULT_REPL_LOG_RETENTION, 0, 10L * 366 * 86400, NULL,
	    "seconds a log record waits for a replica that has not taken it; "
	    "a replica further behind reconciles in full" },
	{ "conflict-policy", SET_ENUM, OFF(conflict_policy), "renumber", 0, 0,
	    0, conflict_policies, "on a GUID conflict: renumber (both copies "
	    "kept under new UIDs) or keep (record and alert only)" },
	{ "repl-sync-timeout", SET_LONG, OFF(repl_sync_timeout), NULL,
	    DEFAULT_REPL_SYNC_TIMEOUT, 0, REPL_SYNC_TIMEOUT_MAX, NULL,
	    "ms a master holds each LMTP 250 / IMAP OK until a replica has "
	    "the change (0: asynchronous)" },
	{ "repl-handshake-timeout", SET_LONG, OFF(repl_handshake_timeout),
	    NULL, DEFAULT_REPL_HANDSHAKE_TIMEOUT, 1, REPL_TIMING_MAX, NULL,
	    "seconds a replication peer has, once TLS is up, for HELLO and "
	    "START" },
	{ "repl-ping-interval", SET_LONG, OFF(repl_ping_interval), NULL,
	    DEFAULT_REPL_PING_INTERVAL, 1, REPL_TIMING_MAX, NULL,
	    "seconds between keep-alives on an idle replication link" },
	{ "repl-dead-after", SET_LONG, OFF(repl_dead_after), NULL,
	    DEFAULT_REPL_DEAD_AFTER, 3, REPL_TIMING_MAX, NULL,
	    "seconds of silence after which a replication peer is dropped "
	    "(and a replica reconnects); more than twice repl-ping-interval" },
	{ "guard-max-mailbox-deletes", SET_LONG,
	    OFF(guard_max_mailbox_deletes), NULL, DEFAULT_GUARD_MAX_MAILBOX_DELETES,
	    0, 1000000, NULL, "a replica pauses rather than delete more "
	    "mailboxes than this within guard-window" },
	{ "guard-max-expunge-percent", SET_LONG,
	    OFF(guard_max_expunge_percent), NULL,
	    DEFAULT_GUARD_MAX_EXPUNGE_PERCENT, 1, 100, NULL,
	    "a replica pauses rather than expunge more than this share of one "
	    "user's messages within guard-window" },
	{ "guard-window", SET_LONG, OFF(guard_window), NULL,
	    DEFAULT_GUARD_WINDOW, 1, 30L * 86400, NULL,
	    "seconds over which the mass-delete guard counts" },
	{ "quarantine-days", SET_LONG, OFF(quarantine_days), NULL,
	    DEFAULT_QUARANTINE_DAYS, 0, 3650, NULL,
	    "days a replica keeps what its master deleted" },
	{ "tombstone-retention", SET_LONG, OFF(tombstone_retention), NULL,
	    DEFAULT_TOMBSTONE_RETENTION, 0, 10L * 366 * 86400, NULL,
	    "seconds the record of an expunge or a mailbox delete is kept "
	    "once every known replica has it (QRESYNC lists expunges one by "
	    "one this far back)" },
	{ "conflict-retention", SET_LONG, OFF(conflict_retention), NULL,
	    DEFAULT_CONFLICT_RETENTION, 0, 10L * 366 * 86400, NULL,
	    "seconds a resolved conflict stays listed" },
	{ "drain-timeout", SET_LONG, OFF(drain_timeout),
	    NULL, DEFAULT_DRAIN_TIMEOUT, 1, 3600, NULL,
	    "seconds a SIGQUIT drain waits for sessions and replicas" },
	{ "shutdown-command", SET_LIST, OFF(shutdown_command), NULL, 0, 0, 0,
	    NULL, "command run (sh -c) at the end of a drain; repeatable" },
	{ "syslog", SET_BOOL, OFF(syslog), "no", 0, 0, 0, NULL,
	    "log to syslog (facility mail) instead of stderr" },
	{ "catch-all", SET_BOOL, OFF(catch_all), "no", 0, 0, 0, NULL,
	    "accept any recipient: an unknown local part becomes a user "
	    "(without a password)" },
	{ "log-level", SET_ENUM, OFF(log_level), "info", 0, 0, 0, log_levels,
	    "least important events logged: debug, info, warn, error" },
	{ "run-as-user", SET_STRING, OFF(run_as_user), NULL, 0, 0, 0, NULL,
	    "started as root: become this user once the listeners are bound "
	    "(it must own the data directory's files)" },
	{ "unix-socket-owner", SET_STRING, OFF(unix_socket_owner), NULL, 0, 0,
	    0, NULL, "owner of unix:PATH listeners (default: run-as-user, "
	    "else the server's user)" },
	{ "unix-socket-group", SET_STRING, OFF(unix_socket_group), NULL, 0, 0,
	    0, NULL, "group of unix:PATH listeners (default: the server's)" },
	{ "unix-socket-mode", SET_STRING, OFF(unix_socket_mode),
	    DEFAULT_UNIX_SOCKET_MODE, 0, 0, 0, NULL,
	    "mode of unix:PATH listeners, octal: who may connect (and so "
	    "deliver to anyone)" },
};

#define NSETTINGS	(sizeof(table) / sizeof(table[0]))

static const struct setting *
setting_find(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < NSETTINGS; i++)
		if (strlen(table[i].name) == len &&
		    strncmp(table[i].name, name, len) == 0)
			return &table[i];
	return NULL;
}

/*
 * Parses `value` for setting `s` into *set.  `where` names the source
 * ("--data" or "file:12") for the error message.  Returns 0 or -1.
 */
static int
setting_apply(struct settings *set, const struct setting *s,
    const char *value, const char *where)
{
	char	*p = (char *)set + s->offset, *end, **sp;
	long	 v;
	int	 i;

	switch (s->type) {
	case SET_STRING:
		sp = (char **)p;
		free(*sp);
		if ((*sp = strdup(value)) == NULL)
			goto nomem;
		return 0;
	case SET_LIST:
		sp = (char **)p;
		if (*sp == NULL)
			*sp = strdup(value);
		else if (asprintf(&end, "%s\n%s", *sp, value) < 0)
			goto nomem;
		else {
			free(*sp);
			*sp = end;
		}
		if (*sp == NULL)
			goto nomem;
		return 0;
	case SET_LONG:
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || end == value || *end != '\0' || v < s->min ||
		    v > s->max) {
			fprintf(stderr, "mailrepd: %s: setting '%s' wants a "
			    "whole number from %ld to %ld, not '%s'\n", where,
			    s->name, s->min, s->max, value);
			return -1;
		}
		*(long *)p = v;
		return 0;
	case SET_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "1") == 0)
			*(int *)p = 1;
		else if (strcmp(value, "no") == 0 ||
		    strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
			*(int *)p = 0;
		else {
			fprintf(stderr, "mailrepd: %s: setting '%s' wants yes "
			    "or no, not '%s'\n", where, s->name, value);
			return -1;
		}
		return 0;
	case SET_ENUM:
		for (i = 0; s->words[i] != NULL; i++)
			if (strcmp(s->words[i], value) == 0) {
				*(int *)p = i;
				return 0;
			}
		fprintf(stderr, "mailrepd: %s: setting '%s' has no value "
		    "'%s'\n", where, s->name, value);
		return -1;
	}
	return -1;
nomem:
	fprintf(stderr, "mailrepd: out of memory\n");
	return -1;
}

/* Trims white space from both ends of s in place and returns it. */
static char *
trim(char *s)
{
	char	*e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Reads "key = value" lines from path; '#' starts a comment.  Returns 0,
 * or -1 after printing what is wrong and where.
 */
static int
settings_read_file(struct settings *set, const char *path)
{
	FILE			*f;
	char			 line[CONFIG_MAX_LINE], where[PATH_MAX + 32];
	char			*key, *value, *eq, *hash;
	const struct setting	*s;
	int			 lineno = 0, rc = 0;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "mailrepd: setting 'config': cannot read "
		    "'%s': %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "mailrepd: %s: line too long\n", where);
			rc = -1;
			break;
		}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			fprintf(stderr, "mailrepd: %s: expected 'key = value'"
			    "\n", where);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if ((s = setting_find(key, strlen(key))) == NULL ||
		    strcmp(key, "config") == 0) {
			fprintf(stderr, "mailrepd: %s: unknown setting '%s'\n",
			    where, key);
			rc = -1;
			break;
		}
		rc = setting_apply(set, s, value, where);
	}
	fclose(f);
	return rc;
}

/* Sets every setting to its default. */
static int
settings_defaults(struct settings *set)
{
	char	 host[256];
	size_t	 i;

	memset(set, 0, sizeof(*set));
	for (i = 0; i < NSETTINGS; i++) {
		if (table[i].type == SET_LONG)
			*(long *)((char *)set + table[i].offset) = table[i].ldef;
		else if (table[i].def != NULL && setting_apply(set, &table[i],
		    table[i].def, "default") < 0)
			return -1;
	}
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	return setting_apply(set, setting_find("name", 4), host, "default");
}

/*
 * Splits "--key=value" or "--key value" at argv[*i]; advances *i past the
 * value.  Returns the value or NULL when it is missing.
 */
static const char *
option_value(int argc, char **argv, int *i, const char **key, size_t *klen)
{
	const char	*arg = argv[*i] + 2, *eq = strchr(arg, '=');

	*key = arg;
	if (eq != NULL) {
		*klen = eq - arg;
		return eq + 1;
	}
	*klen = strlen(arg);
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

int
settings_parse(struct settings *set, int argc, char **argv, int first,
    struct cmd_option *opts, int nopts, char **pos, int *npos)
{
	const struct setting	*s;
	const char		*key, *value;
	char			 where[128];
	size_t			 klen;
	int			 i, j, maxpos = *npos, pass;

	*npos = 0;
	if (settings_defaults(set) < 0)
		return -1;
	/* Pass 0 finds --config, so that every option can override it. */
	for (pass = 0; pass < 2; pass++) {
		for (i = first; i < argc; i++) {
			if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == 0) {
				if (pass == 1 && *npos >= maxpos) {
					fprintf(stderr, "mailrepd: unexpected "
					    "argument '%s'\n", argv[i]);
					return -1;
				}
				if (pass == 1)
					pos[(*npos)++] = argv[i];
				continue;
			}
			for (j = 0; j < nopts; j++)
				if (strncmp(argv[i] + 2, opts[j].name,
				    strlen(opts[j].name)) == 0 &&
				    (argv[i][2 + strlen(opts[j].name)] == 0 ||
				    argv[i][2 + strlen(opts[j].name)] == '='))
					break;
			if (j < nopts && !opts[j].has_value) {
				opts[j].value = "yes";
				continue;
			}
			value = option_value(argc, argv, &i, &key, &klen);
			snprintf(where, sizeof(where), "--%.*s", (int)klen,
			    key);
			if (value == NULL) {
				fprintf(stderr, "mailrepd: %s needs a value\n",
				    where);
				return -1;
			}
			if (j < nopts) {
				opts[j].value = value;
				continue;
			}
			if ((s = setting_find(key, klen)) == NULL) {
				fprintf(stderr, "mailrepd: unknown option %s "
				    "(see mailrepd --help)\n", where);
				return -1;
			}
			if (pass == 0 && s->offset == OFF(config)) {
				if (settings_read_file(set, value) < 0)
					return -1;
			} else if (pass == 1 && s->offset != OFF(config) &&
			    setting_apply(set, s, value, where) < 0)
				return -1;
		}
	}
	return 0;
}

void
settings_free(struct settings *set)
{
	size_t	 i;

	for (i = 0; i < NSETTINGS; i++)
		if (table[i].type == SET_STRING || table[i].type == SET_LIST)
			free(*(char **)((char *)set + table[i].offset));
	memset(set, 0, sizeof(*set));
}

int
settings_read_secret(const char *setting, const char *path, size_t min,
    size_t max, char *line, size_t cap)
{
	struct stat	 sb;
	FILE		*f;
	size_t		 n;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "mailrepd: setting '%s': cannot read '%s': "
		    "%s\n", setting, path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &sb) < 0 || (sb.st_mode & 077) != 0) {
		fprintf(stderr, "mailrepd: setting '%s': '%s' must not be "
		    "readable by group or others (chmod 600)\n", setting,
		    path);
		fclose(f);
		return -1;
	}
	if (fgets(line, (int)cap, f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < min || n > max) {
		explicit_bzero(line, cap);
		fprintf(stderr, "mailrepd: setting '%s': the secret in '%s' "
		    "must be one line of %zu to %zu bytes\n", setting, path,
		    min, max);
		return -1;
	}
	return (int)n;
}

int
settings_check(const struct settings *set, const char **name)
{
	const char	*p;
	long		 v;
	size_t		 i, nwords;

	for (i = 0; i < NSETTINGS; i++) {
		p = (const char *)set + table[i].offset;
		*name = table[i].name;
		switch (table[i].type) {
		case SET_STRING:
		case SET_LIST:
			if (table[i].def != NULL && *(char *const *)p == NULL)
				return -1;
			break;
		case SET_LONG:
			v = *(const long *)p;
			if (v < table[i].min || v > table[i].max)
				return -1;
			break;
		case SET_BOOL:
			if (*(const int *)p != 0 && *(const int *)p != 1)
				return -1;
			break;
		case SET_ENUM:
			for (nwords = 0; table[i].words[nwords] != NULL;
			    nwords++)
				continue;
			if (*(const int *)p < 0 || *(const int *)p >= (int)nwords)
				return -1;
			break;
		}
	}
	*name = NULL;
	return 0;
}

void
settings_print(FILE *f, const struct settings *set)
{
	const char	*p, *v, *lf;
	size_t		 i;

	for (i = 0; i < NSETTINGS; i++) {
		p = (const char *)set + table[i].offset;
		if (table[i].offset == OFF(config))
			continue;
		switch (table[i].type) {
		case SET_STRING:
		case SET_LIST:
			/* A list holds one value a line. */
			for (v = *(char *const *)p; v != NULL;
			    v = lf != NULL ? lf + 1 : NULL) {
				lf = strchr(v, '\n');
				fprintf(f, "%s = %.*s\n", table[i].name,
				    (int)(lf != NULL ? (size_t)(lf - v) :
				    strlen(v)), v);
			}
			break;
		case SET_LONG:
			fprintf(f, "%s = %ld\n", table[i].name,
			    *(const long *)p);
			break;
		case SET_BOOL:
			fprintf(f, "%s = %s\n", table[i].name,
			    *(const int *)p ? "yes" : "no");
			break;
		case SET_ENUM:
			fprintf(f, "%s = %s\n", table[i].name,
			    table[i].words[*(const int *)p]);
			break;
		}
	}
}

/* What a value of each type is, for the documentation. */
static const char *const type_values[] = {
	[SET_STRING] = "text",
	[SET_LONG] = "number",
	[SET_BOOL] = "yes|no",
	[SET_ENUM] = NULL,		/* its words */
	[SET_LIST] = "text",
};

int
settings_doc(size_t i, struct setting_doc *doc)
{
	const struct setting	*s;
	size_t			 w, len;

	if (i >= NSETTINGS)
		return -1;
	s = &table[i];
	memset(doc, 0, sizeof(*doc));
	doc->name = s->name;
	doc->help = s->help;
	if (s->type == SET_ENUM) {
		/* "renumber|keep"; what does not fit is cut. */
		for (w = 0, len = 0; s->words[w] != NULL &&
		    len < sizeof(doc->value); w++)
			len += snprintf(doc->value + len,
			    sizeof(doc->value) - len, "%s%s", w ? "|" : "",
			    s->words[w]);
	} else
		snprintf(doc->value, sizeof(doc->value), "%s",
		    type_values[s->type]);
	if (s->type == SET_LONG) {
		snprintf(doc->def, sizeof(doc->def), "%ld", s->ldef);
		snprintf(doc->range, sizeof(doc->range), "from %ld to %ld",
		    s->min, s->max);
	} else if (s->def != NULL)
		snprintf(doc->def, sizeof(doc->def), "%s", s->def);
	return 0;
}

void
settings_usage(FILE *f)
{
	struct setting_doc	 doc;
	size_t			 i;

	fprintf(f, "Settings (config-file key, or --key VALUE):\n");
	for (i = 0; settings_doc(i, &doc) == 0; i++) {
		fprintf(f, "  --%-18s %s", doc.name, doc.help);
		if (doc.def[0] != '\0')
			fprintf(f, " [%s]", doc.def);
		fprintf(f, "\n");
	}
}

void
settings_usage_options(FILE *f, const struct cmd_option *opts, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		fprintf(f, "  --%-18s %s\n", opts[i].name, opts[i].help);
}
