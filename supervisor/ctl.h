/* ctl: the control socket (SPEC 6). A Unix stream socket created with
 * control.mode; peers are checked with SO_PEERCRED (root or our own uid);
 * each connection reads frames, hands every request to one handler, and
 * writes replies in any order. A connection that goes away while a reply is
 * still owed is kept until the owner releases it; the reply is dropped. */
#ifndef ARBOR_CTL_H
#define ARBOR_CTL_H
#include <jansson.h>
#include <stddef.h>

#include "supervisor/config.h"

struct ctl;
struct ctl_conn;

/* Called for each request frame on conn, with its payload (borrowed, len
 * bytes, not parsed yet). The handler answers with ctl_reply or
 * ctl_reply_raw, now or later (then it holds the conn meanwhile). */
typedef void ctl_handler(struct ctl_conn *, const char *payload, size_t len,
    void *arg);

/* Binds cfg->control.socket, replacing a stale socket file but never one a
 * live arbord answers on. NULL with a reason in err on failure. */
struct ctl *ctl_open(const struct config *, ctl_handler *, void *arg,
	    char *err, size_t errlen);
/* Closes every connection, the listener, and removes the socket file. */
void	ctl_close(struct ctl *);
/* Applies a reloaded config (borrowed, kept): control.mode at once; a
 * control.socket other than the one in use is logged as waiting for a
 * restart. */
void	ctl_reconfigure(struct ctl *, const struct config *);

/* Queues one reply frame (steals reply). Dropped if conn has closed. */
void	ctl_reply(struct ctl_conn *, json_t *reply);
/* The same with the reply as JSON text (borrowed). */
void	ctl_reply_raw(struct ctl_conn *, const char *reply, size_t len);
void	ctl_hold(struct ctl_conn *);	/* keep conn while a reply is owed */
void	ctl_release(struct ctl_conn *);
size_t	ctl_nconns(const struct ctl *);
/* Reply bytes queued and not yet written, over every connection. */
size_t	ctl_unsent(const struct ctl *);

#endif
