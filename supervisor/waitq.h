/* waitq: jobs waiting for a worker, in arrival order, each with the same
 * wait bound counted from when it first waited (a job moved on from
 * another waitq keeps its deadline and its place by arrival): so the head
 * always has the earliest deadline and one timer (a lazytimer) serves
 * them all. The owner may keep jobs in queues of its own too (the job's
 * q link); this queue uses the job's all link. */
#ifndef ARBOR_WAITQ_H
#define ARBOR_WAITQ_H
#include <ev.h>
#include <stdbool.h>

#include "supervisor/job.h"
#include "supervisor/lazytimer.h"

/* Called for a job whose wait expired, already out of the waitq; the
 * owner unlinks it from its own queue and fails it. */
typedef void waitq_expired_fn(struct job *, void *arg);

struct waitq {
	struct job_queue	 all;
	size_t			 n, max;
	double			 timeout_s;
	struct lazytimer	 timer;	/* by the head's deadline */
	waitq_expired_fn	*expired;
	void			*arg;
};

void	waitq_init(struct waitq *, int timeout_ms, int max,
	    waitq_expired_fn *, void *arg);
void	waitq_release(struct waitq *);	/* stops the timer; jobs stay */
void	waitq_configure(struct waitq *, int timeout_ms, int max);
bool	waitq_full(const struct waitq *);
void	waitq_add(struct waitq *, struct job *);
void	waitq_remove(struct waitq *, struct job *);
static inline struct job *waitq_first(struct waitq *q) { return TAILQ_FIRST(&q->all); }

#endif
