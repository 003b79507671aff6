/*
 * admin.h — the command-line tools that work on a store: user
 * management and the integrity check.  Each returns the process's exit
 * status: 0 done, 1 failed, 2 bad usage (after saying why).
 */
#ifndef MAILREPD_ADMIN_H
#define MAILREPD_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct cmd_option;
struct settings;
struct store;

int	admin_user(int argc, char **argv);
int	admin_check(int argc, char **argv);

/*
 * Opens the store named by --data for a tool.  Unless `create`, a data
 * directory without a store is an error (a typo must not make an empty
 * store).  Returns NULL after printing why.
 */
struct store *admin_open_store(const struct settings *, int create);

/*
 * A store tool driven by words after its name (`mailrepd conflicts show
 * 3`): what `conflicts` and `quarantine` share.  The last option must
 * be --help.  `run` gets the store and the words and returns an exit
 * status; EXIT_USAGE makes admin_tool_main() print the usage.
 */
#define ADMIN_TOOL_MAX_WORDS	2
struct admin_tool {
	const char		*usage;	/* synopsis and purpose, "\n\n"-ended */
	struct cmd_option	*opts;
	int			 nopts;
	int			(*run)(struct store *, char **words, int nwords,
				    const struct cmd_option *opts);
};
int	admin_tool_main(const struct admin_tool *, int argc, char **argv);

/* A time (seconds since the epoch) as UTC ISO 8601, "2026-12-02T07:15:00Z". */
#define ADMIN_UTC_LEN	32
void	admin_utc(int64_t t, char out[ADMIN_UTC_LEN]);

/* One header field of a stored header block, unfolded, or "". */
struct store_meta;
void	admin_header_field(const struct store_meta *, const char *name,
	    char *out, size_t cap);
/* Writes a stored message's bytes to standard output: 0, or 1 (said). */
int	admin_write_blob(struct store *, const uint8_t *guid);

#endif /* MAILREPD_ADMIN_H */
