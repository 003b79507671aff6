/*
 * mailrepd.c — main(), the sub-commands, signals and the event loop.
 *
 * One process, one thread for the loop: poll() over the listeners, the
 * password checker's results (auth.h: hashing runs on its own thread)
 * and every session, then one group commit of the store for the whole
 * iteration, then the replies.  See proto.h for the session side of
 * that contract.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "backup.h"
#include "config.h"
#include "conflicts.h"
#include "control.h"
#include "crypto.h"
#include "daemon.h"
#include "dev.h"
#include "http.h"
#include "imap.h"
#include "imap_search_index.h"
#include "lmtp.h"
#include "log.h"
#include "mailio.h"
#include "messages.h"
#include "net.h"
#include "proto.h"
#include "quarantine.h"
#include "settings.h"
#include "store.h"
#include "sync.h"
#include "tls.h"
#include "web.h"
#include "web_auth.h"

#define MAX_LISTENERS	16

struct listener {
	int			 fd;
	int			 tls;		/* implicit TLS (IMAPS) */
	const struct proto_ops	*ops;
	char			*spec;		/* as configured */
};

static volatile sig_atomic_t	stop_signal;	/* SIGTERM, SIGINT */
static volatile sig_atomic_t	quit_signals;	/* SIGQUITs: 1 drains */
static volatile sig_atomic_t	reload_signal;
static volatile sig_atomic_t	promote_signal;	/* SIGUSR1 */
static volatile sig_atomic_t	demote_signal;	/* SIGUSR2 */

/* A SIGQUIT drain (ARCHITECTURE.md, "Graceful drain (SIGQUIT)"). */
enum drain_phase {
	DRAIN_NONE,
	DRAIN_SESSIONS,		/* client sessions finishing */
	DRAIN_REPLICAS,		/* connected replicas catching up */
	DRAIN_DONE,
};

struct drain {
	enum drain_phase	 phase;
	struct timespec		 start;
	unsigned		 sessions;	/* client sessions at the start */
	unsigned		 cut;		/* cut off by the timeout */
	int			 timed_out;
};

static void
on_stop_signal(int sig)
{
	if (sig == SIGQUIT)
		quit_signals++;
	else
		stop_signal = sig;
}

static void
on_promote_signal(int sig)
{
	if (sig == SIGUSR2)
		demote_signal = 1;
	else
		promote_signal = 1;
}

static void
on_reload_signal(int sig)
{
	(void)sig;
	reload_signal = 1;
}

static void
close_listeners(struct listener *ls, int n)
{
	int	 i;

	for (i = 0; i < n; i++) {
		close(ls[i].fd);
		if (strncmp(ls[i].spec, "unix:", 5) == 0)
			unlink(ls[i].spec + 5);
		free(ls[i].spec);
	}
}

/*
 * Opens one listener per comma-separated spec into ls[n...], with
 * implicit TLS when tls, or when tls_of (if not NULL) says so of its
 * address; a unix socket is bound with the unix-socket-*
 * mode and given their owner and group (dm).  Returns the new count, or
 * -1 after saying which spec failed (having closed what it opened).
 */
static int
open_listeners(const char *specs, const struct proto_ops *ops,
    struct listener *ls, int n, int tls, int (*tls_of)(const char *),
    const struct daemon *dm)
{
	char			*copy, *spec, *save = NULL, err[256];
	mode_t			 mask;
	int			 opened = 0, ok = 1, is_unix;

	if (specs == NULL)
		return n;
	if ((copy = strdup(specs)) == NULL)
		return -1;
	for (spec = strtok_r(copy, ",", &save); ok && spec != NULL;
	    spec = strtok_r(NULL, ",", &save)) {
		struct listener *l = &ls[n + opened];

		is_unix = strncmp(spec, "unix:", 5) == 0;
		/* The mode is the socket's from bind() on: no window. */
		mask = umask(is_unix ? ~dm->sock_mode & 0777 : SERVE_UMASK);
		l->fd = n + opened == MAX_LISTENERS ? -1 :
		    net_listen(spec, err, sizeof(err));
		umask(mask);
		if (n + opened == MAX_LISTENERS) {
			fprintf(stderr, "mailrepd: more than %d listeners\n",
			    MAX_LISTENERS);
			ok = 0;
		} else if (l->fd < 0 || (is_unix && daemon_socket(dm, spec + 5,
		    err, sizeof(err)) < 0)) {
			fprintf(stderr, "mailrepd: setting '%s': %s\n",
			    tls ? "imaps" : ops->name, err);
			if (l->fd >= 0)
				close(l->fd);
			ok = 0;
		} else if ((l->spec = strdup(spec)) == NULL) {
			close(l->fd);
			ok = 0;
		} else {
			l->ops = ops;
			l->tls = tls || (tls_of != NULL && tls_of(spec));
			log_info("listen", "proto=%s addr=%s tls=%s", ops->name,
			    spec, ops->psk ? "psk" : l->tls ? "implicit" :
			    "starttls");
			opened++;
		}
	}
	free(copy);
	if (!ok) {
		close_listeners(ls + n, opened);
		return -1;
	}
	return n + opened;
}

