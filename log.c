/*
 * log.c — greppable one-line event log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int		use_syslog;
static enum log_level	min_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

void
log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	use_syslog = 1;
}

void
log_set_level(enum log_level level)
{
	min_level = level;
}

/*
 * Formats the line into a bounded buffer and writes it with one call, so
 * that lines from several processes (server and CLI) never interleave.
 */
void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	static const int syslog_prio[] = {
		LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR
	};
	char		 line[2048];
	size_t		 n = 0;
	struct timespec	 ts;
	struct tm	 tm;
	va_list		 ap;

	if (level < min_level)
		return;
	if (!use_syslog) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
		    ts.tv_nsec / 1000000);
	}
	n += snprintf(line + n, sizeof(line) - n, "%s %s ",
	    level_names[level], event);
	va_start(ap, fmt);
	if (n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	if (use_syslog) {
		line[n] = '\0';
		syslog(syslog_prio[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}

const char *
log_quote(const char *s)
{
	static char	 bufs[4][208];
	static int	 next;
	char		*b = bufs[next++ % 4];
	size_t		 i = 0;
	int		 plain = *s != '\0';
	const char	*p;

	for (p = s; *p != '\0'; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f)
			plain = 0;
	if (plain && strlen(s) < 200)
		return s;
	b[i++] = '"';
	for (p = s; *p != '\0' && i < 200; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\')
			b[i++] = '\\', b[i++] = c;
		else if (c < ' ' || c == 0x7f)
			i += snprintf(b + i, 5, "\\x%02x", c);
		else
			b[i++] = c;
	}
	b[i++] = '"';
	b[i] = '\0';
	return b;
}

long long
log_clock_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
