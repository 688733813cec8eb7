#include "proto/uring.h"

#include <errno.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ENTRIES		64	/* writes per system call; more take several */
#define SETUP_TRIES	8	/* set-ups failed for want of a resource */

enum ring_state { RING_UNTRIED, RING_ON, RING_OFF };

static struct {
	enum ring_state		 state;
	int			 fd;
	void			*sq_map, *cq_map;	/* cq_map == sq_map:
							 * one mapping */
	size_t			 sq_len, cq_len;
	struct io_uring_sqe	*sqes;
	size_t			 sqes_len;
	unsigned		*sq_khead, *sq_tail, sq_mask;
	unsigned		*cq_head, *cq_ktail, cq_mask;
	struct io_uring_cqe	*cqes;
	char			 why[96];	/* RING_OFF: what the kernel said */
	int			 setup_fails;
} R = { .fd = -1 };

static int
sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(SYS_io_uring_setup, entries, p);
}

static int
sys_enter(unsigned submit, unsigned wait)
{
	return (int)syscall(SYS_io_uring_enter, R.fd, submit, wait,
	    wait > 0 ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
}

static void
turn_off(const char *why, int err)
{
	snprintf(R.why, sizeof R.why, "%s: %s", why, strerror(err));
	uring_close();
	R.state = RING_OFF;
}

/* The rings and the entries, mapped as the kernel laid them out. */
static int
map_ring(const struct io_uring_params *p)
{
	R.sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	R.cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	if (R.cq_len > R.sq_len)
		R.sq_len = R.cq_len;	/* IORING_FEAT_SINGLE_MMAP */
	R.sq_map = mmap(NULL, R.sq_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, R.fd, IORING_OFF_SQ_RING);
	if (R.sq_map == MAP_FAILED)
		return -1;
	R.cq_map = R.sq_map;
	R.sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
	R.sqes = mmap(NULL, R.sqes_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, R.fd, IORING_OFF_SQES);
	if (R.sqes == MAP_FAILED) {
		R.sqes = NULL;
		return -1;
	}
	char *sq = R.sq_map, *cq = R.cq_map;
	R.sq_khead = (unsigned *)(sq + p->sq_off.head);
	R.sq_tail = (unsigned *)(sq + p->sq_off.tail);
	R.sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
	unsigned *array = (unsigned *)(sq + p->sq_off.array);
	for (unsigned i = 0; i < p->sq_entries; i++)
		array[i] = i;		/* entry i in slot i, for good */
	R.cq_head = (unsigned *)(cq + p->cq_off.head);
	R.cq_ktail = (unsigned *)(cq + p->cq_off.tail);
	R.cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
	R.cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
	return 0;
}

/* A set-up that may work later: descriptors or memory short for now
 * (arbord at its descriptor limit, or an old kernel's locked-memory
 * limit, which does not move: hence SETUP_TRIES). */
static bool
is_transient(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM ||
	    err == EAGAIN;
}

/* Sets the ring up, with the flags that spare work where the kernel has
 * them (all submitted even if one fails; one task submits, and its
 * completions wait until it asks). */
static void
ring_open(void)
{
	static const unsigned flags[] = {
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
		    IORING_SETUP_DEFER_TASKRUN,
		0,
	};
	struct io_uring_params p;
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		memset(&p, 0, sizeof p);
		p.flags = flags[i];
		if ((R.fd = sys_setup(ENTRIES, &p)) >= 0 || errno != EINVAL)
			break;
	}
	if (R.fd < 0 && is_transient(errno) && ++R.setup_fails < SETUP_TRIES)
		return;		/* out of descriptors or memory: later */
	if (R.fd < 0)
		turn_off("no io_uring", errno);
	else if (!(p.features & IORING_FEAT_SINGLE_MMAP) ||
	    !(p.features & IORING_FEAT_RW_CUR_POS))
		turn_off("io_uring too old", EOPNOTSUPP);
	else if (map_ring(&p) < 0)
		turn_off("cannot map the io_uring", errno);
	else
		R.state = RING_ON;
}

