#include "supervisor/strays.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "supervisor/log.h"
#include "supervisor/pidset.h"

#define LOOP	EV_DEFAULT_UC
#define FINISH_S	2.0	/* strays_finish waits this long at most */

static bool enabled;
static ev_child w_reap;		/* pid 0: every child reaped */
static ev_prepare w_scan;	/* after the reaps of this iteration */
static struct pidset workers;	/* spawned, not yet reaped */
static struct pidset killed;	/* strays killed, not yet reaped */
static struct pidset groups;	/* of workers reaped, while members
					 * of them are left */

void
strays_track(pid_t pid)
{
	if (enabled)
		pidset_add(&workers, pid);
}

/* Reads the whole of a small /proc file into b (NUL-terminated); false if
 * it cannot be read. */
static bool
read_proc(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n;
	do {
		buf_reserve(b, 4096);
		n = read(fd, buf_tail(b), b->cap - b->len - 1);
		if (n > 0)
			b->len += (size_t)n;
	} while (n > 0 || (n < 0 && errno == EINTR));
	close(fd);
	buf_reserve(b, 1);
	*buf_tail(b) = '\0';
	return n == 0;
}

/* The file listing arbord's children (its main thread's: it has no
 * other); path, for convenience. */
static char *
children_path(char *path, size_t n)
{
	snprintf(path, n, "/proc/self/task/%d/children", (int)getpid());
	return path;
}

/* The name, state and process group of pid from its stat; false if gone. */
static bool
stat_of(pid_t pid, char *comm, size_t n, char *state, pid_t *pgrp)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	struct buf b;
	buf_init(&b);
	bool ok = read_proc(path, &b);
	char *open = ok ? strchr(b.data, '(') : NULL;
	char *close_ = ok ? strrchr(b.data, ')') : NULL;
	int pg = 0;
	ok = open && close_ && close_ > open &&
	    sscanf(close_ + 1, " %c %*d %d", state, &pg) == 2;
	if (ok) {
		size_t len = (size_t)(close_ - open - 1);
		len = len < n - 1 ? len : n - 1;
		memcpy(comm, open + 1, len);
		comm[len] = '\0';
		*pgrp = pg;
	}
	buf_release(&b);
	return ok;
}

/* SIGKILLs arbord's children that are not workers: adopted, so their
 * parent is gone. Not the members of a worker's group (its exit killed
 * the group as a whole; a group is forgotten once none of them is left),
 * nor strays already killed, nor zombies, which are being reaped. */
static void
kill_strays(void)
{
	char path[64];
	children_path(path, sizeof path);
	struct buf b;
	buf_init(&b);
	struct pidset seen = { 0 };	/* groups still with members */
	bool ok = read_proc(path, &b);
	for (char *p = b.data, *end; ok && *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		pid_t pid = (pid_t)v;
		char comm[64], state;
		pid_t pgrp;
		if (pid <= 0 || pidset_has(&workers, pid) ||
		    pidset_has(&killed, pid) ||
		    !stat_of(pid, comm, sizeof comm, &state, &pgrp) ||
		    state == 'Z')
			continue;
		if (pidset_has(&groups, pgrp)) {
			pidset_add(&seen, pgrp);
			continue;
		}
		if (kill(pgrp == pid ? -pid : pid, SIGKILL) < 0)
			continue;	/* a group leader's group goes too */
		pidset_add(&killed, pid);
		log_warn("arbord", "killed pid %d (%s): left running by a worker, "
		    "outside its process group", (int)pid, comm);
	}
	pidset_clear(&groups);
	groups = seen;
	buf_release(&b);
}

/* Any child reaped: a stray's parent may have left strays of its own, a
 * worker's what it forked outside its group. The scan comes once the
 * iteration's reaps are handled (a worker's group killed, its exit
 * logged). */
static void
on_reap(struct ev_loop *loop, ev_child *w, int revents)
{
	pid_t pid = w->rpid;
	pidset_del(&killed, pid);
	if (pidset_del(&workers, pid))
		pidset_add(&groups, pid);
	ev_prepare_start(loop, &w_scan);
}

static void
on_scan(struct ev_loop *loop, ev_prepare *w, int revents)
{
	ev_prepare_stop(loop, w);
	kill_strays();
}

void
strays_enable(void)
{
	if (enabled)
		return;
	char path[64];
	const char *cannot = NULL;
	if (access(children_path(path, sizeof path), R_OK) < 0)
		cannot = "list its children";
	else if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		cannot = "become a subreaper";
	if (cannot != NULL) {
		log_warn("arbord", "cannot %s (%s): what a worker leaves running "
		    "outside its process group outlives it", cannot,
		    strerror(errno));
		return;
	}
	enabled = true;
	ev_prepare_init(&w_scan, on_scan);
	ev_child_init(&w_reap, on_reap, 0, 0);
	ev_child_start(LOOP, &w_reap);
	ev_unref(LOOP);		/* does not keep the loop alive */
}

void
strays_finish(void)
{
	if (!enabled)
		return;
	if (ev_is_active(&w_scan))
		ev_prepare_stop(LOOP, &w_scan);
	double until = ev_time() + FINISH_S;
	for (;;) {
		kill_strays();
		pid_t pid;
		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			pidset_del(&killed, pid);
		if ((pid < 0 && errno == ECHILD) || ev_time() > until)
			break;
		usleep(1000);
	}
	pidset_clear(&workers);
	pidset_clear(&killed);
	pidset_clear(&groups);
	enabled = false;
}
