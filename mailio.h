/*
 * mailio.h — moving mail in and out: `mailrepd import` (Maildir, mbox)
 * and `mailrepd export` (Maildir).  Each returns the exit status.
 */
#ifndef MAILREPD_MAILIO_H
#define MAILREPD_MAILIO_H

int	mailio_import(int argc, char **argv);
int	mailio_export(int argc, char **argv);

#endif /* MAILREPD_MAILIO_H */
