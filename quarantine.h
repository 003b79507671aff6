/*
 * quarantine.h — `mailrepd quarantine list|show|restore`.
 */
#ifndef MAILREPD_QUARANTINE_H
#define MAILREPD_QUARANTINE_H

/* The command; returns the exit status. */
int	quarantine_main(int argc, char **argv);

#endif /* MAILREPD_QUARANTINE_H */
