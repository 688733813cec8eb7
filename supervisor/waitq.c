#include "supervisor/waitq.h"

#define LOOP	EV_DEFAULT_UC

/* The timer fires no later than the head's deadline. It is kept lazily,
 * as libev's manual advises for timeouts that are mostly not reached: a
 * job leaving the head leaves the timer as it is (the next head's deadline
 * is later), and on_deadline re-arms it here, at the head's deadline. */
static void
arm_at(struct waitq *q, ev_tstamp at)
{
	ev_timer_stop(LOOP, &q->t);
	ev_timer_set(&q->t, at - ev_now(LOOP), 0.);
	ev_timer_start(LOOP, &q->t);
	q->at = at;
}

static void
arm(struct waitq *q)
{
	struct job *head = TAILQ_FIRST(&q->all);
	if (head)
		arm_at(q, head->deadline);
	else
		ev_timer_stop(LOOP, &q->t);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct waitq *q = w->data;
	struct job *j;
	while ((j = TAILQ_FIRST(&q->all)) != NULL && j->deadline <= ev_now(loop)) {
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
	ev_init(&q->t, on_deadline);
	q->t.data = q;
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
	ev_tstamp limit = ev_now(LOOP) + q->timeout_s;
	struct job *j;
	TAILQ_FOREACH(j, &q->all, all)
		if (j->deadline > limit)
			j->deadline = limit;
	arm(q);
}

void
waitq_release(struct waitq *q)
{
	ev_timer_stop(LOOP, &q->t);
}

bool
waitq_full(const struct waitq *q)
{
	return q->n >= q->max;
}

void
waitq_add(struct waitq *q, struct job *j)
{
	j->deadline = ev_now(LOOP) + q->timeout_s;
	TAILQ_INSERT_TAIL(&q->all, j, all);
	q->n++;
	if (!ev_is_active(&q->t) || j->deadline < q->at)
		arm_at(q, j->deadline);
}

void
waitq_remove(struct waitq *q, struct job *j)
{
	TAILQ_REMOVE(&q->all, j, all);
	q->n--;
}
