/* session: session -> worker bindings (SPEC 6 affinity), with idle expiry.
 * Lookups are O(1) (hash), expiry walks only the expired (LRU order), and
 * a lost worker drops exactly its own bindings (a list per worker). */
#ifndef ARBOR_SESSION_H
#define ARBOR_SESSION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct binding;
LIST_HEAD(binding_list, binding);

/* Embedded in whatever a session binds to (a pool worker). */
struct child;
struct sess_anchor;

/* Told when an anchor's last bound session has left it (ended, expired,
 * moved to another anchor or dropped with it), from inside the table's
 * call: it must not call the table back. */
typedef void sess_unbound_fn(struct sess_anchor *);

struct sess_anchor {
	struct binding_list	list;
	size_t			n;	/* bound sessions */
	void			*worker;	/* the owner's view of the worker */
	struct child		*child;		/* told cleanup_session */
	sess_unbound_fn		*unbound;	/* n came to 0 (NULL: none) */
};

struct sessions;

/* Called for each session that expires (ttl idle); a is its anchor. */
typedef void sess_expire_fn(void *arg, const char *id, struct sess_anchor *a);

/* Sessions idle longer than ttl_ms end by themselves (fn is told; *count
 * counts them); ttl_ms 0: never. *made counts the sessions requests made
 * (sess_begin). Either counter may be NULL. */
struct sessions *sess_new(long ttl_ms, sess_expire_fn *fn, void *arg,
	    unsigned long *count, unsigned long *made);
void	sess_set_ttl(struct sessions *, long ttl_ms);
/* The table's sessions were handed on (sess_inherit) to the table that
 * ends them now: this one ends none by ttl any more, whatever ttl it is
 * set later, so that none is ended (and counted) twice. NULL is fine. */
void	sess_retire(struct sessions *);
void	sess_free(struct sessions *);

/* A session exists once a request of it is served (sess_begin). One whose
 * requests only wait (sess_hold) is pending: not counted, not ended by
 * sess_end, not inherited, and gone when the last of them stops waiting
 * unserved (sess_finish), so a refused request leaves nothing behind. */

/* The anchor a session is bound to (NULL: none, pending, or its worker
 * was lost). Touches the session's idle clock; unknown sessions are
 * created unbound (for a table's own copy, as sess_inherit's). */
struct sess_anchor *sess_lookup(struct sessions *, const char *id,
	    double now, bool *created);
/* The same without creating: NULL for unknown ids too. */
struct sess_anchor *sess_find(struct sessions *, const char *id, double now);
/* Binds (or rebinds) a known session to a; true if that is a change. */
bool	sess_bind(struct sessions *, const char *id, struct sess_anchor *a);
/* A request of the session goes to the worker of a / has ended (replied
 * or failed): a session with requests at a worker is not idle, and its
 * idle clock restarts when the last one ends. sess_begin makes an unknown
 * or pending session (counted in *made); sess_finish ignores unknown ids.
 * sess_begin also does sess_bind's work (*rebound: its result) and
 * sess_take_reset's (its result), in one lookup; a session it moves off
 * the worker of another anchor has that worker sent cleanup_session. A request is counted by
 * one session: *gen names it (0: none), as sess_hold or sess_begin set
 * it, so that a request is not counted twice, and one counted by a
 * session that has ended since does not end the wait or the time at a
 * worker of another session made anew under the same id. */
bool	sess_begin(struct sessions *, const char *id, struct sess_anchor *a,
	    uint64_t *gen, bool *rebound);
/* A request of the session waits for a worker: the session is not idle
 * meanwhile either; sess_finish ends the wait, or sess_begin turns it
 * into the request's time at a worker. An unknown session is made
 * pending. Returns the gen. */
uint64_t sess_hold(struct sessions *, const char *id);
void	sess_finish(struct sessions *, const char *id, uint64_t gen,
	    double now);
/* True, once, when the session's worker was lost since it was last told. */
bool	sess_take_reset(struct sessions *, const char *id);
/* The reset notice a request of the session took (sess_begin's result)
 * goes with the first reply in the session, which may be another of its
 * requests in flight (prefer: at another worker). sess_set_teller names
 * req as the request holding it; false, naming none, when one already
 * does (its notice covers this reset too) or the session is unknown.
 * sess_take_teller, at a reply of the session's request of gen, returns
 * the request holding it (NULL: none) and names none any more; gen 0, for
 * a request refused before it held the session, takes the session as it
 * is now. */
bool	sess_set_teller(struct sessions *, const char *id, void *req);
void	*sess_take_teller(struct sessions *, const char *id, uint64_t gen);
/* sess_take_reset for a reply of the session's request of gen: a notice
 * due since its worker was lost that no request has taken yet (none was
 * sent since) goes with the reply of one sent before the loss, still in
 * flight at another worker (prefer), the next reply in the session. gen
 * 0 is a request that holds no session yet (refused before it waits): the
 * session as it is now. No lookup while no session has one due. */
bool	sess_take_due(struct sessions *, const char *id, uint64_t gen);
/* Ends a session; returns the anchor it was bound to (may be NULL) via
 * *a, false when there was no such session (or only a pending one). */
bool	sess_end(struct sessions *, const char *id, struct sess_anchor **a);
/* Ends every session as sess_end does (not the pending ones, which
 * their waiting requests keep): fn is told each, with its anchor (may be
 * NULL), before it ends. None is counted in sess_new's *count: they did
 * not expire. */
void	sess_end_all(struct sessions *, sess_expire_fn *fn, void *arg);
/* A worker is gone: its sessions become unbound and will be told reset. */
void	sess_drop_anchor(struct sessions *, struct sess_anchor *);
size_t	sess_count(const struct sessions *);
/* Copies every session of from used at or after since (0: all) into to,
 * unbound and due to be told reset, with its idle clock: for the table of
 * a subtree that replaces from's workers at a reload (their state is
 * gone). NULL tables are fine. */
void	sess_inherit(struct sessions *to, const struct sessions *from,
	    double since);

/* A sess_expire_fn for routers: the session's worker (a->child) gets
 * cleanup_session. */
void	sess_notify_cleanup(void *arg, const char *id, struct sess_anchor *a);
/* Ends a session and tells its worker; false if there was none. */
bool	sess_end_notify(struct sessions *, const char *id);

#endif
