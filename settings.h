/*
 * settings.h — the run-time settings of mailrepd.
 *
 * Every setting has one name, used as a config-file key ("key = value")
 * and as a long option ("--key value" or "--key=value"); the option wins.
 * One table in settings.c lists them all, with defaults from config.h;
 * parsing, validation errors and --help come from that table.
 */
#ifndef MAILREPD_SETTINGS_H
#define MAILREPD_SETTINGS_H

#include <stdio.h>

struct settings {
	char	*config;		/* --config FILE, or NULL */
	char	*data_dir;		/* --data */
	char	*lmtp;			/* --lmtp listeners, comma separated */
	char	*imap;			/* --imap listeners, comma separated */
	char	*smtp;			/* --smtp listeners, comma separated */
	char	*name;			/* --name, default: host name */
	char	*domains;		/* --domains accepted, NULL: any */
	char	*imaps;			/* --imaps listeners (implicit TLS) */
	char	*http;			/* --http listeners */
	char	*http_admin_token_file;	/* --http-admin-token-file */
	char	*tls_cert;		/* --tls-cert PEM file, NULL: generated */
	char	*tls_key;		/* --tls-key PEM file */
	int	 allow_plaintext_auth;	/* log in without TLS from anywhere */
	int	 imap_literal_minus;	/* LITERAL-, not LITERAL+ */
	long	 tls_handshake_timeout;	/* seconds */
	long	 max_tls_handshakes;	/* per kind of listener, at once */
	long	 max_tls_sessions;	/* client sessions with TLS */
	long	 max_compress_sessions;	/* IMAP sessions with COMPRESS */
	long	 max_connections;
	long	 max_per_address;	/* connections of one non-local
					   address, per pool */
	long	 idle_timeout;		/* seconds */
	long	 prelogin_timeout;	/* seconds */
	long	 max_mailboxes;		/* per user, made by IMAP */
	long	 max_message_size;	/* bytes */
	long	 max_messages;		/* in one mailbox */
	long	 quota_storage;		/* bytes per user; 0: no limit */
	long	 quota_messages;	/* messages per user; 0: no limit */
	int	 quota_lmtp_temporary;	/* over quota: 452, not 552 */
	int	 search_index;		/* keep and use SEARCH's index */
	long	 disk_reserve;		/* bytes kept for freeing space */
	char	*repl_listen;		/* --repl-listen: accept replicas */
	char	*replicate_from;	/* --replicate-from HOST:PORT */
	char	*repl_secret_file;	/* --repl-secret-file */
	char	*conflict_notify;	/* --conflict-notify CMD */
	int	 conflict_policy;	/* CONFLICT_POLICY_* */
	long	 repl_log_retention;	/* seconds a log record is kept */
	long	 repl_sync_timeout;	/* ms a reply waits for a replica;
					   0: asynchronous */
	long	 repl_handshake_timeout; /* seconds to HELLO and START */
	long	 repl_ping_interval;	/* seconds between keep-alives */
	long	 repl_dead_after;	/* seconds of silence: peer dropped */
	long	 guard_max_mailbox_deletes; /* mass-delete guard */
	long	 guard_max_expunge_percent;
	long	 guard_window;		/* seconds */
	long	 quarantine_days;
	long	 tombstone_retention;	/* seconds a tombstone is kept */
	long	 conflict_retention;	/* seconds a resolved conflict is kept */
	long	 drain_timeout;		/* seconds, SIGQUIT drain bound */
	char	*shutdown_command;	/* commands, one a line, or NULL */
	int	 syslog;		/* log to syslog instead of stderr */
	int	 catch_all;		/* make a user for any recipient */
	int	 log_level;		/* enum log_level */
	char	*run_as_user;		/* started as root: become this user */
	char	*unix_socket_owner;	/* of unix:PATH listeners, or NULL */
	char	*unix_socket_group;
	char	*unix_socket_mode;	/* octal, as text */
};

/*
 * A sub-command's own option (not a setting): --name [value].  After
 * settings_parse() `value` is what was given, or NULL; a flag without a
 * value is set to "yes".
 */
struct cmd_option {
	const char	*name;
	int		 has_value;
	const char	*help;
	const char	*value;
};

/*
 * Fills *set from defaults, then --config FILE, then the options in
 * argv[first..argc).  Sub-command options go to opts[0..nopts); other
 * words are collected, in order, into pos[0..*npos) (at most *npos).
 * On an error it prints a message naming the setting or word at fault to
 * stderr and returns -1 (the caller exits with status 2).  Strings in
 * *set are allocated and live until settings_free().
 */
int	settings_parse(struct settings *set, int argc, char **argv, int first,
	    struct cmd_option *opts, int nopts, char **pos, int *npos);

void	settings_free(struct settings *);

/*
 * Whether *set holds only values the table allows: numbers within their
 * bounds, booleans 0 or 1, enums one of their words, strings with a
 * default set.  For the fuzzer and the tests; settings_parse() keeps it
 * true.  Returns 0, or -1 naming the first setting out of bounds in
 * *name.
 */
int	settings_check(const struct settings *set, const char **name);

/*
 * Prints the settings in *set that have a value as config-file lines, in
 * table order (a list a line per value; never 'config').  Read back, the
 * lines give the same settings, as long as no value holds '#' or begins
 * or ends with white space, which a config file cannot say.
 */
void	settings_print(FILE *, const struct settings *set);

/* Prints every setting with its default and meaning. */
void	settings_usage(FILE *);

/*
 * One setting as its documentation shows it: --help, the README's table,
 * the man page and the example config are all made from these.
 */
struct setting_doc {
	const char	*name;
	char		 value[64];	/* what it takes: "text", "yes|no"... */
	char		 def[32];	/* its default as text, or "" */
	char		 range[48];	/* "from 1 to 600" for numbers, or "" */
	const char	*help;
};

/*
 * Describes the i-th setting of the table (from 0) into *doc.  Returns 0,
 * or -1 when i is past the last.
 */
int	settings_doc(size_t i, struct setting_doc *doc);

/*
 * Reads a secret file of setting `setting` (a secret, the admin token):
 * its first line, without the line ending, into line (cap bytes).  The
 * file must not be readable by group or others, and the line must be
 * min to max bytes (max < cap).  Returns its length, or -1 after saying
 * on stderr which setting and what is wrong.
 */
int	settings_read_secret(const char *setting, const char *path,
	    size_t min, size_t max, char *line, size_t cap);

/* Prints a sub-command's own options. */
void	settings_usage_options(FILE *, const struct cmd_option *, int);

/* conflict-policy, in the order of its words in settings.c. */
#define CONFLICT_POLICY_RENUMBER	0
#define CONFLICT_POLICY_KEEP		1

#endif /* MAILREPD_SETTINGS_H */
