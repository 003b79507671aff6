/*
 * mailio.c — import from Maildir or mbox, export to Maildir.
 *
 * Maildir trees use the Maildir++ layout that Dovecot, Courier and mbsync
 * read: INBOX in the root, mailbox "a/b" in ".a.b".  Flags travel in the
 * file name (":2,DFRST"), the internal date as the file's mtime.  The
 * store keeps messages with CRLF line ends, as IMAP sends them; imported
 * LF-only files are re-ended with CRLF, and export writes what is stored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "mailio.h"
#include "settings.h"
#include "spool.h"
#include "store.h"

#define IMPORT_COMMIT_EVERY	200	/* messages per transaction */

/* Maildir info letters and the flags they stand for, in sorted order. */
static const struct {
	char		letter;
	uint32_t	flag;
} maildir_flags[] = {
	{ 'D', FLAG_DRAFT },
	{ 'F', FLAG_FLAGGED },
	{ 'R', FLAG_ANSWERED },
	{ 'S', FLAG_SEEN },
	{ 'T', FLAG_DELETED },
};

#define NMAILDIR_FLAGS	(sizeof(maildir_flags) / sizeof(maildir_flags[0]))

/* State of one import run. */
struct importer {
	struct store	*st;
	const char	*data_dir;
	const char	*user;
	unsigned long	 imported, failed, pending;
};

/*
 * Feeds one line (with or without its LF) to the spool, ending it with
 * CRLF.
 */
static void
spool_line_crlf(struct spool *sp, const char *line, size_t len)
{
	size_t	 text = len;

	if (text > 0 && line[text - 1] == '\n')
		text -= text > 1 && line[text - 2] == '\r' ? 2 : 1;
	spool_add_bytes(sp, line, text);
	if (len > 0)
		spool_add_bytes(sp, "\r\n", 2);
}

/* Makes sure `mailbox` exists for the user. */
static int
ensure_mailbox(struct importer *im, const char *mailbox)
{
	struct store_mailbox	 mb;
	enum store_err		 err;

	if (store_mailbox_get(im->st, im->user, mailbox, &mb) == STORE_OK)
		return 0;
	/* Imported mailboxes are subscribed, so that every client shows them. */
	err = store_mailbox_create(im->st, im->user, mailbox, NULL, NULL);
	if (err == STORE_OK)
		err = store_mailbox_subscribe(im->st, im->user, mailbox, 1);
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot create mailbox '%s': %s\n",
		    mailbox, store_strerror(err));
		return -1;
	}
	return 0;
}

/* Stores a finished spool as one message; commits every so often. */
static int
import_spool(struct importer *im, struct spool *sp, const char *mailbox,
    uint32_t flags, int64_t internaldate)
{
	struct store_blob_in	 blob;
	struct store_target	 t = { 0 };
	enum store_err		 err;

	if (spool_finish(sp, &blob) < 0) {
		fprintf(stderr, "mailrepd: spool: %s\n", strerror(errno));
		im->failed++;
		return -1;
	}
	t.user = im->user;
	t.mailbox = mailbox;
	t.flags = flags;
	t.internaldate = internaldate;
	err = store_deliver(im->st, &blob, &t, 1);
	if (err == STORE_OK)
		err = t.result;
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: storing into '%s' failed: %s\n",
		    mailbox, store_strerror(err));
		im->failed++;
		return -1;
	}
	im->imported++;
	if (++im->pending >= IMPORT_COMMIT_EVERY) {
		im->pending = 0;
		if (store_commit(im->st) != STORE_OK)
			return -1;
	}
	return 0;
}

/* Reads the flags from a Maildir file name's ":2," info. */
static uint32_t
maildir_name_flags(const char *name)
{
	const char	*info = strstr(name, ":2,");
	uint32_t	 flags = 0;
	size_t		 i;

	if (info == NULL)
		return 0;
	for (info += 3; *info != '\0'; info++)
		for (i = 0; i < NMAILDIR_FLAGS; i++)
			if (*info == maildir_flags[i].letter)
				flags |= maildir_flags[i].flag;
	return flags;
}

