/*
 * net.c — sockets.  Addresses are numeric: a statically linked binary
 * must not depend on the resolver of the libc it was built against.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "net.h"

/*
 * Parses "ADDR:PORT" or "[V6]:PORT" into ss.  Returns 0 or -1.
 */
static int
parse_inet(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in	*in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)ss;
	char			 host[64], *end;
	const char		*colon;
	long			 port;
	size_t			 hlen;

	memset(ss, 0, sizeof(*ss));
	if ((colon = strrchr(spec, ':')) == NULL)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	hlen = colon - spec;
	if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']')
		spec++, hlen -= 2;
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

/* Replaces a stale unix socket file, but never any other kind of file. */
static int
unlink_stale_socket(const char *path)
{
	struct stat	 sb;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	return unlink(path);
}

int
net_listen(const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_un	*un = (struct sockaddr_un *)&ss;
	socklen_t		 len;
	int			 fd, one = 1, is_unix;

	is_unix = strncmp(spec, "unix:", 5) == 0;
	if (is_unix) {
		memset(&ss, 0, sizeof(ss));
		if (strlen(spec + 5) == 0 ||
		    strlen(spec + 5) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "'%s': bad unix socket path",
			    spec);
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, strlen(spec + 5) + 1);
		len = sizeof(*un);
		if (unlink_stale_socket(un->sun_path) < 0) {
			snprintf(err, errlen, "'%s': %s", spec,
			    strerror(errno));
			return -1;
		}
	} else if (parse_inet(spec, &ss, &len) < 0) {
		snprintf(err, errlen, "'%s' is not ADDR:PORT, [ADDR]:PORT "
		    "or unix:PATH (addresses are numeric)", spec);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(err, errlen, "'%s': socket: %s", spec,
		    strerror(errno));
		return -1;
	}
	if (!is_unix)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "'%s': %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
net_accept(int lfd, char peer[NET_PEER_LEN])
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 host[INET6_ADDRSTRLEN];
	int			 fd, one = 1;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -1;
	switch (ss.ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    host, sizeof(host));
		snprintf(peer, NET_PEER_LEN, "%s:%u", host,
		    ntohs(((struct sockaddr_in *)&ss)->sin_port));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    host, sizeof(host));
		snprintf(peer, NET_PEER_LEN, "[%s]:%u", host,
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	default:
		snprintf(peer, NET_PEER_LEN, "unix");
		break;
	}
	return fd;
}

void
net_peer_address(const char *peer, char out[NET_PEER_LEN])
{
	const char	*colon = strrchr(peer, ':');
	size_t		 n = colon != NULL ? (size_t)(colon - peer) :
			    strlen(peer);

	if (n >= NET_PEER_LEN)
		n = NET_PEER_LEN - 1;
	memcpy(out, peer, n);
	out[n] = '\0';
}

int
net_is_local(int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	const uint8_t		*a6;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	switch (ss.ss_family) {
	case AF_UNIX:
		return 1;
	case AF_INET:
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
		    24) == 127;
	case AF_INET6:
		a6 = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
		return IN6_IS_ADDR_LOOPBACK(
		    &((struct sockaddr_in6 *)&ss)->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(
		    &((struct sockaddr_in6 *)&ss)->sin6_addr) && a6[12] == 127);
	}
	return 0;
}

void
net_send_buffer(int fd, int bytes)
{
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}
