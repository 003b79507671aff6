/*
 * net.h — listening sockets and non-blocking socket I/O.
 */
#ifndef MAILREPD_NET_H
#define MAILREPD_NET_H

#include <stddef.h>
#include <sys/types.h>

#define NET_PEER_LEN	64

/*
 * Opens a non-blocking listening socket for "ADDR:PORT", "[V6]:PORT" or
 * "unix:PATH" (a stale socket file at PATH is replaced).  TCP listeners
 * set SO_REUSEADDR.  Returns the descriptor, or -1 after writing a
 * message naming `spec` to err (errlen bytes).
 */
int	net_listen(const char *spec, char *err, size_t errlen);

/*
 * Accepts one connection, non-blocking and close-on-exec.  Returns the
 * descriptor (peer's address as text in peer) or -1 (errno EAGAIN when
 * none is waiting).
 */
int	net_accept(int lfd, char peer[NET_PEER_LEN]);

/*
 * The address part of a peer as net_accept() writes it ("ADDR:PORT",
 * "[V6]:PORT"; "unix" as it is), without the port.
 */
void	net_peer_address(const char *peer, char out[NET_PEER_LEN]);

/* Returns 1 when the socket's peer is on the loopback or a unix socket. */
int	net_is_local(int fd);

/*
 * Fixes the kernel's send buffer of a connection at bytes (the kernel
 * doubles it), instead of letting it grow up to tcp_wmem's maximum
 * (megabytes) for a client that does not read.
 */
void	net_send_buffer(int fd, int bytes);

#endif /* MAILREPD_NET_H */