/*
 * Opens every listener the settings name (LMTP, IMAP, IMAPS, SMTP, the
 * replication port, HTTP) into ls.  Returns their count, or -1 after saying
 * why, with none left open.
 */
static int
open_all_listeners(const struct daemon *dm, struct listener *ls)
{
	const struct settings	*set = dm->settings;
	const struct {
		const char		*specs;
		const struct proto_ops	*ops;
		int			 tls;
		int			(*tls_of)(const char *spec);
	} kinds[] = {
		{ set->lmtp, &lmtp_proto, 0, NULL },
		{ set->imap, &imap_proto, 0, NULL },
		{ set->imaps, &imap_proto, 1, NULL },
		{ set->smtp, &smtp_proto, 0, NULL },
		{ set->repl_listen, &sync_master_proto, 0, NULL },
		{ set->http, &http_proto, 0, web_spec_tls },
	};
	size_t	 i;
	int	 n = 0, m;

	for (i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
		if ((m = open_listeners(kinds[i].specs, kinds[i].ops, ls, n,
		    kinds[i].tls, kinds[i].tls_of, dm)) < 0) {
			close_listeners(ls, n);
			return -1;
		}
		n = m;
	}
	return n;
}

/*
 * Shortens the poll timeout *t to end when the earliest timer a session
 * asked for (server_timer) is due, so that a held reply goes out on
 * time, not at the next whole-second tick.
 */
static void
wait_for_timer(const struct server *srv, struct timespec *t)
{
	int64_t	 left, now = server_clock_ms();

	if (srv->timer_ms == 0)
		return;
	left = srv->timer_ms > now ? srv->timer_ms - now : 0;
	if (left < (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000) {
		t->tv_sec = (time_t)(left / 1000);
		t->tv_nsec = (long)(left % 1000) * 1000000;
	}
}

/*
 * Whether the wake-up asked with server_timer() is due; a due one is
 * cleared here, before this iteration's steps, so that a step asking to
 * run again at once (or a session's later deadline) is never lost to
 * the wake that serves this one.
 */
static int
timer_due(struct server *srv)
{
	if (srv->timer_ms == 0 || srv->now_ms < srv->timer_ms)
		return 0;
	srv->timer_ms = 0;
	return 1;
}

/*
 * Installs the handlers and blocks the stop signals outside ppoll(), so
 * that a signal can never slip in between the check and the wait.
 */
static void
setup_signals(sigset_t *waitmask)
{
	struct sigaction	 sa;
	sigset_t		 block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/*
	 * Past a file-size limit (RLIMIT_FSIZE) a write fails with EFBIG
	 * when SIGXFSZ is ignored; by default the signal kills the server.
	 * The store and the spool treat EFBIG as a full disk.
	 */
	sigaction(SIGXFSZ, &sa, NULL);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = on_reload_signal;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_promote_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, waitmask);
}

/* SIGHUP: reads the TLS certificate and key again; open sessions keep
   the ones they began with. */
static void
reload_tls(void)
{
	char	 err[512];

	reload_signal = 0;
	if (tls_reload(err, sizeof(err)) < 0)
		log_error("tls.reload", "msg=%s", log_quote(err));
}

static long
drain_ms(const struct drain *dr)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - dr->start.tv_sec) * 1000 +
	    (now.tv_nsec - dr->start.tv_nsec) / 1000000;
}

