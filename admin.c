/*
 * admin.c — `mailrepd user ...` and `mailrepd check`.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "settings.h"
#include "store.h"

void
admin_utc(int64_t t, char out[ADMIN_UTC_LEN])
{
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, ADMIN_UTC_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, ADMIN_UTC_LEN, "%lld", (long long)t);
}

struct store *
admin_open_store(const struct settings *set, int create)
{
	struct store	*st;
	struct stat	 sb;
	char		 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/mailrepd.db", set->data_dir);
	if (!create && stat(path, &sb) < 0) {
		fprintf(stderr, "mailrepd: setting 'data': no store in '%s' "
		    "(%s)\n", set->data_dir, strerror(errno));
		return NULL;
	}
	if (store_open(set->data_dir, &st) != STORE_OK) {
		fprintf(stderr, "mailrepd: setting 'data': cannot open the "
		    "store in '%s'\n", set->data_dir);
		return NULL;
	}
	return st;
}

/* The tool's synopsis and its options, on `f`. */
static void
admin_tool_usage(FILE *f, const struct admin_tool *t)
{
	fputs(t->usage, f);
	settings_usage_options(f, t->opts, t->nopts);
}

/*
 * Parses the tool's command line, answers --help, opens the store the
 * tool needs (never creating one) and runs it.  Returns its exit status.
 */
int
admin_tool_main(const struct admin_tool *t, int argc, char **argv)
{
	struct settings	 set;
	struct store	*st;
	char		*words[ADMIN_TOOL_MAX_WORDS];
	int		 nwords = ADMIN_TOOL_MAX_WORDS, rc;

	rc = EXIT_USAGE;
	if (settings_parse(&set, argc, argv, 2, t->opts, t->nopts, words,
	    &nwords) == 0) {
		if (t->opts[t->nopts - 1].value != NULL) {
			admin_tool_usage(stdout, t);
			rc = 0;
		} else if ((st = admin_open_store(&set, 0)) != NULL) {
			rc = t->run(st, words, nwords, t->opts);
			if (rc == EXIT_USAGE)
				admin_tool_usage(stderr, t);
			store_close(st);
		}
	}
	settings_free(&set);
	return rc;
}

/*
 * Reads a password: the first line of --password-file, else of standard
 * input (without echo when that is a terminal).  Never from argv, where
 * every user of the machine could read it.  Returns malloc'd or NULL.
 */
static char *
read_password(const char *file)
{
	struct termios	 old, quiet;
	char		 line[PASSWORD_MAX + 2];
	FILE		*f = stdin;
	int		 tty = 0;
	size_t		 n;

	if (file != NULL && (f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "mailrepd: --password-file: cannot read "
		    "'%s': %s\n", file, strerror(errno));
		return NULL;
	}
	if (file == NULL && isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~ECHO;
		tty = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		fprintf(stderr, "Password: ");
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (f != stdin)
		fclose(f);
	n = strcspn(line, "\r\n");
	if (n > PASSWORD_MAX || (line[n] == '\0' && n == PASSWORD_MAX + 1)) {
		fprintf(stderr, "mailrepd: password longer than %d bytes\n",
		    PASSWORD_MAX);
		return NULL;
	}
	line[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "mailrepd: empty password (give it on the "
		    "first line of standard input or --password-file)\n");
		return NULL;
	}
	return strdup(line);
}

static int
print_user(void *arg, const char *name, int64_t created)
{
	char		 when[ADMIN_UTC_LEN];

	(void)arg;
	admin_utc(created, when);
	printf("%s\t%s\n", name, when);
	return 0;
}

static void
user_usage(FILE *f, struct cmd_option *opts, int n)
{
	fprintf(f, "usage: mailrepd user add|del|passwd NAME --data DIR\n"
	    "       mailrepd user list --data DIR\n"
	    "The password is read from the first line of standard input, "
	    "or from\n--password-file FILE; never from the command line.\n"
	    "Options:\n");
	settings_usage_options(f, opts, n);
}

/*
 * Hashes the password of `user add` or `user passwd` (read from pwfile or
 * standard input) into *hash.  Returns 0, or EXIT_USAGE after saying why.
 */
static int
user_password_hash(const char *pwfile, char **hash)
{
	char	*pw;

	if ((pw = read_password(pwfile)) == NULL)
		return EXIT_USAGE;
	*hash = crypto_password_hash(pw);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (*hash == NULL) {
		fprintf(stderr, "mailrepd: cannot hash password\n");
		return EXIT_FAILED;
	}
	return 0;
}

/*
 * Runs add, del or passwd for one user, with the password's hash for
 * add and passwd; returns the exit status.
 */
static int
user_change(struct store *st, const char *verb, const char *name,
    const char *hash)
{
	enum store_err	 err;

	(void)store_set_reason(st, REASON_OPERATOR);
	if (strcmp(verb, "add") == 0)
		err = store_user_add(st, name, hash);
	else if (strcmp(verb, "passwd") == 0)
		err = store_user_set_password(st, name, hash);
	else
		err = store_user_del(st, name);
	if (err == STORE_OK)
		err = store_commit(st);
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: user %s '%s': %s\n", verb, name,
		    store_strerror(err));
		return EXIT_FAILED;
	}
	return 0;
}

