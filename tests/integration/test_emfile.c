/* Out of descriptors (issue 4 point 3): when accept fails with EMFILE,
 * arbord pauses accepting on a timer instead of spinning on the readable
 * listener, keeps serving the connections it has, and accepts again once
 * descriptors are free. The limit is lowered on the running arbord with
 * prlimit(2). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define EXTRA		8	/* descriptors left above what arbord uses */
#define MAX_CONNS	64

static const char CONF[] =
    "bridge = { enabled = false; };\n"
    "environments = { dev = { }; };\n";

/* arbord's user + system CPU time in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof buf, f) == NULL) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	char *p = strrchr(buf, ')');
	long ut = 0, st = 0;
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %ld %ld", &ut, &st) != 2)
		return -1;
	return ut + st;
}

static void
test_emfile_pauses_accept(void **state)
{
	struct arb *a = arb_start(CONF, "dev", NULL);
	pid_t pid = arb_pid(a);
	struct rlimit old, rl;
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
	rl = (struct rlimit){ proc_fd_count(pid) + EXTRA, old.rlim_max };
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0);

	struct arb_conn *held = arb_conn_open(a);	/* keeps being served */
	assert_non_null(held);
	struct arb_conn *conns[MAX_CONNS];
	int n = 0;
	while (n < MAX_CONNS && (conns[n] = arb_conn_open(a)) != NULL)
		n++;
	/* Connections beyond the limit wait in the backlog: wait until
	 * arbord has hit EMFILE and said so. */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!arb_log_contains(a, "pausing") && arb_now_ms() < end)
		arb_sleep_ms(20);
	assert_true(arb_log_contains(a, "pausing"));

	long t0 = cpu_ticks(pid);
	arb_sleep_ms(1000);	/* a window to measure, not an event wait */
	long used = cpu_ticks(pid) - t0;
	print_message("arbord used %ld ticks in 1 s while out of descriptors\n",
	    used);
	assert_true(used < sysconf(_SC_CLK_TCK) / 2);	/* not spinning */

	json_t *ping = json_pack("{s:i,s:s}", "id", 7, "op", "ping");
	if (arb_conn_send(held, ping) != 0) {
		perror("send on the held connection");
		arb_dump_log(a);
		fail();
	}
	json_decref(ping);
	json_t *r = arb_conn_recv(held, ARB_REPLY_MS);
	assert_true(arb_reply_ok(r));
	json_decref(r);

	for (int i = 0; i < n; i++)
		arb_conn_close(conns[i]);
	arb_conn_close(held);
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &old, NULL), 0);
	json_decref(arb_op_ok(a, "ping"));	/* accepting again */
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_emfile_pauses_accept, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