/*
 * SIGUSR2: the request `mailrepd demote` left in the data directory
 * (control.h).  Not during a drain: the node is on its way out, and the
 * drain's own report is what a failover goes by.
 */
static void
demote(struct server *srv, const struct drain *dr)
{
	char	 spec[SYNC_UPSTREAM_MAX + 1], secret[4096];

	demote_signal = 0;
	if (control_demote_request(srv->settings->data_dir, spec, sizeof(spec),
	    secret, sizeof(secret)) < 0)
		return;
	if (dr->phase != DRAIN_NONE) {
		log_warn("sync.demote", "master=%s msg=\"draining: not "
		    "demoted\"", log_quote(spec));
		return;
	}
	(void)sync_demote(srv, spec, secret[0] != '\0' ? secret :
	    srv->settings->repl_secret_file);
}

/* Step 1 of a drain: listeners closed at once, new connections refused. */
static void
drain_begin(struct server *srv, struct drain *dr, struct listener *ls,
    int *nls)
{
	struct session	*s;
	unsigned	 nrep = 0;

	clock_gettime(CLOCK_MONOTONIC, &dr->start);
	dr->phase = DRAIN_SESSIONS;
	dr->sessions = 0;
	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->ops->drain != NULL)
			dr->sessions++;
		else
			nrep++;
	close_listeners(ls, *nls);
	log_info("drain.start", "listeners=%d sessions=%u repl_sessions=%u "
	    "timeout=%ld", *nls, dr->sessions, nrep,
	    srv->settings->drain_timeout);
	*nls = 0;
}

/*
 * Steps 2 and 3, once per loop iteration after the group commit: client
 * sessions finish and leave, then connected replicas catch up, within
 * drain_timeout.
 */
static void
drain_step(struct server *srv, struct drain *dr)
{
	unsigned	 busy = server_drain(srv), nrep = 0;
	long		 ms = drain_ms(dr);
	int		 caught_up;

	if (dr->phase == DRAIN_SESSIONS && busy == 0) {
		log_info("drain.sessions", "closed=%u ms=%ld", dr->sessions,
		    ms);
		dr->phase = DRAIN_REPLICAS;
	}
	caught_up = sync_all_caught_up(srv, &nrep);
	if (dr->phase == DRAIN_REPLICAS && caught_up) {
		log_info("drain.replicas", "connected=%u caught_up=%u "
		    "head=%lld ms=%ld", nrep, nrep,
		    (long long)store_replog_head(srv->store), ms);
		dr->phase = DRAIN_DONE;
	} else if (ms >= srv->settings->drain_timeout * 1000) {
		dr->timed_out = 1;
		dr->cut = dr->phase == DRAIN_SESSIONS ? busy : 0;
		log_warn("drain.timeout", "sessions_cut=%u replicas=%u "
		    "caught_up=%s ms=%ld", dr->cut, nrep, caught_up ? "yes" :
		    "no", ms);
		dr->phase = DRAIN_DONE;
	}
}

