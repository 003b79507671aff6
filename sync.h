/*
 * sync.h — replication: log shipping from a master to its replicas, the
 * replica's GUID-checked apply, conflicts, and `mailrepd status`.
 *
 * The channel is a session of the session layer (proto.h) on each end:
 * the master accepts replicas on --repl-listen (sync_master_proto); a
 * replica keeps one outgoing connection to --replicate-from, reconnecting
 * with backoff.  Both run over TLS 1.2 with a pre-shared key derived
 * from --repl-secret-file (tls.h; the replica is the TLS client), so
 * every byte below is encrypted and authenticated by TLS, and nothing is
 * read before the peer has proved the key.  Frames are
 *
 *	type (1 byte) | length (4 bytes, big-endian) | payload
 *
 * HELLO (the replica: protocol version, its node id and name, which
 * master log it follows -- master node id and epoch -- the position it
 * applied and the log's running hash there), then START (the master:
 * its node id, epoch, the position it streams after and the hash
 * there), RECONCILE (the same fields) when the log cannot serve the
 * replica's position or is not the log the replica applied (full
 * reconciliation: sync_reconcile.c explains it; the START that ends it
 * is in flight like a batch: the replica commits its position and ACKs
 * it, and only then does the log stream), or REFUSE (why, as text).
 * Records and body chunks travel deflated through one zlib stream; END
 * (the batch's last position and the hash there) closes a batch, which
 * the replica applies in one transaction with its applied position and
 * that hash, and ACKs.  The master sends ahead up to SYNC_WINDOW unacknowledged
 * batches; an ACK must name the END of one of them.
 */
#ifndef MAILREPD_SYNC_H
#define MAILREPD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct server;

/* Frame types. */
#define SF_HELLO	'H'
#define SF_START	'S'
#define SF_REFUSE	'X'
#define SF_RECORD	'R'	/* deflated: one log record */
#define SF_DATA		'D'	/* deflated: a chunk of the record's body */
#define SF_END		'E'	/* end of batch: its last position */
#define SF_ACK		'K'	/* applied and committed up to position */
#define SF_PING		'P'
#define SF_RECONCILE	'Q'	/* compare first, then START at this head */
#define SF_INV_MAILBOX	'M'	/* replica: a mailbox, with its digest */
#define SF_INV_END	'N'	/* replica: that was every mailbox */
#define SF_INV_WANT	'W'	/* master: your messages of a mailbox */
#define SF_INV_MSGS	'L'	/* replica: a chunk of them */
#define SF_PULL		'U'	/* master: send me your message at this uid */
#define SF_PUSH		'V'	/* replica: a message of mine, to renumber */
#define SF_PUSH_DATA	'B'	/* replica: a chunk of its body */
#define SF_RELOCATE	'O'	/* replica: your message cannot take this uid */
#define SF_EXPUNGED	'G'	/* replica: your message was expunged here */
#define SF_NEVER_HELD	'Y'	/* master: no message of mine was at this uid */

#define SYNC_HDR_LEN	5
#define SYNC_VERSION	9	/* 8: no NEVER_HELD; 7: subscriptions by
				   mailbox; 6: appends do not say where a
				   renumbering moved them from; 5: START
				   after a reconciliation not acknowledged;
				   4: no rename times; 3: no EXPUNGED; 2: no
				   log hashes nor reasons; 1: no TLS */
#define SYNC_PSK_IDENTITY "mailrepd-repl-1"
#define SYNC_PSK_INFO	"mailrepd replication TLS-PSK v1" /* HKDF info */

extern const struct proto_ops sync_master_proto;

/*
 * Reads the secret and starts replicating when the settings ask for it.
 * Returns 0, or -1 after printing which setting is wrong (exit 2).
 */
int	sync_setup(struct server *);
/* Once a second: reconnects, keep-alives, acked positions, notify children. */
void	sync_tick(struct server *);
/*
 * Each loop iteration: a step of the purge of the replication log, which
 * begins every SYNC_PURGE_INTERVAL and goes on a step an iteration until
 * what may go is gone; the step's writes are left to the caller's
 * commit.  Returns whether more is left (run it again at once).
 */
int	sync_purge_step(struct server *);
/* Whether this node runs as a replica (IMAP read-only, LMTP 451). */
int	sync_is_replica(void);
/*
 * Drain (SIGQUIT): whether every connected replica has acknowledged the
 * log head; *nreplicas says how many are connected.
 */
int	sync_all_caught_up(struct server *, unsigned *nreplicas);
/*
 * At the end of a drain: records each connected replica's acknowledged
 * position, logs every known replica that is behind the head (name,
 * position, lag), and returns how many are.
 */
unsigned sync_drain_report(struct server *);
/*
 * `mailrepd promote` (SIGUSR1): a replica becomes a master with a new
 * epoch, keeping what it applied, and stops following.  Returns 0, 1 when
 * it was a master already, -1 when the store refused.
 */
int	sync_promote(struct server *);
/*
 * `mailrepd demote` of a running node (SIGUSR2, control.h): from now on
 * a replica of spec (HOST:PORT), so IMAP turns read-only and LMTP
 * answers 451 at once; the replica sessions that followed this node are
 * closed, the role and upstream recorded, and spec connected to, whose
 * master then reconciles this node (a former master forgets the log it
 * followed, so its own writes are compared, never streamed past).
 * secret_file is read when the node has no replication key yet (NULL:
 * none given).  Returns 0, or -1 (logged) when nothing changed.
 */
int	sync_demote(struct server *, const char *spec,
	    const char *secret_file);

/* `mailrepd status [--json] --data DIR`. */
int	sync_status(int argc, char **argv);
/* `mailrepd replica resume|forget ...`. */
int	sync_replica_main(int argc, char **argv);

/*
 * The codec, public for the unit tests and the fuzzer.
 *
 * sync_frame_peek: looks at a buffer that starts with a frame; returns 1
 * with its type, payload length and total length, 0 when more bytes are
 * needed, -1 when the length is over SYNC_MAX_FRAME.
 */
int	sync_frame_peek(const uint8_t *p, size_t n, uint8_t *type,
	    size_t *paylen, size_t *total);

/*
 * Encodes a log record (and whether a body of bodysize bytes follows)
 * into out; returns the length, or 0 when cap is too small.
 */
size_t	sync_rec_encode(const struct store_replog_rec *, int has_body,
	    uint64_t bodysize, uint8_t *out, size_t cap);
/*
 * Decodes and validates one record: known type, the fields that type
 * needs, strings NUL-free and within their limits.  Returns 0 or -1.
 */
int	sync_rec_decode(const uint8_t *p, size_t n, struct store_replog_rec *,
	    int *has_body, uint64_t *bodysize);

#endif /* MAILREPD_SYNC_H */
