/*
 * log.h — one line per event, "time level event key=value ...", to stderr
 * or syslog.  Values that may hold spaces are quoted by the caller with
 * log_quote().
 */
#ifndef MAILREPD_LOG_H
#define MAILREPD_LOG_H

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Sends later lines to syslog (facility mail) instead of stderr. */
void log_use_syslog(const char *ident);

/* Lines below this level are dropped. */
void log_set_level(enum log_level);

/*
 * Logs one event.  `event` is a dotted name ("lmtp.deliver"); fmt gives
 * the key=value pairs.
 */
void log_event(enum log_level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(ev, ...)	log_event(LOG_LEVEL_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)	log_event(LOG_LEVEL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)	log_event(LOG_LEVEL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...)	log_event(LOG_LEVEL_ERROR, ev, __VA_ARGS__)

/*
 * Returns s as a log value: as it is when it has no space, quote or
 * control byte, else in double quotes with those escaped.  The result
 * lives in one of a few static buffers and is cut at 200 bytes, so up to
 * four may be used in one log_event() call.
 */
const char *log_quote(const char *s);

/* The monotonic clock in microseconds: step budgets and durations. */
long long log_clock_us(void);

#endif /* MAILREPD_LOG_H */
