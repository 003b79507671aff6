/*
 * sync_internal.h — what the replication module's files share: sync.c
 * (setup, tick), sync_chan.c (codec, channel), sync_master.c,
 * sync_replica.c, sync_reconcile.c and sync_recon_replica.c (full
 * reconciliation, each side), sync_renumber.c (copies pushed to be
 * renumbered) and sync_status.c.  Nothing else includes it; sync.h is the module's
 * API.
 */
#ifndef MAILREPD_SYNC_INTERNAL_H
#define MAILREPD_SYNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <zlib.h>

#include "config.h"
#include "proto.h"
#include "spool.h"
#include "store.h"

static inline void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static inline uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* A cursor over an encoded record. */
struct wr {
	uint8_t	*p;
	size_t	 n, cap;
	int	 full;
};

struct rd {
	const uint8_t	*p;
	size_t		 n, off;
	int		 bad;
};

struct recon;		/* sync_reconcile.c's */

/* A chan exists only once TLS is up: the peer has proved the key. */
enum chan_state {
	CH_HELLO,		/* master: waiting for HELLO */
	CH_START,		/* replica: waiting for START */
	CH_RECONCILE,		/* full reconciliation */
	CH_STREAM,		/* streaming */
};


/* One received body on its way into the batch (replica side). */
struct pending {
	struct store_replog_rec	 rec;
	int			 has_body;
	uint64_t		 size;
	struct spool		*spool;
	struct store_blob_in	 in;
	int			 ready;		/* body complete and verified */
	uint32_t		 above;		/* PUSH: the replica's UIDNEXT */
};

struct chan {
	int			 master;	/* this end is the master */
	enum chan_state		 state;
	time_t			 started, last_rx, last_tx;
	z_stream		 z;
	int			 z_ok;
	uint8_t			*item;		/* SYNC_MAX_ITEM scratch */
	uint8_t			*zout;		/* SYNC_MAX_FRAME scratch */
	char			 name[256];	/* the replica's name */
	uint8_t			 node_id[NODE_ID_LEN];	/* the peer's */
	uint8_t			 epoch[EPOCH_LEN];	/* the master's */
	/* master side */
	int64_t			 sent, acked, stored_acked;
	time_t			 stored_at;
	int			 inflight, batch_n, batch_files;
	int64_t			 inflight_end[SYNC_WINDOW]; /* oldest first */
	uint64_t		 batch_bytes, batch_mem;	/* batch_mem: both sides */
	struct store_blob_reader *body;
	uint64_t		 body_size, body_off;
	struct store_replog_rec	 rec;
	struct recon		*recon;		/* CH_RECONCILE */
	/* replica side */
	int64_t			 applied;	/* committed position */
	int			 staging;	/* the END waits for big bodies
						   to go in (batch_staging) */
	int64_t			 last;		/* last position received */
	struct pending		*batch;
	size_t			 nbatch;
	struct pending		*cur;		/* body being received */
	uint64_t		 body_left;
	struct store_conflict	*conflicts;	/* found in the batch */
	size_t			 nconflicts;
	int64_t			 batch_end;
	int64_t			 recon_head;	/* CH_RECONCILE: START at */
	uint8_t			(*inv_ids)[MAILBOX_ID_LEN];
	size_t			 ninv_ids, inv_cap, inv_i;
	int			 inv_sending;
	int64_t			 push_after;	/* last conflict pushed */
	time_t			 push_round;	/* when push_after was reset */
	struct store_blob_reader *push_body;	/* the copy being pushed */
	uint64_t		 push_size, push_off;
	/* master side: a replica's copy arriving (PUSH) */
	struct pending		 push;
};

static inline struct chan *
chan_of(struct session *s)
{
	return s->proto;
}

/*
 * What a body of size bytes holds in the replica's memory until its
 * batch is applied: its spool's buffer (spool.c), at most SPOOL_MEM_MAX.
 */
static inline uint64_t
body_mem(uint64_t size)
{
	return size < SPOOL_MEM_MAX ? size : SPOOL_MEM_MAX;
}

/* What this process knows about replication; one server per process. */
struct sync_repl {
	struct server	*srv;
	int		 replica;	/* following a master */
	char		 from[SYNC_UPSTREAM_MAX + 1]; /* its HOST:PORT */
	struct session	*upstream;	/* our connection to the master */
	time_t		 next_connect;
	int		 backoff;
	time_t		 last_purge;	/* a log purge began (sync_purge_step) */
	int		 purging;	/* it has more to purge */
	int64_t		 purged;	/* records it purged so far */
	time_t		 last_housekeep;	/* sync_housekeep() */
	time_t		 last_wal_check;
};
extern struct sync_repl repl;		/* sync.c's */

/* The replica's connection to its master (sync_replica.c). */
extern const struct proto_ops sync_replica_proto;

