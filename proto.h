/*
 * proto.h — the session layer shared by the client protocols.
 *
 * A session is one client connection: a socket, a bounded input buffer,
 * an output buffer, and the protocol's own state (struct lmtp_session,
 * later struct imap_session) behind `proto`.  The event loop reads into
 * `in` and calls the protocol's input handler, which consumes every
 * complete command already buffered (clients pipeline) and appends
 * replies to `out`.
 *
 * Group commit: a handler that changed the store calls
 * session_wait_commit() and stops consuming input.  After every session
 * of the loop iteration has run, server_commit() commits the store once
 * (one fsync for all) and calls each waiting session's `committed`
 * handler, which only then writes the acknowledgements.  A command made
 * in steps (IMAP's STORE, FETCH, EXPUNGE over many messages) goes on
 * across iterations, each step's changes riding on that iteration's
 * group commit without waiting for it: session_wrote() marks such a
 * step, and a failed commit then leaves its error in `lost`, so that the
 * command's reply cannot say that undone work is saved.
 *
 * Synchronous replication (--repl-sync-timeout, ARCHITECTURE.md): a handler
 * whose change wrote log records calls session_wait_replicated()
 * instead.  On a master with the timeout above 0, its `committed` handler
 * then runs only once a replica has acknowledged the log head that the
 * group commit reached (server_repl_acked(), from sync_master.c) or the timeout
 * has passed.  Every session of one group commit waits for the same
 * position, so one ACK releases them all.
 */
#ifndef MAILREPD_PROTO_H
#define MAILREPD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "net.h"
#include "store.h"

struct settings;
struct store;
struct session;
struct transport;

/*
 * The replies held for a replica's ACK (see the top).  After a timeout
 * the master stops holding, as MySQL's semi-synchronous replication
 * falls back to asynchronous: a replica that is down or far behind must
 * not turn into a delivery outage of one reply per timeout.  It holds
 * again once a replica acknowledges, after the timeout, a position
 * within SYNC_RESUME_LAG records of the head.
 */
struct repl_hold {
	int64_t		 acked;		/* highest position a replica acked */
	int64_t		 head;		/* log head after the last commit */
	int		 async;		/* timed out: not holding */
	int		 acked_since;	/* an ACK came since the timeout */
	unsigned	 held;		/* sessions waiting */
	/* counted, not yet added to the store's counters (`status`) */
	int64_t		 n_acked, n_timeouts, n_unreplicated;
	time_t		 stored_at;
};

/*
 * Connection pools: each has its own limit, so that clients of one
 * protocol cannot take the slots of another, and replicas always find
 * room however many clients are connected.
 */
enum session_pool {
	POOL_IMAP,		/* max-connections */
	POOL_MAIL,		/* LMTP and SMTP: max-connections */
	POOL_REPL,		/* replication: SYNC_MAX_PEERS */
	POOL_HTTP,		/* web view, API, metrics: max-connections */
	NPOOLS
};

/* What every session can reach: the store, the settings, the clocks. */
/* The upper bounds of struct server's commits[] buckets. */
#define SERVER_COMMIT_BUCKETS	10
extern const long long server_commit_bounds_us[SERVER_COMMIT_BUCKETS];

struct server {
	struct store		*store;
	const struct settings	*settings;
	time_t			 now;		/* wall clock, seconds */
	int64_t			 now_ms;	/* monotonic ms: holds, timers */
	int64_t			 timer_ms;	/* next wake-up asked, 0: none */
	struct repl_hold	 hold;
	struct session		*sessions;	/* every live session */
	unsigned		 nsessions;
	unsigned		 pool_sessions[NPOOLS];
	size_t			 buffered;	/* every session's buffers,
						   allocated (server_account) */
	uint64_t		 next_id;
	/*
	 * `mailrepd dev`: catch-all delivery, +tempfail/+permfail/+slow,
	 * SMTP AUTH and any password for users without one, the last two
	 * from loopback clients only.
	 */
	int			 dev;
	int			 draining;	/* SIGQUIT: no new commands */
	enum store_err		 commit_err;	/* why the last commit failed */
	/* Deliveries since start by outcome: a store_err, then uncommitted
	   (the HTTP /metrics). */
	uint64_t		 deliveries[STORE_IO + 2];
	/* Group commits since start by how long they took: [i] those up
	   to server_commit_bounds_us[i], the last the rest (/metrics). */
	uint64_t		 commits[SERVER_COMMIT_BUCKETS + 1];
	uint64_t		 commit_us;	/* their time, in all */
};