/*
 * `user add|del|passwd NAME`: the name and the password are checked
 * before the store is opened (or, for add, created), so that a wrong
 * command line changes nothing.
 */
static int
user_verb(const struct settings *set, const char *verb, const char *name,
    const char *pwfile)
{
	struct store	*st;
	char		*hash = NULL;
	int		 rc;

	if (!store_user_name_valid(name)) {
		fprintf(stderr, "mailrepd: user %s '%s': invalid user name "
		    "(1-%d bytes: printable ASCII other than @ + / \\ \" and "
		    "space, or UTF-8)\n", verb, name, USER_MAX_NAME);
		return EXIT_USAGE;
	}
	if (strcmp(verb, "del") != 0 &&
	    (rc = user_password_hash(pwfile, &hash)) != 0)
		return rc;
	if ((st = admin_open_store(set, strcmp(verb, "add") == 0)) == NULL)
		rc = EXIT_USAGE;
	else {
		rc = user_change(st, verb, name, hash);
		store_close(st);
	}
	free(hash);
	return rc;
}

int
admin_user(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "password-file", 1, "read the password from FILE", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings	 set;
	struct store	*st;
	char		*pos[3];
	int		 npos = 3, rc = EXIT_USAGE;

	if (settings_parse(&set, argc, argv, 2, opts, 2, pos, &npos) < 0) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	if (opts[1].value != NULL) {
		user_usage(stdout, opts, 2);
		settings_free(&set);
		return 0;
	}
	if (npos == 1 && strcmp(pos[0], "list") == 0) {
		if ((st = admin_open_store(&set, 0)) != NULL) {
			rc = store_user_foreach(st, print_user, NULL) ==
			    STORE_OK ? 0 : EXIT_FAILED;
			store_close(st);
		}
	} else if (npos == 2 && (strcmp(pos[0], "add") == 0 ||
	    strcmp(pos[0], "del") == 0 || strcmp(pos[0], "passwd") == 0))
		rc = user_verb(&set, pos[0], pos[1], opts[0].value);
	else
		user_usage(stderr, opts, 2);
	settings_free(&set);
	return rc;
}

static void
print_problem(void *arg, const char *problem)
{
	(void)arg;
	printf("problem: %s\n", problem);
}

int
admin_check(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	struct settings	 set;
	struct store	*st;
	uint64_t	 blobs, problems;
	int		 npos = 0, rc;

	if (settings_parse(&set, argc, argv, 2, opts, 1, NULL, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[0].value != NULL) {
		printf("usage: mailrepd check --data DIR\n"
		    "Checks the database and re-hashes every message against "
		    "its GUID.\nWorks on a stopped store, also after a crash; "
		    "exits 1 when it finds a problem.\n");
		settings_free(&set);
		return 0;
	}
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	if (store_check(st, print_problem, NULL, &blobs, &problems) !=
	    STORE_OK) {
		fprintf(stderr, "mailrepd: check could not run\n");
		rc = 1;
	} else {
		printf("%s: %" PRIu64 " messages re-hashed, %" PRIu64
		    " problems\n", problems ? "FAILED" : "ok", blobs, problems);
		rc = problems ? 1 : 0;
	}
	store_close(st);
	settings_free(&set);
	return rc;
}

/* One header field of a stored header block, unfolded, or "". */
void
admin_header_field(const struct store_meta *m, const char *name, char *out,
    size_t cap)
{
	const char	*p = m->header, *end = m->header + m->header_len;
	size_t		 n = strlen(name), o = 0;

	out[0] = '\0';
	while (p != NULL && p < end) {
		if ((size_t)(end - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':') {
			for (p += n + 1; p < end && o + 1 < cap; p++) {
				if (*p == '\r' || *p == '\n') {
					if (p + 1 < end && p[1] != ' ' &&
					    p[1] != '\t' && *p == '\n')
						break;
					continue;
				}
				if (o > 0 || (*p != ' ' && *p != '\t'))
					out[o++] = *p;
			}
			out[o] = '\0';
			return;
		}
		if ((p = memchr(p, '\n', (size_t)(end - p))) != NULL)
			p++;
	}
}

int
admin_write_blob(struct store *st, const uint8_t *guid)
{
	struct store_blob_reader	*r;
	uint64_t			 size, off = 0;
	char				 buf[BLOB_CHUNK_SIZE];
	ssize_t				 n;

	if (store_blob_open(st, guid, &r, &size) != STORE_OK) {
		fprintf(stderr, "mailrepd: that message is not stored on "
		    "this node\n");
		return 1;
	}
	while ((n = store_blob_read(r, off, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		off += (uint64_t)n;
	}
	store_blob_close(r);
	return n < 0 || off != size;
}