/* sync_chan.c: the codec's cursors and the channel. */
void		 wr_bytes(struct wr *, const void *, size_t);
void		 wr_u64(struct wr *, uint64_t);
void		 wr_str(struct wr *, const char *);
const uint8_t	*rd_bytes(struct rd *, size_t);
uint64_t	 rd_u64(struct rd *);
uint8_t		 rd_u8(struct rd *);
void		 rd_str(struct rd *, char *dst, size_t cap);
/* Queues one frame on the channel. */
void		 chan_send(struct session *, uint8_t type, const void *,
		    size_t);
/*
 * START and RECONCILE: this master's node id and epoch, the position pos
 * and the log's running hash there.  head_decode() reads one; 0 or -1.
 */
#define SYNC_HEAD_LEN	(NODE_ID_LEN + EPOCH_LEN + 8 + LOG_HASH_LEN)
void		 chan_send_head(struct session *, uint8_t type, int64_t pos);
int		 head_decode(const uint8_t *, size_t, uint8_t *node_id,
		    uint8_t *epoch, int64_t *pos, uint8_t *hash);
/* Deflates one item and sends it; -1 (session closed) on failure. */
int		 chan_send_deflated(struct session *, uint8_t type,
		    const void *, size_t);
/* Inflates a frame's payload into c->item; its length, or -1. */
ssize_t		 chan_inflate(struct chan *, const uint8_t *, size_t);
/* Sends REFUSE with why and closes. */
void		 chan_refuse(struct session *, const char *why);
/* The peer broke the protocol: logs what (sync.protocol) and closes. */
void		 chan_bad(struct session *, const char *what);
/* The next complete frame: 1, 0 when more is needed, -1 (closed). */
int		 chan_next(struct session *, uint8_t *type,
		    const uint8_t **payload, size_t *n, size_t *total);
/* The session's channel, set up once TLS is up; NULL without memory. */
struct chan	*chan_new(struct session *, int master);
/* Drops the replica's batch in progress. */
void		 pending_clear(struct chan *);
void		 chan_free(struct session *);
/* proto_ops.tls_failed of both ends. */
void		 chan_tls_failed(struct session *, const char *why,
		    int wrong_key);

/* sync_master.c. */
/* Writes what the master knows of this replica to the store. */
void		 master_store(struct session *, int connected);

/* sync_replica.c. */
/* Opens the connection to the master, non-blocking. */
void		 replica_connect(struct server *);
/* A received body into c->cur's spool; body_finish checks its GUID. */
void		 body_feed(struct chan *, const uint8_t *, size_t);
int		 body_finish(struct session *, struct chan *);
/* Logs a conflict and runs --conflict-notify. */
void		 conflict_notify(struct session *,
		    const struct store_conflict *);

/* sync_reconcile.c: reconciliation, master side. */
void		 recon_start(struct session *, struct chan *);
/* The next record to send into c->rec: STORE_NOTFOUND when none now. */
enum store_err	 recon_next(struct session *, struct chan *);
/* All sent and acknowledged: START, in flight until its ACK. */
void		 recon_finish(struct session *, struct chan *);
/* An ACK while reconciling; START's starts the stream. */
void		 recon_acked(struct session *, struct chan *, int64_t);
/* An inventory frame; -1 when it is out of place. */
int		 recon_input(struct session *, struct chan *, uint8_t type,
		    const uint8_t *, size_t);
void		 recon_free(struct recon *);

/* sync_renumber.c: the copies pushed, and the requests of conflicts. */
void		 master_push_begin(struct session *, struct chan *,
		    const uint8_t *, size_t);
void		 master_push_data(struct session *, struct chan *,
		    const uint8_t *, size_t);
/*
 * A peer's UIDNEXT for mailbox uniqueid, said in frame `what`, before it
 * raises ours: 0, or -1 (logged, link dropped) when it is implausible.
 */
int		 peer_uidnext_check(struct session *, const uint8_t *uniqueid,
		    uint64_t uidnext, const char *what);
/* RELOCATE: a message of ours a replica cannot take at its uid. */
void		 master_relocate(struct session *, struct chan *,
		    const uint8_t *, size_t);
/* EXPUNGED: a message of ours a replica saw and expunged. */
void		 master_expunged(struct session *, struct chan *,
		    const uint8_t *, size_t);
/* PULL on the replica: the master lacks our message at a uid. */
void		 replica_pull(struct session *, struct chan *,
		    const uint8_t *, size_t);
/* NEVER_HELD on the replica: what we asked about was never the master's. */
void		 replica_never_held(struct session *, const uint8_t *,
		    size_t);
/* Sends the copies to renumber as the output drains. */
void		 replica_push(struct session *, struct chan *);

/* sync_recon_replica.c. */
void		 replica_reconcile(struct session *, struct chan *,
		    const uint8_t *, size_t);
void		 replica_send_inventory(struct session *, struct chan *);
void		 replica_want(struct session *, struct chan *,
		    const uint8_t *, size_t);
void		 replica_reconciled(struct session *, struct chan *,
		    const uint8_t *, size_t);

#endif /* MAILREPD_SYNC_INTERNAL_H */
