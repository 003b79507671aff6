/*
 * dev.h — `mailrepd dev`: a throw-away server for development and CI.
 *
 * mailrepd.c runs dev like serve, with these hooks around it: dev_setup()
 * parses the command line and picks the data directory and listeners,
 * dev_store() makes the ready user, dev_listener() learns each bound
 * port, dev_ready() prints how to connect once every port accepts, and
 * dev_finish() removes the temporary data directory.
 */
#ifndef MAILREPD_DEV_H
#define MAILREPD_DEV_H

struct dev;
struct settings;
struct store;

/*
 * Fills *set for dev mode from argv[2...]: a temporary data directory
 * under $TMPDIR unless --data, loopback listeners on the fixed ports (or
 * free ones with --ports auto) unless given.  Returns 0 and *out (free
 * it with dev_finish()) when the server should run, 1 after --help, -1
 * after saying what is wrong.  *set needs settings_free() in every case.
 */
int	dev_setup(struct settings *set, int argc, char **argv,
	    struct dev **out);

/* Makes the ready user (without a password) when missing.  0 or -1. */
int	dev_store(struct dev *, struct store *);

/* Tells dev about one open listener of protocol `proto` ("smtp"...). */
void	dev_listener(struct dev *, const char *proto, int fd);

/* Prints the how-to-connect block, and the JSON line with --json. */
void	dev_ready(struct dev *);

/* Removes the temporary data directory unless --keep; frees dev. */
void	dev_finish(struct dev *);

#endif /* MAILREPD_DEV_H */