/* Step 4: each --shutdown-command line through /bin/sh -c, in order. */
static void
run_shutdown_commands(const char *list, const sigset_t *origmask)
{
	char	*copy, *cmd, *save = NULL;
	pid_t	 pid;
	int	 status, n = 0, failed = 0;

	if (list == NULL || (copy = strdup(list)) == NULL)
		return;
	for (cmd = strtok_r(copy, "\n", &save); cmd != NULL;
	    cmd = strtok_r(NULL, "\n", &save)) {
		n++;
		status = -1;
		if ((pid = fork()) == 0) {
			sigprocmask(SIG_SETMASK, origmask, NULL);
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		if (pid > 0)
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
		log_info("drain.command", "cmd=%s status=%d", log_quote(cmd),
		    pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	free(copy);
	log_info("drain.commands", "run=%d failed=%d", n, failed);
}

/*
 * After the drain loop: records and reports the replicas, closes what is
 * left, runs the shutdown commands, checkpoints the WAL.  Returns the
 * exit status (control.h).
 */
static int
drain_finish(struct server *srv, struct drain *dr, const sigset_t *origmask)
{
	unsigned	 behind;
	int		 status;

	behind = sync_drain_report(srv);
	log_info("drain.report", "replicas_behind=%u head=%lld", behind,
	    (long long)store_replog_head(srv->store));
	server_close_all(srv);
	if (store_txn_open(srv->store))
		(void)store_commit(srv->store);
	run_shutdown_commands(srv->settings->shutdown_command, origmask);
	status = behind > 0 ? EXIT_REPLICA_BEHIND : dr->timed_out &&
	    dr->cut > 0 ? EXIT_DRAIN_TIMEOUT : EXIT_DRAINED;
	/* The clean-shutdown marker, before the checkpoint carries it. */
	log_info("drain.marker", "ok=%s status=%d head=%lld",
	    store_shutdown_record(srv->store, time(NULL), status) == STORE_OK &&
	    store_commit(srv->store) == STORE_OK ? "yes" : "no", status,
	    (long long)store_replog_head(srv->store));
	log_info("drain.checkpoint", "ok=%s", store_checkpoint(srv->store) ==
	    STORE_OK ? "yes" : "no");
	log_info("drain.done", "status=%d ms=%ld", status, drain_ms(dr));
	return status;
}

/*
 * Runs the n sessions polled (pfd[i] for owner[i]).  Each readable one
 * reads once; then those with at most one command and no reply queued
 * run (an interactive client's next command), then the backlogged ones
 * (session_backlogged) until LOOP_STEP_MS has passed.  The rest wait for
 * the next iteration, which starts after the last one run (*turn), so
 * that many busy sessions together cannot hold the loop and each gets
 * its turn.
 */
static void
run_sessions(struct pollfd *pfd, struct session **owner, size_t n,
    size_t *turn)
{
	int64_t	 end;
	size_t	 i, k;
	int	 queued;

	for (i = 0; i < n; i++)
		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			pfd[i].revents = session_read(owner[i]) ? POLLIN : 0;
	end = server_clock_ms() + LOOP_STEP_MS;
	for (queued = 0; queued < 2; queued++)
		for (k = 0; k < n; k++) {
			i = (*turn + k) % n;
			if (pfd[i].fd < 0 ||
			    session_backlogged(owner[i]) != queued)
				continue;
			if (queued && server_clock_ms() >= end) {
				*turn = i;
				return;
			}
			pfd[i].fd = -1;		/* run once */
			if (pfd[i].revents != 0 ||
			    session_wants_processing(owner[i]))
				session_process(owner[i]);
		}
}

/*
 * The loop's longest iteration since the last report: wall time (what
 * every session waited) and the thread's CPU time in it (the rest was
 * a sync, or the machine giving the loop no CPU); and the iteration that
 * took the most CPU time, with the part of it that took the most time
 * (the names given to watch_mark).  The thread's CPU clock is a system
 * call (no vDSO has it), so it is read once an iteration, at its end,
 * which is the next one's start (its CPU time then includes the poll's,
 * the loop's too); the parts are timed by the monotonic clock, which
 * costs none: a part's wall time bounds its CPU time, and the part that
 * held a costly iteration is the one that took its time (11 reads an
 * iteration took ~10% of an LMTP delivery's CPU, bench/RESULTS.md).
 */
struct loop_watch {
	long long	 wall_us, cpu_us;	/* at the iteration's start */
	long long	 cpu_end;		/* at the last one's end, or 0 */
	long long	 mark_us;		/* wall time at the last mark */
	long long	 top_us;		/* the iteration's longest part */
	const char	*top;
	long long	 worst_wall, worst_cpu;	/* microseconds */
	long long	 max_cpu;		/* the costliest iteration's */
	const char	*max_in;
	long		 iterations;
};

static long long
thread_cpu_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
watch_begin(struct loop_watch *w)
{
	w->wall_us = w->mark_us = log_clock_us();
	w->cpu_us = w->cpu_end != 0 ? w->cpu_end : thread_cpu_us();
	w->top_us = -1;
	w->top = "-";
}

/* The time since the last mark was the iteration's part `what`. */
static void
watch_mark(struct loop_watch *w, const char *what)
{
	long long	 now = log_clock_us();

	if (now - w->mark_us > w->top_us) {
		w->top_us = now - w->mark_us;
		w->top = what;
	}
	w->mark_us = now;
}

/*
 * Keeps the iteration begun at watch_begin() if it is the worst; once a
 * second (report), logs the worst when its wall time passed LOOP_SLOW_MS
 * or the costliest one's CPU time passed LOOP_SLOW_CPU_MS, so that an
 * iteration that held the loop is in the log, at most a line a second.
 */
static void
watch_end(struct loop_watch *w, int report)
{
	long long	 wall = log_clock_us() - w->wall_us;
	long long	 cpu;

	w->cpu_end = thread_cpu_us();
	cpu = w->cpu_end - w->cpu_us;
	w->iterations++;
	if (wall > w->worst_wall) {
		w->worst_wall = wall;
		w->worst_cpu = cpu;
	}
	if (cpu > w->max_cpu) {
		w->max_cpu = cpu;
		w->max_in = w->top;
	}
	if (!report)
		return;
	if (w->worst_wall >= LOOP_SLOW_MS * 1000 ||
	    w->max_cpu >= LOOP_SLOW_CPU_MS * 1000)
		log_info("loop.slow", "ms=%lld cpu_ms=%lld iterations=%ld "
		    "max_cpu_ms=%lld in=%s", w->worst_wall / 1000,
		    w->worst_cpu / 1000, w->iterations, w->max_cpu / 1000,
		    w->max_in != NULL ? w->max_in : "-");
	w->worst_wall = w->worst_cpu = w->max_cpu = 0;
	w->iterations = 0;
}

/*
 * The event loop: runs until a stop signal, or the end of a SIGQUIT
 * drain.  Each iteration polls, reads and runs commands, commits the
 * store once, writes, and reaps.
 */
static void
event_loop(struct server *srv, struct listener *ls, int nls,
    const sigset_t *waitmask, struct drain *dr)
{
	struct pollfd	*pfd = NULL;
	struct session	**owner = NULL, *s;
	struct timespec	 timeout;
	struct loop_watch watch = { 0 };
	size_t		 cap = 0, n, i, nfixed;
	time_t		 last_tick = 0;
	long		 wait_ms, hold_ms;
	int64_t		 index_at;
	size_t		 turn = 0;
	int		 busy, timer_fired;

	while (!stop_signal && quit_signals < 2 && dr->phase != DRAIN_DONE) {
		if (quit_signals == 1 && dr->phase == DRAIN_NONE)
			drain_begin(srv, dr, ls, &nls);
		nfixed = (size_t)nls + 1;
		if (pfd == NULL || cap < nfixed + srv->nsessions) {
			cap = nfixed + srv->nsessions + 64;
			free(pfd);
			free(owner);
			pfd = calloc(cap, sizeof(*pfd));
			owner = calloc(cap, sizeof(struct session *));
			if (pfd == NULL || owner == NULL) {
				log_error("loop", "msg=\"out of memory\"");
				break;
			}
		}
		busy = 0;
		server_account(srv);
		for (n = 0; n < (size_t)nls; n++) {
			pfd[n].fd = ls[n].fd;
			pfd[n].events = POLLIN;
			owner[n] = NULL;
		}
		pfd[n].fd = auth_fd();		/* password check results */
		pfd[n].events = POLLIN;
		owner[n++] = NULL;
		for (s = srv->sessions; s != NULL; s = s->next, n++) {
			pfd[n].fd = s->fd;
			pfd[n].events = session_poll_events(s);
			owner[n] = s;
			busy |= session_wants_processing(s);
		}
		wait_ms = busy ? 0 : dr->phase != DRAIN_NONE ? 50 : 1000;
		hold_ms = server_hold_wait_ms(srv);
		if (hold_ms >= 0 && hold_ms < wait_ms)
			wait_ms = hold_ms;	/* a held reply times out */
		timeout.tv_sec = wait_ms / 1000;
		timeout.tv_nsec = wait_ms % 1000 * 1000 * 1000;
		wait_for_timer(srv, &timeout);
		if (ppoll(pfd, n, &timeout, waitmask) < 0 && errno != EINTR) {
			log_error("loop", "msg=%s", log_quote(strerror(errno)));
			break;
		}
		server_clock(srv);
		timer_fired = timer_due(srv);
		watch_begin(&watch);
		if (reload_signal)
			reload_tls();
		if (pfd[nls].revents & POLLIN)
			server_auth_results(srv);
		for (i = 0; i < (size_t)nls; i++)
			if (pfd[i].revents & POLLIN)
				(ls[i].tls ? server_accept_tls :
				    server_accept)(srv, ls[i].fd, ls[i].ops);
		watch_mark(&watch, "accept");
		run_sessions(pfd + nfixed, owner + nfixed, n - nfixed, &turn);
		watch_mark(&watch, "sessions");
		/*
		 * Deleted mail's blobs, what a COPY cut off copied, and the
		 * replication log's records no one needs go a bounded batch
		 * an iteration, in the group commit: while a big STORE or
		 * MOVE runs, the purge follows it without a commit (and a
		 * sync) of its own each iteration.
		 */
		if (store_gc_step(srv->store) | store_copy_sweep(srv->store))
			server_timer(srv, srv->now_ms);
		watch_mark(&watch, "gc");
		if (sync_purge_step(srv))
			server_timer(srv, srv->now_ms);
		watch_mark(&watch, "purge");
		server_commit(srv);
		watch_mark(&watch, "commit");
		if (promote_signal) {
			promote_signal = 0;
			(void)sync_promote(srv);
		}
		if (demote_signal)
			demote(srv, dr);
		if (dr->phase != DRAIN_NONE)
			drain_step(srv, dr);
		for (s = srv->sessions; s != NULL; s = s->next)
			if (session_has_output(s))
				session_on_writable(s);
		watch_mark(&watch, "write");
		if (srv->now != last_tick) {
			watch_end(&watch, 1);
			watch_begin(&watch);	/* the tick's own work */
			last_tick = srv->now;
			server_timeouts(srv);
			store_poll_others(srv->store);	/* `mailrepd user` */
			store_room_tick(srv->store);	/* a full disk */
			server_wake(srv);
			sync_tick(srv);
		} else if (timer_fired)
			server_wake(srv);
		watch_mark(&watch, "tick");
		/*
		 * SEARCH's index follows delivery, a batch at a time, in a
		 * transaction of its own (committed below): what fails
		 * there never takes a client's work with it.  It runs once
		 * the replies of the commit are on their way, so that no
		 * client waits for it.
		 */
		if ((index_at = search_index_step(srv->store,
		    srv->now_ms)) != 0)
			server_timer(srv, index_at);
		watch_mark(&watch, "index");
		/*
		 * What the timers and the index wrote (a delayed reply's
		 * change) commits now: no write transaction may stay open
		 * across ppoll, where it would hold the store's lock from
		 * every other process for up to a second.
		 */
		if (store_txn_open(srv->store))
			server_commit(srv);
		watch_mark(&watch, "commit");
		server_reap(srv);
		watch_mark(&watch, "reap");
		watch_end(&watch, 0);
	}
	free(pfd);
	free(owner);
}

/*
 * A store that is a copy of another (a raw copy of the data directory,
 * or anything without its identity marker) starts as a new incarnation:
 * logged, so that an operator knows why its replicas reconcile.
 */
static int
serve_incarnation(struct store *st, const char *dir)
{
	struct store_node	 me;
	char			 id[NODE_ID_LEN * 2 + 1];
	int			 renewed;

	if (store_incarnation(st, dir, 0, &renewed) != STORE_OK ||
	    store_node_get(st, &me) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot check the identity of the "
		    "store in '%s'\n", dir);
		return -1;
	}
	if (renewed) {
		crypto_hex(me.node_id, NODE_ID_LEN, id);
		log_warn("store.copy", "data=%s node=%s role=%s msg=\"this "
		    "store is a copy (its identity marker is missing or "
		    "another file): new node id and epoch; its replicas "
		    "compare with it in full\"", log_quote(dir), id, me.role);
	}
	return 0;
}

static void
serve_usage(FILE *f)
{
	fprintf(f, "usage: mailrepd [serve] [--config FILE] [--key VALUE "
	    "...]\n\nRuns the server in the foreground, logging to stderr.  "
	    "It is ready when\nits ports accept.  SIGQUIT drains it (exit 0: "
	    "every replica has everything,\n3: a replica is behind, 4: the "
	    "drain timeout cut sessions off, 5: a second\nSIGQUIT or SIGTERM "
	    "cut the drain short); SIGTERM or SIGINT stop it at once;\n"
	    "SIGUSR1 promotes a replica, SIGUSR2 demotes (mailrepd demote).  "
	    "The pid\nis in DIR/mailrepd.pid; one server per DIR (a second "
	    "exits 2).  Started as\nroot with --run-as-user, it becomes that "
	    "user once its ports are bound.\n\n");
	settings_usage(f);
}

/*
 * `mailrepd serve`, and with dev_mode `mailrepd dev` (see dev.h): returns
 * the exit status.
 */
static int
cmd_serve(int argc, char **argv, int first, int dev_mode)
{
	struct cmd_option	 opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct server		 srv;
	struct listener		 ls[MAX_LISTENERS];
	sigset_t		 waitmask;
	char			 err[512];
	struct dev		*dev = NULL;
	struct drain		 dr;
	struct daemon		 dm;
	int			 nls, n, i, npos = 0, rc = 1, pidfile = 0;

	memset(&srv, 0, sizeof(srv));
	memset(&dr, 0, sizeof(dr));
	memset(&dm, 0, sizeof(dm));
	dm.lock_fd = -1;
	if (dev_mode) {
		if ((n = dev_setup(&set, argc, argv, &dev)) != 0) {
			rc = n > 0 ? 0 : 2;
			goto out;
		}
	} else if (settings_parse(&set, argc, argv, first, opts, 1, NULL,
	    &npos) < 0)
		goto out2;
	if (opts[0].value != NULL) {
		serve_usage(stdout);
		rc = 0;
		goto out;
	}
	if (set.syslog)
		log_use_syslog("mailrepd");
	log_set_level(set.log_level);
	if (set.lmtp == NULL && set.imap == NULL && set.smtp == NULL &&
	    set.imaps == NULL && set.repl_listen == NULL &&
	    set.http == NULL && set.replicate_from == NULL) {
		fprintf(stderr, "mailrepd: nothing to serve: give at least "
		    "one listener (--lmtp ADDR:PORT, --imap ADDR:PORT)\n");
		goto out2;
	}
	/* Nothing is created or bound before the lock is ours. */
	if (web_setup(&set) < 0 || daemon_prepare(&set, &dm) < 0 ||
	    (nls = open_all_listeners(&dm, ls)) < 0)
		goto out2;
	if (daemon_drop(&dm) < 0) {
		close_listeners(ls, nls);
		goto out2;
	}
	if (store_open(set.data_dir, &srv.store) != STORE_OK) {
		fprintf(stderr, "mailrepd: setting 'data': cannot open the "
		    "store in '%s'\n", set.data_dir);
		close_listeners(ls, nls);
		goto out2;
	}
	if (serve_incarnation(srv.store, set.data_dir) < 0) {
		close_listeners(ls, nls);
		goto out;
	}
	if (dev != NULL && dev_store(dev, srv.store) < 0) {
		close_listeners(ls, nls);
		goto out;
	}
	srv.dev = dev != NULL;
	srv.settings = &set;
	server_clock(&srv);
	srv.hold.head = store_replog_head(srv.store);
	if (tls_init(set.tls_cert, set.tls_key, set.data_dir, set.name, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "mailrepd: %s\n", err);
		close_listeners(ls, nls);
		goto out2;
	}
	if (sync_setup(&srv) < 0) {
		close_listeners(ls, nls);
		goto out2;
	}
	/* The last clean-shutdown marker no longer describes this store. */
	if (store_shutdown_stale(srv.store, srv.now) != STORE_OK ||
	    store_commit(srv.store) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot update the store in '%s'\n",
		    set.data_dir);
		close_listeners(ls, nls);
		goto out;
	}
	setup_signals(&waitmask);
	store_nowait(srv.store);	/* the loop never sleeps on a lock */
	if (store_checkpointer_start(srv.store) < 0) {
		fprintf(stderr, "mailrepd: cannot start the WAL "
		    "checkpointer\n");
		close_listeners(ls, nls);
		goto out;
	}
	store_set_max_messages(srv.store, set.max_messages);
	if (!set.search_index)
		store_fts_disable(srv.store);
	store_set_quota(srv.store, &(struct store_usage){
	    (uint64_t)set.quota_messages, (uint64_t)set.quota_storage });
	/* A throw-away dev store keeps no reserve (it may be on a tmpfs). */
	store_room_reserve(srv.store, srv.dev ? 0 : set.disk_reserve);
	if (auth_start() < 0) {
		fprintf(stderr, "mailrepd: cannot start the password checker: "
		    "%s\n", strerror(errno));
		close_listeners(ls, nls);
		goto out;
	}
	pidfile = control_write_pid(set.data_dir) == 0;
	log_info("serve.ready", "name=%s data=%s version=%s",
	    log_quote(set.name), log_quote(set.data_dir), MAILREPD_VERSION);
	for (i = 0; dev != NULL && i < nls; i++)
		dev_listener(dev, ls[i].tls && ls[i].ops == &imap_proto ?
		    "imaps" : ls[i].ops->name, ls[i].fd);
	if (dev != NULL)
		dev_ready(dev);
	event_loop(&srv, ls, nls, &waitmask, &dr);
	if (dr.phase == DRAIN_DONE) {
		rc = drain_finish(&srv, &dr, &waitmask);
		goto out;
	}
	log_info("serve.stop", "signal=%d quit=%d sessions=%u draining=%s",
	    (int)stop_signal, (int)quit_signals, srv.nsessions,
	    dr.phase != DRAIN_NONE ? "cut-short" : "no");
	if (dr.phase == DRAIN_NONE)
		close_listeners(ls, nls);
	server_close_all(&srv);
	/* A SIGTERM with the SIGQUIT cut the drain short before it began. */
	rc = dr.phase != DRAIN_NONE || quit_signals > 0 ?
	    EXIT_DRAIN_INTERRUPTED : 0;
	goto out;
out2:
	rc = 2;
out:
	auth_stop();
	tls_shutdown();
	web_auth_shutdown();
	store_close(srv.store);
	if (pidfile)
		control_exit(set.data_dir, rc);
	daemon_release(&dm);
	dev_finish(dev);
	settings_free(&set);
	return rc;
}

static int
cmd_serve_main(int argc, char **argv)
{
	return cmd_serve(argc, argv, 2, 0);
}

static int
cmd_dev_main(int argc, char **argv)
{
	return cmd_serve(argc, argv, 2, 1);
}

static const struct {
	const char	*name;
	int		(*run)(int, char **);
	const char	*help;
} commands[] = {
	{ "serve", cmd_serve_main, "run the server (the default)" },
	{ "dev", cmd_dev_main, "a throw-away server for development and CI" },
	{ "messages", messages_main, "list or show what arrived (--json)" },
	{ "wait", messages_wait, "wait until N messages have arrived" },
	{ "user", admin_user, "add, del, passwd, list users" },
	{ "check", admin_check, "check the store and every message's GUID" },
	{ "index", search_index_main, "SEARCH's full-text index: status, "
	    "rebuild" },
	{ "backup", backup_main, "copy the store, also while it runs" },
	{ "restore", restore_main, "make a backup a store again, as a new "
	    "incarnation" },
	{ "import", mailio_import, "import a Maildir or an mbox file" },
	{ "export", mailio_export, "export mailboxes as Maildir" },
	{ "status", sync_status, "replication status: role, log, replicas" },
	{ "drain", control_drain, "drain the running server (SIGQUIT), wait" },
	{ "promote", control_promote, "make the running replica a master" },
	{ "demote", control_demote, "make a node a replica of another master" },
	{ "conflicts", conflicts_main, "list, show and resolve GUID conflicts" },
	{ "quarantine", quarantine_main, "list, show and restore what a "
	    "replica deleted" },
	{ "replica", sync_replica_main, "resume a replica the delete guard "
	    "paused; forget one gone for good" },
};

static void
usage(FILE *f)
{
	size_t	 i;

	fprintf(f, "usage: mailrepd [COMMAND] [--key VALUE ...]\n\n"
	    "mailrepd %s: a mail store with LMTP delivery, in one SQLite "
	    "database.\n\nCommands:\n", MAILREPD_VERSION);
	for (i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'mailrepd COMMAND --help' describes each.\n\n");
	settings_usage(f);
}

int
main(int argc, char **argv)
{
	size_t	 i;

	/* The store, its WAL, the pid file, certificates, spool files. */
	umask(SERVE_UMASK);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("mailrepd %s\n", MAILREPD_VERSION);
		return 0;
	}
	if (argc < 2 || strncmp(argv[1], "--", 2) == 0)
		return cmd_serve(argc, argv, 1, 0);
	for (i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc, argv);
	fprintf(stderr, "mailrepd: unknown command '%s' (see mailrepd "
	    "--help)\n", argv[1]);
	return 2;
}