/* Imports one Maildir file. */
static int
import_maildir_file(struct importer *im, const char *path,
    const char *mailbox, uint32_t flags)
{
	struct spool	*sp;
	struct stat	 sb;
	FILE		*f;
	char		*line = NULL;
	size_t		 cap = 0;
	ssize_t		 n;
	int		 rc;

	if ((f = fopen(path, "r")) == NULL || fstat(fileno(f), &sb) < 0) {
		fprintf(stderr, "mailrepd: %s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		im->failed++;
		return -1;
	}
	if ((sp = spool_new(im->data_dir)) == NULL) {
		fclose(f);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		spool_line_crlf(sp, line, n);
	}
	free(line);
	fclose(f);
	rc = import_spool(im, sp, mailbox, flags, sb.st_mtime);
	spool_free(sp);
	return rc;
}

/* Imports cur/ and new/ of one Maildir into `mailbox`. */
static int
import_maildir_folder(struct importer *im, const char *dir,
    const char *mailbox)
{
	static const char *const subdirs[] = { "new", "cur" };
	struct dirent	*de;
	DIR		*d;
	char		 path[PATH_MAX];
	size_t		 i;

	if (ensure_mailbox(im, mailbox) < 0)
		return -1;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s", dir,
			    subdirs[i], de->d_name);
			import_maildir_file(im, path, mailbox,
			    i == 1 ? maildir_name_flags(de->d_name) : 0);
		}
		closedir(d);
	}
	return 0;
}

/*
 * Imports a Maildir++ tree: the root into `mailbox` (INBOX by default)
 * and each ".a.b" folder into "a/b".
 */
static int
import_maildir(struct importer *im, const char *root, const char *mailbox)
{
	struct dirent	*de;
	DIR		*d;
	char		 path[PATH_MAX], name[MAILBOX_MAX_NAME + 1], *p;

	if ((d = opendir(root)) == NULL) {
		fprintf(stderr, "mailrepd: --maildir: cannot read '%s': %s\n",
		    root, strerror(errno));
		return -1;
	}
	import_maildir_folder(im, root, mailbox);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/cur", root, de->d_name);
		if (access(path, F_OK) != 0)
			continue;
		snprintf(name, sizeof(name), "%s", de->d_name + 1);
		for (p = name; *p != '\0'; p++)
			if (*p == '.')
				*p = '/';
		snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		import_maildir_folder(im, path, name);
	}
	closedir(d);
	return 0;
}

/* Parses the date of an mbox "From sender DATE" line; -1 if none. */
static int64_t
mbox_from_date(const char *line)
{
	const char	*p = line + 5;
	struct tm	 tm;

	p += strcspn(p, " ");
	while (*p == ' ')
		p++;
	memset(&tm, 0, sizeof(tm));
	if (strptime(p, "%a %b %d %H:%M:%S %Y", &tm) == NULL)
		return -1;
	return (int64_t)timegm(&tm);
}

/* Flags from an mbox message's Status: and X-Status: header lines. */
static uint32_t
mbox_status_flags(const char *line, uint32_t flags)
{
	const char	*p;

	if (strncasecmp(line, "Status:", 7) == 0) {
		for (p = line + 7; *p != '\0' && *p != '\n'; p++)
			if (*p == 'R')
				flags |= FLAG_SEEN;
	} else if (strncasecmp(line, "X-Status:", 9) == 0) {
		for (p = line + 9; *p != '\0' && *p != '\n'; p++)
			flags |= *p == 'A' ? FLAG_ANSWERED : *p == 'F' ?
			    FLAG_FLAGGED : *p == 'T' ? FLAG_DRAFT : *p == 'D' ?
			    FLAG_DELETED : 0;
	}
	return flags;
}

/*
 * Imports an mbox file (mboxrd: one '>' is removed from ">From " lines,
 * however many there are).  The blank line before each "From " line is
 * the separator's, not the message's.
 */
static int
import_mbox(struct importer *im, const char *file, const char *mailbox)
{
	struct spool	*sp = NULL;
	FILE		*f;
	char		*line = NULL;
	size_t		 cap = 0, quoted;
	ssize_t		 n;
	int64_t		 date = 0;
	uint32_t	 flags = 0;
	int		 blank_held = 0, in_header = 0;

	if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "mailrepd: --mbox: cannot read '%s': %s\n",
		    file, strerror(errno));
		return -1;
	}
	if (ensure_mailbox(im, mailbox) < 0) {
		fclose(f);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		if (strncmp(line, "From ", 5) == 0) {
			if (sp != NULL) {
				import_spool(im, sp, mailbox, flags, date);
				spool_free(sp);
			}
			if ((sp = spool_new(im->data_dir)) == NULL)
				break;
			date = mbox_from_date(line);
			if (date < 0)
				date = time(NULL);
			flags = 0;
			blank_held = 0;
			in_header = 1;
			continue;
		}
		if (sp == NULL)
			continue;	/* text before the first From_ line */
		if (blank_held) {
			spool_add_bytes(sp, "\r\n", 2);
			blank_held = 0;
		}
		if (strcmp(line, "\n") == 0 || strcmp(line, "\r\n") == 0) {
			blank_held = 1;
			in_header = 0;
			continue;
		}
		if (in_header)
			flags = mbox_status_flags(line, flags);
		quoted = strspn(line, ">");
		if (quoted > 0 && strncmp(line + quoted, "From ", 5) == 0)
			spool_line_crlf(sp, line + 1, n - 1);
		else
			spool_line_crlf(sp, line, n);
	}
	if (sp != NULL) {
		import_spool(im, sp, mailbox, flags, date);
		spool_free(sp);
	}
	free(line);
	fclose(f);
	return 0;
}

