/*
 * durable.h — making a file written beside the store outlast a power
 * cut: the TLS key and certificate, the identity marker, a backup.
 * SQLite syncs its own files; these are the others.
 */
#ifndef MAILREPD_DURABLE_H
#define MAILREPD_DURABLE_H

/*
 * Puts the finished file tmp in place of path for good: tmp's data
 * synced, tmp renamed to path, and the rename synced in their directory
 * (without that, a power cut may bring back the old name or no file).
 * Returns 0, or -1 with errno set; tmp is left for the caller to remove.
 */
int	durable_replace(const char *tmp, const char *path);

#endif /* MAILREPD_DURABLE_H */
