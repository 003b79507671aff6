/*
 * lmtp.h — the LMTP server (RFC 2033) on top of the session layer.
 */
#ifndef MAILREPD_LMTP_H
#define MAILREPD_LMTP_H

#include "proto.h"

/* The handlers a listener passes to server_accept(). */
extern const struct proto_ops lmtp_proto;

/* SMTP intake (--smtp): the same session in its SMTP dialect (lmtp.c). */
extern const struct proto_ops smtp_proto;

#endif /* MAILREPD_LMTP_H */