static void
import_usage(FILE *f, struct cmd_option *opts, int n)
{
	fprintf(f, "usage: mailrepd import USER --maildir DIR --data DIR\n"
	    "       mailrepd import USER --mbox FILE --data DIR\n"
	    "Maildir++ folders become mailboxes (\".a.b\" -> \"a/b\"); flags "
	    "and\ninternal dates are kept.  Options:\n");
	settings_usage_options(f, opts, n);
}

int
mailio_import(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "maildir", 1, "import this Maildir++ tree", NULL },
		{ "mbox", 1, "import this mbox file", NULL },
		{ "mailbox", 1, "target mailbox for the root or mbox [INBOX]",
		    NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct importer		 im = { 0 };
	char			*pos[1];
	char			 canon[USER_MAX_NAME + 1];
	const char		*mailbox;
	int			 npos = 1, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 4, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[3].value != NULL) {
		import_usage(stdout, opts, 4);
		settings_free(&set);
		return 0;
	}
	if (npos != 1 || (opts[0].value == NULL) == (opts[1].value == NULL)) {
		import_usage(stderr, opts, 4);
		settings_free(&set);
		return 2;
	}
	mailbox = opts[2].value ? opts[2].value : "INBOX";
	if ((im.st = admin_open_store(&set, 0)) == NULL) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (store_user_find(im.st, pos[0], canon) != STORE_OK) {
		fprintf(stderr, "mailrepd: import: no user '%s'\n", pos[0]);
		goto out;
	}
	im.user = canon;
	im.data_dir = set.data_dir;
	if (opts[0].value != NULL)
		rc = import_maildir(&im, opts[0].value, mailbox);
	else
		rc = import_mbox(&im, opts[1].value, mailbox);
	if (store_commit(im.st) != STORE_OK)
		rc = -1;
	printf("imported %lu messages, %lu failed\n", im.imported, im.failed);
	rc = rc < 0 || im.failed > 0 ? 1 : 0;
out:
	store_close(im.st);
	settings_free(&set);
	return rc;
}

/* State of one export run. */
struct exporter {
	struct store	*st;
	const char	*dir;		/* the Maildir being written */
	uint8_t		*buf;
	unsigned long	 exported;
	int		 failed;
};

/* Creates dir and its cur, new and tmp. */
static int
maildir_make(const char *dir)
{
	static const char *const subdirs[] = { "", "/cur", "/new", "/tmp" };
	char	 path[PATH_MAX];
	size_t	 i;

	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s%s", dir, subdirs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "mailrepd: --maildir: cannot create "
			    "'%s': %s\n", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Copies one blob into fd; returns 0 or -1. */
static int
export_copy(struct exporter *ex, const uint8_t *guid, int fd)
{
	struct store_blob_reader	*r;
	uint64_t			 off = 0;
	ssize_t				 n, w;
	size_t				 done;

	if (store_blob_open(ex->st, guid, &r, NULL) != STORE_OK)
		return -1;
	while ((n = store_blob_read(r, off, ex->buf, BLOB_CHUNK_SIZE)) > 0) {
		for (done = 0; done < (size_t)n; done += w)
			if ((w = write(fd, ex->buf + done, n - done)) < 0) {
				store_blob_close(r);
				return -1;
			}
		off += n;
	}
	store_blob_close(r);
	return n < 0 ? -1 : 0;
}

/*
 * Writes one message as DIR/cur/NAME:2,FLAGS through tmp/, synced, with
 * the internal date as its mtime.
 */
static int
export_message(void *arg, const struct store_message *m)
{
	struct exporter	*ex = arg;
	char		 info[NMAILDIR_FLAGS + 1], tmp[PATH_MAX], dst[PATH_MAX];
	char		 hex[GUID_HEX_LEN + 1];
	struct timespec	 times[2];
	size_t		 i, n = 0;
	int		 fd;

	for (i = 0; i < NMAILDIR_FLAGS; i++)
		if (m->flags & maildir_flags[i].flag)
			info[n++] = maildir_flags[i].letter;
	info[n] = '\0';
	crypto_hex(m->guid, GUID_LEN, hex);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%lld.U%u.%.16s", ex->dir,
	    (long long)m->internaldate, m->uid, hex);
	snprintf(dst, sizeof(dst), "%s/cur/%lld.U%u.%.16s:2,%s", ex->dir,
	    (long long)m->internaldate, m->uid, hex, info);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0 || export_copy(ex, m->guid, fd) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "mailrepd: export uid %u: %s\n", m->uid,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		ex->failed = 1;
		return 1;
	}
	times[0].tv_sec = times[1].tv_sec = (time_t)m->internaldate;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	futimens(fd, times);
	close(fd);
	if (rename(tmp, dst) < 0) {
		fprintf(stderr, "mailrepd: export: %s\n", strerror(errno));
		ex->failed = 1;
		return 1;
	}
	ex->exported++;
	return 0;
}

