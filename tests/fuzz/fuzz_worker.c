/* Fuzzes libworker's request handling, raw path against jansson path: the
 * input is one request payload, sent framed to two workers in this process,
 * followed by a fixed echo request. Worker A has `echo` as a raw handler
 * (worker_on_raw: the request read as text when the scanner takes it);
 * worker B has it as a jansson handler. Both must end with the same exit
 * status and write the same number of reply frames, each a JSON object,
 * the two workers' replies equal as JSON values; a successful echo reply
 * (either worker's) must carry the request's args back.
 *
 * Each worker runs in this process on a pipe pair put on fds 0 and 1
 * (libworker moves the protocol stream off them itself), which are put back
 * after the run.
 *
 * Input: the request payload, as it is (up to MAX_INPUT bytes). */
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "tests/fuzz/fuzz.h"
#include "workers/libworker/worker.h"

#define MAX_INPUT	(16 * 1024)
#define PIPE_BYTES	(1024 * 1024)	/* every reply fits: no reader runs */
#define MAX_REPLIES	4
#define TAIL		"{\"id\":7,\"command\":\"echo\",\"args\":{\"t\":[1]}}"

static int
echo_raw(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	*res = args;
	*res_len = len;
	return 0;
}

static json_t *
echo_json(struct worker *w, json_t *args, const char *sid)
{
	return json_incref(args);
}

struct run {
	int	 status;
	int	 nreplies;
	json_t	*replies[MAX_REPLIES];
};

static void
put_frame(int fd, const void *p, size_t n)
{
	FUZZ_CHECK(frame_write_blocking(fd, p, n) == 0);
}

/* A pipe with room for everything written before anyone reads. */
static void
big_pipe(int p[2])
{
	if (pipe(p) < 0)
		FUZZ_DIE("pipe failed\n");
	fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
}

/* Reads every reply frame the worker wrote. */
static void
collect(int fd, struct run *r)
{
	struct buf in;
	buf_init(&in);
	for (;;) {
		const char *p;
		size_t n;
		int got = frame_read_blocking(fd, &in, PIPE_BYTES, &p, &n);
		if (got <= 0) {
			FUZZ_CHECK(got == 0);	/* whole frames only */
			break;
		}
		FUZZ_CHECK(r->nreplies < MAX_REPLIES);
		json_t *j = frame_parse(p, n, NULL);
		FUZZ_CHECK(j != NULL);
		r->replies[r->nreplies++] = j;
		frame_done(&in, n);
	}
	buf_release(&in);
}

/* Runs one worker over the input and the fixed tail request. */
static void
run_worker(const uint8_t *data, size_t size, bool raw, struct run *r)
{
	int in[2], out[2];
	big_pipe(in);
	big_pipe(out);
	put_frame(in[1], data, size);
	put_frame(in[1], TAIL, strlen(TAIL));
	close(in[1]);
	int save0 = dup(0), save1 = dup(1), save2 = dup(2);
	int null = open("/dev/null", O_WRONLY);
	dup2(in[0], 0);
	dup2(out[1], 1);
	dup2(null, 2);		/* its complaints about bad requests */
	close(in[0]);
	close(out[1]);
	close(null);
	struct worker *w = worker_new();
	if (raw)
		worker_on_raw(w, "echo", echo_raw);
	else
		worker_on(w, "echo", echo_json);
	r->status = worker_run(w);
	worker_free(w);
	dup2(save0, 0);
	dup2(save1, 1);
	dup2(save2, 2);
	close(save0);
	close(save1);
	close(save2);
	collect(out[0], r);
	close(out[0]);
}

/* A successful reply to the input's echo gives its args back. */
static void
check_echo(const json_t *req, const json_t *reply)
{
	if (req == NULL || !json_is_true(json_object_get(reply, "success")))
		return;
	const char *cmd = msg_str(req, "command");
	if (cmd == NULL || strcmp(cmd, "echo") != 0)
		return;
	json_t *args = json_object_get(req, "args");
	json_t *res = json_object_get(reply, "result");
	if (args == NULL || json_is_null(args))
		FUZZ_CHECK(json_is_object(res) && json_object_size(res) == 0);
	else
		FUZZ_CHECK(json_equal(args, res));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		return 0;
	struct run a = { 0 }, b = { 0 };
	run_worker(data, size, true, &a);
	run_worker(data, size, false, &b);
	FUZZ_CHECK(a.status == b.status);
	FUZZ_CHECK(a.nreplies == b.nreplies);
	json_t *req = frame_parse((const char *)data, size, NULL);
	for (int i = 0; i < a.nreplies; i++) {
		FUZZ_CHECK(json_equal(a.replies[i], b.replies[i]));
		if (i == 0)
			check_echo(req, a.replies[i]);
	}
	json_decref(req);
	for (int i = 0; i < a.nreplies; i++) {
		json_decref(a.replies[i]);
		json_decref(b.replies[i]);
	}
	return 0;
}
