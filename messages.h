/*
 * messages.h — the read-only view for test assertions: `mailrepd
 * messages` lists or shows what arrived, `mailrepd wait` blocks until
 * enough has.  Both read the store while the server runs (SQLite WAL
 * readers never wait for the writer).  Each returns the exit status:
 * 0 done, 1 failed or timed out, 2 bad usage (after saying why).
 */
#ifndef MAILREPD_MESSAGES_H
#define MAILREPD_MESSAGES_H

int	messages_main(int argc, char **argv);
int	messages_wait(int argc, char **argv);

#endif /* MAILREPD_MESSAGES_H */