enum session_io {
	SESSION_OPEN,		/* reading and running commands */
	SESSION_WAIT_COMMIT,	/* a change awaits the group commit */
	SESSION_WAIT_REPL,	/* committed; awaits a replica's ACK */
	SESSION_CLOSING,	/* writing what is left, then closing */
};

/* A protocol's handlers; see the comment at the top. */
struct proto_ops {
	const char	*name;
	enum session_pool pool;
	size_t		 in_limit;	/* longest input buffered */
	size_t		 out_limit;
	const char	*busy_reply;	/* sent when at max connections */
	/*
	 * The peer keeps sending while it has output of ours to read (both
	 * replication nodes stream): its input is read whatever output is
	 * queued, where a client's is not (see session_output_high), or two
	 * nodes with output queued would each wait for the other to read.
	 */
	int		 full_duplex;
	/*
	 * Optional: whether the client is past its greeting stage (IMAP:
	 * logged in; LMTP and SMTP: said LHLO/EHLO/HELO).  A session that
	 * is not within --prelogin-timeout of its connection is timed out,
	 * however often it sends a byte.  NULL: always.
	 */
	int		(*established)(const struct session *);
	void		(*start)(struct session *);
	void		(*input)(struct session *);
	/*
	 * The change it waited for (session_wait_commit) is committed, or
	 * not; NULL for a protocol that never waits.
	 */
	void		(*committed)(struct session *, int ok);
	/* Idle past --idle-timeout; NULL: the protocol keeps its own time. */
	void		(*timeout)(struct session *);
	void		(*free)(struct session *);
	/*
	 * Optional: called after every group commit and once a second, so
	 * that a session waiting on something other than its input (IMAP
	 * IDLE, a delayed reply) can look whether it has come.
	 */
	void		(*wake)(struct session *);
	/*
	 * Optional: the password check the session asked auth.h for is done
	 * (match: the password is right).  Runs from server_auth_results().
	 */
	void		(*checked)(struct session *, int match);
	/*
	 * Graceful drain (SIGQUIT), called on every loop iteration while the
	 * server drains, for each open session: a session between commands
	 * says goodbye (BYE, 421) and closes; one in the middle of a command
	 * or transaction is left to finish it and is asked again.  Returns 1
	 * when the session is closing, 0 while it is still busy.  NULL: not
	 * a client session (replication), which the drain leaves alone.
	 */
	int		(*drain)(struct session *);
	/*
	 * Replication: the session runs over TLS with the pre-shared key
	 * from its first byte, as the server when accepted and as the
	 * client when made by session_new(); `start` runs once the
	 * handshake is done, so that nothing is read from or said to a peer
	 * that has not proved the key.
	 */
	int		 psk;
	/*
	 * Optional: TLS failed, in the handshake or on a later record (a
	 * record that does not decrypt), and the session closes; wrong_key
	 * says the peer holds another pre-shared key.  NULL: logged as
	 * tls.fail.
	 */
	void		(*tls_failed)(struct session *, const char *why,
			    int wrong_key);
};

