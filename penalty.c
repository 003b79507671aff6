/*
 * penalty.c — per-address failed-login delays (see penalty.h).
 *
 * A fixed table, searched linearly: AUTH_FAIL_ADDRESSES entries of a
 * few dozen bytes, looked at only when a login fails or succeeds.
 */
#include <string.h>

#include "config.h"
#include "net.h"
#include "penalty.h"

struct entry {
	char		 addr[NET_PEER_LEN];	/* "" when free */
	unsigned	 failures;
	int64_t		 last;		/* ms of the last failure */
};

static struct entry	 table[AUTH_FAIL_ADDRESSES];

static struct entry *
find(const char *addr, int64_t now)
{
	size_t	 i;

	for (i = 0; i < AUTH_FAIL_ADDRESSES; i++) {
		if (table[i].addr[0] == '\0' || strcmp(table[i].addr, addr) != 0)
			continue;
		if (now - table[i].last > (int64_t)AUTH_FAIL_FORGET * 1000) {
			table[i].addr[0] = '\0';
			return NULL;
		}
		return &table[i];
	}
	return NULL;
}

/* A free entry, or the one idle longest. */
static struct entry *
make_room(void)
{
	struct entry	*oldest = &table[0];
	size_t		 i;

	for (i = 0; i < AUTH_FAIL_ADDRESSES; i++) {
		if (table[i].addr[0] == '\0')
			return &table[i];
		if (table[i].last < oldest->last)
			oldest = &table[i];
	}
	return oldest;
}

unsigned
penalty_fail(const char *peer, int64_t now)
{
	struct entry	*e;
	char		 addr[NET_PEER_LEN];
	unsigned	 delay = IMAP_AUTH_FAIL_DELAY_MS, i;

	net_peer_address(peer, addr);
	if ((e = find(addr, now)) == NULL) {
		e = make_room();
		memcpy(e->addr, addr, sizeof(addr));
		e->failures = 0;
	}
	if (e->failures < 64)
		e->failures++;
	e->last = now;
	for (i = 1; i < e->failures && delay < AUTH_FAIL_MAX_DELAY_MS; i++)
		delay *= 2;
	return delay < AUTH_FAIL_MAX_DELAY_MS ? delay : AUTH_FAIL_MAX_DELAY_MS;
}

void
penalty_clear(const char *peer)
{
	char	 addr[NET_PEER_LEN];
	size_t	 i;

	net_peer_address(peer, addr);
	for (i = 0; i < AUTH_FAIL_ADDRESSES; i++)
		if (strcmp(table[i].addr, addr) == 0)
			table[i].addr[0] = '\0';
}

unsigned
penalty_count(const char *peer, int64_t now)
{
	struct entry	*e;
	char		 addr[NET_PEER_LEN];

	net_peer_address(peer, addr);
	return (e = find(addr, now)) != NULL ? e->failures : 0;
}

void
penalty_reset(void)
{
	memset(table, 0, sizeof(table));
}
