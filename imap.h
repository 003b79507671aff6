/*
 * imap.h — the IMAP4rev1 server (RFC 3501) on top of the session layer.
 */
#ifndef MAILREPD_IMAP_H
#define MAILREPD_IMAP_H

#include "proto.h"

/* The handlers a listener passes to server_accept(). */
extern const struct proto_ops imap_proto;

#endif /* MAILREPD_IMAP_H */
