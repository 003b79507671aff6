/*
 * backup.h — `mailrepd backup` and `mailrepd restore`.
 */
#ifndef MAILREPD_BACKUP_H
#define MAILREPD_BACKUP_H

/* The commands; each returns the exit status. */
int	backup_main(int argc, char **argv);
int	restore_main(int argc, char **argv);

#endif /* MAILREPD_BACKUP_H */
