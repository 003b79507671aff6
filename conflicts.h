/*
 * conflicts.h — `mailrepd conflicts list|show|resolve`.
 */
#ifndef MAILREPD_CONFLICTS_H
#define MAILREPD_CONFLICTS_H

/* The command; returns the exit status. */
int	conflicts_main(int argc, char **argv);

#endif /* MAILREPD_CONFLICTS_H */