struct session {
	struct session		*next;
	struct server		*srv;
	const struct proto_ops	*ops;
	uint64_t		 id;
	int			 fd;
	enum session_io		 io;
	int			 in_eof;	/* the peer sent FIN */
	int			 local;		/* loopback or unix peer */
	int			 resume;	/* run input again once the
						   output drains (a long reply
						   made in steps) */
	int			 paused;	/* takes no input until the
						   protocol clears this (a
						   reply held back by a delay) */
	int			 established;	/* past login or greeting: the
						   buffers' full limits */
	struct buf		 in;
	struct buf		 out;
	time_t			 last_active;
	time_t			 opened;
	time_t			 waiting_since;	/* the oldest input not yet
						   taken as a command, 0: none */
	char			 peer[NET_PEER_LEN];
	void			*proto;		/* owned by the protocol */
	struct transport	*tp;		/* plain, TLS, DEFLATE; NULL:
						   plain (tests) */
	int			 tls_start;	/* start the protocol once the
						   implicit-TLS handshake is
						   done */
	int			 tls_slot;	/* holds a --max-tls-sessions
						   slot (a client with TLS) */
	int			 compress_slot;	/* holds a
						   --max-compress-sessions
						   slot until freed */
	int			 replicate;	/* the change wrote log records
						   (session_wait_replicated) */
	int			 wrote;		/* a step wrote to the open
						   transaction (session_wrote) */
	enum store_err		 lost;		/* why a group commit undid a
						   step's changes (STORE_OK:
						   none did); the protocol
						   clears it */
	int64_t			 repl_pos;	/* SESSION_WAIT_REPL: until a
						   replica acks this... */
	int64_t			 repl_deadline;	/* ...or now_ms reaches this */
	int64_t			 store_retry;	/* another process holds the
						   write lock: run input again
						   at this now_ms (0: none) */
};

/* Loop side. */
/*
 * Whether a client from peer ("ADDR:PORT") would be past
 * --max-per-address connections of its pool; loopback and unix clients
 * (local) never are.
 */
int	server_address_full(const struct server *, enum session_pool,
	    const char *peer, int local);
void	server_accept(struct server *, int lfd, const struct proto_ops *);
/*
 * Makes a session of a connected (or connecting) non-blocking socket it
 * now owns (an outgoing replication connection), then runs ops->start,
 * or with ops->psk starts the TLS client handshake and runs it once the
 * handshake is done.  Returns NULL, fd closed, without memory.
 */
struct session *session_new(struct server *, int fd,
	    const struct proto_ops *, const char *peer);
/* The same for an implicit-TLS listener (IMAPS): TLS first, then start. */
void	server_accept_tls(struct server *, int lfd, const struct proto_ops *);
/*
 * Adds up the buffers every session holds (srv->buffered), for the
 * budget of config.h; the loop calls it before each poll.
 */
void	server_account(struct server *);
/*
 * Whether more than one command, or replies, are queued in the session:
 * its client pipelines, or does not read.  The loop runs such sessions
 * after the others, within its step (mailrepd.c).
 */
int	session_backlogged(const struct session *);
/* Whether the session has output to send (buffered or in the layers). */
int	session_has_output(const struct session *);
/*
 * The socket is readable: runs a TLS handshake on, or reads once into
 * the input buffer.  Returns 1 when the protocol should then run
 * (session_process), 0 when not (a handshake goes on).
 */
int	session_read(struct session *);
void	session_on_writable(struct session *);
short	session_poll_events(const struct session *);
int	session_wants_processing(const struct session *);
void	session_process(struct session *);
/* Reads both clocks into srv->now and srv->now_ms. */
void	server_clock(struct server *);
/*
 * The group commit, then the held replies whose ACK came or whose
 * timeout passed (see the top).
 */
void	server_commit(struct server *);
/* sync_master.c: a replica acknowledged everything up to pos. */
void	server_repl_acked(struct server *, int64_t pos);
/* Milliseconds until the first held reply times out; -1: none held. */
long	server_hold_wait_ms(const struct server *);
void	server_wake(struct server *);
/*
 * Hands every finished password check (auth.h) to the session that asked
 * for it, by session id; the result of a session that is gone or closing
 * is dropped.  The loop calls it when auth_fd() is readable.
 */
void	server_auth_results(struct server *);
/* The monotonic clock in milliseconds (what srv->now_ms holds). */
int64_t	server_clock_ms(void);
/*
 * Asks the event loop to call server_wake() at at_ms (or soon after),
 * rather than at the next whole-second tick: for held replies.
 */
void	server_timer(struct server *, int64_t at_ms);
void	server_timeouts(struct server *);
void	server_reap(struct server *);
void	server_close_all(struct server *);
/*
 * While draining: asks every open client session to finish (see
 * proto_ops.drain).  Returns how many client sessions are still open.
 */
unsigned server_drain(struct server *);

/* Protocol side. */
enum line_status {
	LINE_MORE,		/* no complete line buffered yet */
	LINE_OK,
	LINE_TOO_LONG,		/* more than max bytes without a LF */
};

