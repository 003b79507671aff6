/*
 * imap_thread.h — THREAD's algorithms (RFC 5256): ORDEREDSUBJECT and
 * REFERENCES over messages whose keys the caller read.  For imap*.c only.
 */
#ifndef MAILREPD_IMAP_THREAD_H
#define MAILREPD_IMAP_THREAD_H

#include <stddef.h>
#include <stdint.h>

enum thread_algorithm {
	THREAD_ORDEREDSUBJECT,
	THREAD_REFERENCES,
};

/* One message to thread; the strings stay the caller's. */
struct thread_msg {
	uint32_t	 num;		/* written: sequence number or UID */
	uint32_t	 seq;		/* breaks ties of equal dates */
	int64_t		 date;		/* sent date (SORT's DATE) */
	const char	*subject;	/* base subject */
	int		 reply;		/* the subject said Re:/Fwd: */
	const char	*message_id;	/* "<...>", or NULL */
	const char	*references;	/* References:, else In-Reply-To: */
};

/* Receives the response's text piece by piece. */
typedef void	(*thread_emit_fn)(void *arg, const char *s, size_t n);

/* Finds an algorithm by name.  Returns 0, or -1 for one not known. */
int	imap_thread_algorithm(const char *name, enum thread_algorithm *);

/*
 * Threads n messages and writes the threads, "(1 2)(3 (4)(5))", through
 * emit.  Returns 0, or -1 when memory ran out (nothing useful written).
 */
int	imap_thread(const struct thread_msg *, uint32_t n,
	    enum thread_algorithm, thread_emit_fn emit, void *arg);

#endif /* MAILREPD_IMAP_THREAD_H */