static void
prep_write(const struct uring_write *w, unsigned slot, uint64_t tag)
{
	struct io_uring_sqe *sqe = &R.sqes[slot & R.sq_mask];
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = IORING_OP_WRITE;
	sqe->fd = w->fd;
	sqe->addr = (uintptr_t)w->buf;
	sqe->len = w->len > UINT32_MAX ? UINT32_MAX : (uint32_t)w->len;
	sqe->off = (uint64_t)-1;	/* a pipe or socket: no offset */
	sqe->rw_flags = RWF_NOWAIT;
	sqe->user_data = tag;
}

/* Takes every completion there is; a write the kernel cannot make without
 * blocking on this descriptor (EOPNOTSUPP, EINVAL: an old kernel) turns
 * the ring off after this round. Returns how many were taken. */
static unsigned
reap(struct uring_write *w, bool *refused)
{
	unsigned head = *R.cq_head, n = 0;
	unsigned tail = __atomic_load_n(R.cq_ktail, __ATOMIC_ACQUIRE);
	for (; head != tail; head++, n++) {
		const struct io_uring_cqe *cqe = &R.cqes[head & R.cq_mask];
		if (cqe->res > 0)
			w[cqe->user_data].done = (size_t)cqe->res;
		else if (cqe->res == -EOPNOTSUPP || cqe->res == -EINVAL)
			*refused = true;
	}
	__atomic_store_n(R.cq_head, head, __ATOMIC_RELEASE);
	return n;
}

/* Waits for the completions of the writes the kernel took. Written without
 * blocking, they are all there when io_uring_enter returns; anything else
 * is a kernel that loses completions, and a write arbord cannot know the
 * fate of would corrupt a stream: stop there. */
static void
await(struct uring_write *w, unsigned taken, unsigned reaped, bool *refused)
{
	while ((reaped += reap(w, refused)) < taken) {
		if (sys_enter(0, taken - reaped) < 0 && errno != EINTR &&
		    errno != EAGAIN && errno != EBUSY) {
			fprintf(stderr, "io_uring_enter: %s\n", strerror(errno));
			abort();
		}
	}
}

/* One system call for w[0..n), n <= ENTRIES. */
static void
write_chunk(struct uring_write *w, unsigned n)
{
	unsigned tail = *R.sq_tail;
	for (unsigned i = 0; i < n; i++)
		prep_write(&w[i], tail + i, i);
	__atomic_store_n(R.sq_tail, tail + n, __ATOMIC_RELEASE);
	int rc;
	while ((rc = sys_enter(n, n)) < 0 && errno == EINTR &&
	    __atomic_load_n(R.sq_khead, __ATOMIC_ACQUIRE) == tail)
		;
	int err = errno;
	unsigned taken = __atomic_load_n(R.sq_khead, __ATOMIC_ACQUIRE) - tail;
	*R.sq_tail = tail + taken;	/* what it did not take is dropped */
	bool refused = false;
	await(w, taken, 0, &refused);
	if (rc < 0 && taken == 0 && err != EAGAIN && err != EBUSY)
		turn_off("io_uring_enter", err);
	else if (refused)
		turn_off("a write io_uring cannot make without blocking",
		    EOPNOTSUPP);
}

void
uring_writes(struct uring_write *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w[i].done = 0;
	if (R.state == RING_UNTRIED)
		ring_open();
	for (size_t at = 0; at < n && R.state == RING_ON; at += ENTRIES)
		write_chunk(w + at, n - at < ENTRIES ? (unsigned)(n - at) :
		    ENTRIES);
}

bool
uring_active(void)
{
	return R.state == RING_ON;
}

const char *
uring_refused(void)
{
	return R.state == RING_OFF ? R.why : NULL;
}

void
uring_close(void)
{
	if (R.sqes != NULL)
		munmap(R.sqes, R.sqes_len);
	if (R.sq_map != NULL && R.sq_map != MAP_FAILED)
		munmap(R.sq_map, R.sq_len);
	if (R.fd >= 0)
		close(R.fd);
	R.sqes = NULL;
	R.sq_map = R.cq_map = NULL;
	R.fd = -1;
	if (R.state == RING_ON)
		R.state = RING_UNTRIED;
}