/*
 * The longest line s can take when its protocol allows max: less before
 * login, where the input buffer is smaller.  A line that fills the buffer
 * is too long, to be dropped as it comes, not waited on for room that
 * never frees up.  Assumes a buffer limit of at least 1.
 */
size_t	session_line_max(const struct session *, size_t max);
/*
 * Finds the next complete line in s->in.  On LINE_OK *line points at it
 * inside the buffer, NUL-terminated in place of its line ending, *len is
 * its length without the ending, and *used the bytes to buf_consume()
 * once the caller is done with it.  A line ending is LF with an optional
 * CR before it; *crlf says which.  A line past session_line_max(s, max)
 * is LINE_TOO_LONG.
 */
enum line_status session_getline(struct session *, size_t max, char **line,
	    size_t *len, size_t *used, int *crlf);

/* Appends formatted output; a session past its output limit is closed. */
void	session_printf(struct session *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	session_write(struct session *, const void *, size_t);

/*
 * Room for up to `want` bytes at the end of the output, to be filled in
 * place and then counted with session_commit(): *got is how many fit
 * (fewer near the output limit).  NULL, with the session closed as
 * session_write() closes it, when nothing fits.
 */
char	*session_reserve(struct session *, size_t want, size_t *got);
void	session_commit(struct session *, size_t n);

/*
 * Waits for the group commit (see the top); the session's `committed`
 * handler runs after it, in this loop iteration, even when nothing was
 * left to commit.
 */
void	session_wait_commit(struct session *);
/*
 * The same for a change that wrote log records (a delivery, an IMAP
 * change): with --repl-sync-timeout the `committed` handler also waits
 * for a replica to have them.
 */
void	session_wait_replicated(struct session *);
/*
 * A step of a command made in steps changed the store, and the command
 * goes on without waiting for the group commit: should that commit
 * fail, server_commit() sets s->lost.
 */
void	session_wrote(struct session *);

/*
 * Whether the store's write lock is this process's (store_write_try):
 * a handler about to write calls it before it consumes the command.  On
 * 0 another process holds the lock; the handler leaves the command
 * buffered and returns, and its input runs again STORE_RETRY_MS later
 * while the other sessions go on.
 */
int	session_store_ready(struct session *);

/*
 * Whether the session should produce no more output for now: its queued
 * output is above OUTBUF_HIGH_WATER (before login the lower
 * PRELOGIN_HIGH_WATER; a full-duplex peer is read whatever it has
 * queued), every session's buffers are over SESSION_BUDGET and this one
 * holds its fair share (config.h), or it is closing.  Neither read nor
 * processed meanwhile; a reply made in steps waits.
 */
int	session_output_high(const struct session *);

/* Sends what is buffered, then closes. */
void	session_close(struct session *);
/*
 * The peer is gone (silent past a deadline, a broken connection):
 * nothing more is read or written, and what is queued for it is dropped.
 */
void	session_broken(struct session *);

/*
 * TLS and compression (transport.h).  session_start_tls() is called
 * right after the protocol queued its "go ahead" reply: that reply goes
 * out in the clear, the handshake follows, and input buffered after the
 * command (past the first `keep` bytes of the input buffer: the command
 * line when the caller has not consumed it yet) is dropped: it is a
 * plaintext-injection attempt, a client must wait for the reply.  session_start_compress() likewise; input after the
 * command is taken as compressed.  Both return 0, or -1 when the layer
 * cannot be added (the caller has already replied; the session closes).
 */
int	session_start_tls(struct session *, size_t keep);
int	session_start_compress(struct session *);
/*
 * Whether STARTTLS can be offered now: TLS set up, not yet on, and a
 * --max-tls-sessions slot free (or one a stalled handshake would give).
 */
int	session_can_starttls(const struct session *);
int	session_secure(const struct session *);
/* For the log: "TLSv1.2 cipher-suite", or why TLS failed, or "no TLS". */
void	session_tls_info(struct session *, char *, size_t);
int	session_compressed(const struct session *);
/*
 * Takes one of --max-compress-sessions slots for the session (config.h:
 * memory), before COMPRESS is answered OK; the slot is held until the
 * session is freed.  Returns 0, and logs, when every slot is held.
 */
int	session_take_compress_slot(struct session *);

#endif /* MAILREPD_PROTO_H */