/* Exports one mailbox into the Maildir `dir`. */
static int
export_mailbox(struct exporter *ex, const struct store_mailbox *mb,
    const char *dir)
{
	if (maildir_make(dir) < 0)
		return -1;
	ex->dir = dir;
	if (store_message_foreach(ex->st, mb->id, export_message, ex) !=
	    STORE_OK)
		ex->failed = 1;
	return ex->failed ? -1 : 0;
}

struct export_all {
	struct exporter	*ex;
	const char	*root;
};

/* Exports a mailbox of a whole-account export to its Maildir++ place. */
static int
export_each(void *arg, const struct store_mailbox *mb)
{
	struct export_all	*all = arg;
	char			 dir[PATH_MAX], *p;
	size_t			 n;

	if (strcmp(mb->name, "INBOX") == 0)
		return export_mailbox(all->ex, mb, all->root) < 0;
	n = (size_t)snprintf(dir, sizeof(dir), "%s/.", all->root);
	snprintf(dir + n, sizeof(dir) - n, "%s", mb->name);
	for (p = dir + n; *p != '\0'; p++)
		if (*p == '/')
			*p = '.';
	return export_mailbox(all->ex, mb, dir) < 0;
}

/*
 * Walks the mailboxes first, then exports each: a store walk must not
 * run inside another (store_message_foreach's rule).
 */
static int
collect_mailbox(void *arg, const struct store_mailbox *mb)
{
	struct {
		struct store_mailbox	*v;
		size_t			 n;
	} *list = arg;
	struct store_mailbox *grown;

	grown = reallocarray(list->v, list->n + 1, sizeof(*list->v));
	if (grown == NULL)
		return 1;
	list->v = grown;
	list->v[list->n++] = *mb;
	return 0;
}

int
mailio_export(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "maildir", 1, "write a Maildir (++ tree without MAILBOX)",
		    NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct exporter		 ex = { 0 };
	struct export_all	 all;
	struct store_mailbox	 mb;
	struct {
		struct store_mailbox	*v;
		size_t			 n;
	} list = { NULL, 0 };
	char			*pos[2], canon[USER_MAX_NAME + 1];
	int			 npos = 2, rc = 1;
	size_t			 i;

	if (settings_parse(&set, argc, argv, 2, opts, 2, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[1].value != NULL || npos < 1 || opts[0].value == NULL) {
		fprintf(opts[1].value ? stdout : stderr, "usage: mailrepd "
		    "export USER [MAILBOX] --maildir DIR --data DIR\n"
		    "Without MAILBOX the whole account is written as a "
		    "Maildir++ tree.\n");
		settings_free(&set);
		return opts[1].value ? 0 : 2;
	}
	if ((ex.st = admin_open_store(&set, 0)) == NULL) {
		rc = EXIT_USAGE;
		goto out;
	}
	if ((ex.buf = malloc(BLOB_CHUNK_SIZE)) == NULL)
		goto out;
	if (store_user_find(ex.st, pos[0], canon) != STORE_OK) {
		fprintf(stderr, "mailrepd: export: no user '%s'\n", pos[0]);
		goto out;
	}
	if (npos == 2) {
		if (store_mailbox_get(ex.st, canon, pos[1], &mb) != STORE_OK) {
			fprintf(stderr, "mailrepd: export: user '%s' has no "
			    "mailbox '%s'\n", canon, pos[1]);
			goto out;
		}
		rc = export_mailbox(&ex, &mb, opts[0].value) < 0;
	} else {
		if (maildir_make(opts[0].value) < 0 ||
		    store_mailbox_foreach(ex.st, canon, collect_mailbox,
		    &list) != STORE_OK)
			goto out;
		all.ex = &ex;
		all.root = opts[0].value;
		for (i = 0; i < list.n; i++)
			if (export_each(&all, &list.v[i]) != 0)
				break;
		rc = ex.failed;
	}
	printf("exported %lu messages\n", ex.exported);
out:
	free(list.v);
	free(ex.buf);
	store_close(ex.st);
	settings_free(&set);
	return rc;
}
