#include "supervisor/waitq.h"

#include "supervisor/clock.h"

#define LOOP	EV_DEFAULT_UC

/* At the head's deadline, or stopped: where the timer goes when it fires.
 * Otherwise it is a lazytimer, moved only to an earlier deadline (a job
 * leaving the head leaves it as it is: the next head's deadline is later). */
static void
arm(struct waitq *q)
{
	struct job *head = TAILQ_FIRST(&q->all);
	if (head)
		lazytimer_at(&q->timer, head->deadline);
	else
		ev_timer_stop(LOOP, &q->timer.t);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct waitq *q = w->data;
	struct job *j;
	while ((j = TAILQ_FIRST(&q->all)) != NULL && j->deadline <= clock_now()) {
		TAILQ_REMOVE(&q->all, j, all);
		q->n--;
		q->expired(j, q->arg);
	}
	arm(q);
}

void
waitq_init(struct waitq *q, int timeout_ms, int max, waitq_expired_fn *fn,
    void *arg)
{
	TAILQ_INIT(&q->all);
	q->n = 0;
	q->expired = fn;
	q->arg = arg;
	waitq_configure(q, timeout_ms, max);
	ev_init(&q->timer.t, on_deadline);
	q->timer.t.data = q;
}

/* A shorter timeout applies to the jobs already waiting too: clamping
 * every deadline keeps the queue in deadline order. */
void
waitq_configure(struct waitq *q, int timeout_ms, int max)
{
	q->timeout_s = timeout_ms / 1000.0;
	q->max = (size_t)max;
	if (TAILQ_EMPTY(&q->all))
		return;
	ev_tstamp limit = clock_now() + q->timeout_s;
	struct job *j;
	TAILQ_FOREACH(j, &q->all, all)
		if (j->deadline > limit)
			j->deadline = limit;
	arm(q);
}

void
waitq_release(struct waitq *q)
{
	ev_timer_stop(LOOP, &q->timer.t);
}

bool
waitq_full(const struct waitq *q)
{
	return q->n >= q->max;
}

/* A job that waited before (in a subtree a reload replaced, or for a
 * worker it could not have) keeps the deadline it got then, as a
 * waitq_configure would clamp it: the wait is one from its arrival. By
 * arrival order the queue stays in deadline order. */
void
waitq_add(struct waitq *q, struct job *j)
{
	ev_tstamp limit = clock_now() + q->timeout_s;
	if (j->deadline == 0 || j->deadline > limit)
		j->deadline = limit;
	JOB_INSERT_BY_SEQ(&q->all, j, all);
	q->n++;
	lazytimer_by(&q->timer, j->deadline);
}

void
waitq_remove(struct waitq *q, struct job *j)
{
	TAILQ_REMOVE(&q->all, j, all);
	q->n--;
}
