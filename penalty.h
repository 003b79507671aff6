/*
 * penalty.h — a growing delay for failed logins, per client address.
 *
 * Every failed login from an address doubles the delay before its next
 * refusal is sent, from IMAP_AUTH_FAIL_DELAY_MS up to
 * AUTH_FAIL_MAX_DELAY_MS milliseconds; a successful login from the
 * address, or AUTH_FAIL_FORGET seconds without a failure, forgets it.
 * Times are milliseconds of the server's monotonic clock (now_ms).  At most AUTH_FAIL_ADDRESSES
 * addresses are remembered; past that the one idle longest makes room.
 * The port is not part of the address, so reconnecting does not help.
 */
#ifndef MAILREPD_PENALTY_H
#define MAILREPD_PENALTY_H

#include <stdint.h>

/*
 * Records a failed login from peer ("ADDR:PORT", "[V6]:PORT" or "unix")
 * at now_ms; returns the milliseconds to hold the refusal.
 */
unsigned	penalty_fail(const char *peer, int64_t now_ms);

/* Forgets peer's address after a successful login. */
void		penalty_clear(const char *peer);

/* Failures remembered for peer's address at now_ms (tests and logs). */
unsigned	penalty_count(const char *peer, int64_t now_ms);

/* Forgets every address. */
void		penalty_reset(void);

#endif /* MAILREPD_PENALTY_H */
