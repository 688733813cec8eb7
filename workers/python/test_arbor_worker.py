"""Tests for the arbor_worker SDK: a handler worker run over pipes.

Run from this directory: python3 -m unittest -v
"""

import fcntl
import os
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "testdata"))

from wire import WorkerProc, frame  # noqa: E402

HANDLERS = os.path.join(HERE, "testdata", "handlers_worker.py")


class WorkerTestCase(unittest.TestCase):
    """Starts a fresh handlers worker per test and always reaps it."""

    env = None

    def setUp(self):
        self.w = WorkerProc(HANDLERS, env=self.env)
        self.addCleanup(self.w.close)

    def spawn(self, env):
        """Another worker with a different environment."""
        w = WorkerProc(HANDLERS, env=env)
        self.addCleanup(w.close)
        return w


class FramingTest(WorkerTestCase):

    def test_round_trip(self):
        args = {"text": "héllo ✓", "n": [1, 2.5, None, True], "nested": {"a": {}}}
        reply = self.w.call("echo", args)
        self.assertEqual(reply, {"id": 1, "success": True,
                                 "result": {"args": args, "session_id": None}})

    def test_session_id_reaches_handler(self):
        reply = self.w.call("echo", {}, session_id="s1")
        self.assertEqual(reply["result"]["session_id"], "s1")

    def test_missing_args_is_empty_object(self):
        self.assertEqual(self.w.call("echo")["result"]["args"], {})

    def test_ids_pass_through_unchanged(self):
        for req_id in (2, 0, 2**53 + 1, 10**30, "req-7", None, 1.5):
            reply = self.w.call("echo", {}, req_id=req_id)
            self.assertEqual(reply["id"], req_id)
            self.assertIs(type(reply["id"]), type(req_id))

    def test_split_frame(self):
        data = frame({"id": 5, "command": "echo", "args": {"x": "split"}})
        self.w.send_raw(data[:2])
        time.sleep(0.1)
        self.w.send_raw(data[2:4])
        time.sleep(0.2)
        self.w.send_raw(data[4:10])
        time.sleep(0.1)
        self.w.send_raw(data[10:])
        reply = self.w.recv()
        self.assertEqual(reply["id"], 5)
        self.assertEqual(reply["result"]["args"], {"x": "split"})

    def test_pipelined_requests_answered_in_order(self):
        self.w.send_raw(b"".join(frame({"id": i, "command": "echo", "args": {"i": i}})
                                 for i in range(100)))
        for i in range(100):
            reply = self.w.recv()
            self.assertEqual((reply["id"], reply["result"]["args"]["i"]), (i, i))

    def test_reply_is_compact_utf8_json(self):
        self.w.send({"id": 1, "command": "echo", "args": {"k": "ü"}})
        payload = self.w.recv_raw()
        payload.decode("utf-8")
        self.assertNotIn(b"\n", payload)


class PingTest(WorkerTestCase):

    def test_init_ping(self):
        reply = self.w.call("ping", {"initialization": True, "worker_id": "pool/worker.3"})
        self.assertEqual(reply, {"id": 1, "success": True, "result": {
            "pong": True, "worker_id": "pool/worker.3", "pid": self.w.proc.pid}})
        # Health pings carry no worker_id; the name is remembered.
        self.assertEqual(self.w.call("ping")["result"]["worker_id"], "pool/worker.3")

    def test_ping_before_init(self):
        reply = self.w.call("ping")
        self.assertTrue(reply["success"])
        self.assertIsNone(reply["result"]["worker_id"])
        self.assertTrue(reply["result"]["pong"])

    def test_ping_override(self):
        w = self.spawn({"HANDLERS_PING_OVERRIDE": "1"})
        reply = w.call("ping", {"initialization": True, "worker_id": "bridge/worker"})
        self.assertEqual(reply["result"], {"custom": True, "worker_id": "bridge/worker"})


class ErrorTest(WorkerTestCase):

    def test_exception_becomes_error_reply(self):
        reply = self.w.call("boom")
        self.assertEqual(reply, {"id": 1, "success": False, "error": "ValueError: bad things"})
        self.assertTrue(self.w.wait_stderr("Traceback"))
        self.assertTrue(self.w.call("echo")["success"], "worker survives")

    def test_command_error_message_is_verbatim(self):
        reply = self.w.call("fail", {"message": "program not found: p1"})
        self.assertEqual(reply["error"], "program not found: p1")
        self.assertFalse(reply["success"])

    def test_exception_whose_str_fails(self):
        """A handler's exception that cannot even be turned into text is
        still an error reply, and the worker keeps serving."""
        reply = self.w.call("unprintable")
        self.assertEqual(reply, {"id": 1, "success": False,
                                 "error": "Unprintable: <exception str() failed>"})
        reply = self.w.call("unprintable", {"command_error": True})
        self.assertEqual(reply, {"id": 2, "success": False,
                                 "error": "<exception str() failed>"})
        self.assertTrue(self.w.call("echo")["success"], "worker survives")

    def test_base_exception_subclass_is_error_reply(self):
        """A BaseException that is not SystemExit or KeyboardInterrupt
        fails its request only: the worker answers and keeps serving."""
        reply = self.w.call("base_exception")
        self.assertEqual(reply, {"id": 1, "success": False, "error": "Abort: aborted"})
        reply = self.w.call("base_exception", {"kind": "generator_exit"})
        self.assertEqual(reply, {"id": 2, "success": False,
                                 "error": "GeneratorExit: generator closed"})
        reply = self.w.call("base_exception", {"kind": "unprintable"})
        self.assertEqual(reply, {"id": 3, "success": False,
                                 "error": "UnprintableAbort: <exception str() failed>"})
        self.assertTrue(self.w.call("echo")["success"], "worker survives")

    def test_unknown_command(self):
        reply = self.w.call("frobnicate")
        self.assertEqual(reply, {"id": 1, "success": False,
                                 "error": "unknown command: frobnicate"})
        self.assertTrue(self.w.call("echo")["success"])

    def test_malformed_requests_get_error_replies(self):
        self.w.send({"id": 1, "args": {}})
        self.assertIn("command", self.w.recv()["error"])
        self.w.send({"id": 2, "command": "echo", "args": [1, 2]})
        self.assertIn("args must be an object", self.w.recv()["error"])
        self.w.send({"id": 3, "command": "echo", "session_id": 5})
        self.assertIn("session_id", self.w.recv()["error"])
        self.assertTrue(self.w.call("echo", req_id=4)["success"])

    def test_unserializable_result(self):
        reply = self.w.call("unserializable")
        self.assertFalse(reply["success"])
        self.assertTrue(reply["error"].startswith("TypeError: "), reply["error"])
        self.assertTrue(self.w.call("echo")["success"])

    def test_result_raising_while_encoded(self):
        """A result whose encoding raises something other than TypeError
        or ValueError (here a dict subclass's items()) is an error reply
        too, not the worker's end."""
        reply = self.w.call("broken_mapping")
        self.assertEqual(reply, {"id": 1, "success": False,
                                 "error": "KeyError: 'items() is broken'"})
        self.assertTrue(self.w.call("echo")["success"], "worker survives")

    def test_deeply_nested_request_gets_error_reply(self):
        # Valid JSON, as arbord frames it (id first), nested deeper than
        # Python's recursion limit: an error reply, not a crash.
        depth = 5000
        body = (b'{"id":7,"command":"echo","args":{"x":' + b"[" * depth +
                b"]" * depth + b"}}")
        self.w.send_raw(struct.pack(">I", len(body)) + body)
        reply = self.w.recv()
        self.assertEqual(reply["id"], 7)
        self.assertFalse(reply["success"])
        self.assertIn("nested too deeply", reply["error"])
        self.assertTrue(self.w.call("echo", req_id=8)["success"])

    def test_deeply_nested_result_gets_error_reply(self):
        reply = self.w.call("deep", {"depth": 5000})
        self.assertFalse(reply["success"])
        self.assertTrue(reply["error"].startswith("RecursionError"), reply["error"])
        self.assertTrue(self.w.call("echo")["success"])

    def test_result_arbord_cannot_read_gets_error_reply(self):
        """JSON that Python writes but arbord's parser refuses (U+0000 in
        a string, a lone surrogate, an integer beyond 64 bits) would be a
        protocol failure there, the worker killed: an error reply instead.
        So would keys that JSON spells alike ({1: .., "1": ..}): arbord
        refuses an object with a repeated key."""
        for kind, why in (("nul", "U+0000"), ("nul_key", "U+0000"),
                          ("surrogate", "UnicodeEncodeError"),
                          ("int_over", "64-bit"), ("int_under", "64-bit"),
                          ("dup_int", "repeated key \"1\""),
                          ("dup_bool", "repeated key \"true\""),
                          ("dup_none", "repeated key \"null\""),
                          ("dup_float", "repeated key \"1.5\""),
                          ("dup_int_bool", "repeated key \"false\"")):
            reply = self.w.call("value", {"kind": kind}, req_id=kind)
            self.assertFalse(reply["success"], kind)
            self.assertIn(why, reply["error"], kind)
        for kind, value in (("int_max", 2 ** 63 - 1), ("int_min", -2 ** 63),
                            ("escaped_text", "\\u0000 and 12345678901234567890"),
                            ("astral", "\U0001F600"),
                            ("keys_apart", {"3": "a", "2": "b", "true": "c",
                                            "null": "d", "2.5": "e"}),
                            ("numeric_str_keys", {"1": "a", "true": "b"})):
            self.assertEqual(self.w.call("value", {"kind": kind}, req_id=kind),
                             {"id": kind, "success": True, "result": value})

    def test_replies_are_plain_utf8(self):
        """Non-ASCII text goes out as UTF-8, not as \\u escapes (a
        surrogate pair escape takes arbord off its fast path)."""
        self.w.send({"id": 1, "command": "value", "args": {"kind": "astral"}})
        self.assertEqual(self.w.recv_raw(),
                         '{"id":1,"success":true,"result":"\U0001F600"}'.encode("utf-8"))

    def test_error_message_arbord_cannot_read_is_escaped(self):
        reply = self.w.call("fail", {"message": "bad \x00 and \udcff"})
        self.assertEqual(reply["error"], "bad \\x00 and \\udcff")

    def test_id_that_cannot_be_encoded(self):
        """An id no reply can carry (only a peer other than arbord sends
        one) gets an error reply with id null, not the worker's end."""
        for body in (b'{"id":1e999,"command":"echo"}', b'{"id":"\\udcff","command":"echo"}'):
            self.w.send_raw(struct.pack(">I", len(body)) + body)
            reply = self.w.recv()
            self.assertIsNone(reply["id"], body)
            self.assertFalse(reply["success"], body)
        self.assertTrue(self.w.call("echo")["success"], "worker survives")

    def test_reply_too_large(self):
        w = self.spawn({"ARBOR_MAX_FRAME_BYTES": "1000"})
        self.assertTrue(w.call("big", {"bytes": 900})["success"])
        reply = w.call("big", {"bytes": 2000})
        self.assertFalse(reply["success"])
        self.assertIn("reply too large", reply["error"])
        self.assertTrue(w.call("echo")["success"])


class StdoutHygieneTest(WorkerTestCase):

    def test_print_goes_to_stderr(self):
        reply = self.w.call("noisy", {"n": 42})
        self.assertEqual(reply, {"id": 1, "success": True, "result": {"printed": True}})
        self.assertTrue(self.w.call("echo", {"after": 1})["success"])
        for line in ("hello from print 42", "via sys.stdout", "via fd 1",
                     "via child process"):
            self.assertTrue(self.w.wait_stderr(line + "\n"), line)

    def test_print_before_run_goes_to_stderr(self):
        for unbuffered in ("1", None):
            w = self.spawn({"HANDLERS_EARLY_PRINT": "1", "PYTHONUNBUFFERED": unbuffered})
            self.assertTrue(w.call("ping")["success"])
            self.assertTrue(w.wait_stderr("printed before run\n"))

    def test_handler_cannot_read_protocol_stdin(self):
        self.w.send_raw(frame({"id": 1, "command": "read_stdin"}) +
                        frame({"id": 2, "command": "echo", "args": {"n": 2}}))
        first = self.w.recv()
        self.assertEqual(first["id"], 1)
        self.assertFalse(first["success"])
        self.assertTrue(first["error"].startswith("EOFError"), first["error"])
        self.assertEqual(self.w.recv()["result"]["args"], {"n": 2})


class LifecycleTest(WorkerTestCase):

    def test_eof_exits_0(self):
        self.w.close_stdin()
        self.assertEqual(self.w.wait(), 0)

    def test_eof_after_requests_exits_0(self):
        self.w.call("ping", {"worker_id": "w"})
        self.w.call("boom")
        self.w.close_stdin()
        self.assertEqual(self.w.wait(), 0)
        self.assertTrue(self.w.at_eof())

    def test_shutdown(self):
        reply = self.w.call("shutdown")
        self.assertEqual(reply, {"id": 1, "success": True, "result": {"shutting_down": True}})
        self.assertTrue(self.w.at_eof())
        self.assertEqual(self.w.wait(), 0)

    def test_sigterm_idle_exits_0(self):
        self.assertTrue(self.w.call("ping")["success"])
        self.w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.w.wait(), 0)
        self.assertNotIn("Traceback", self.w.stderr())

    def _marked_worker(self, env=None):
        """A worker whose shutdown handler appends a line to a file (env:
        more of its environment)."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        mark = os.path.join(tmp, "mark")
        return self.spawn(dict(env or {}, HANDLERS_SHUTDOWN_MARK=mark)), mark

    def _marks(self, mark):
        if not os.path.exists(mark):
            return 0
        with open(mark) as f:
            return f.read().count("cleaned up")

    def test_sigterm_runs_shutdown_handler_once(self):
        """arbord sends SIGTERM right behind its shutdown frame: the
        cleanup runs once, whichever the worker sees first."""
        w, mark = self._marked_worker()
        self.assertTrue(w.call("ping")["success"])
        w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0)
        self.assertEqual(self._marks(mark), 1)
        w2, mark2 = self._marked_worker()
        self.assertTrue(w2.call("ping")["success"])   # serving: handlers set
        w2.send({"id": 2, "command": "shutdown"})
        w2.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w2.wait(), 0)
        self.assertEqual(self._marks(mark2), 1)
        self.assertNotIn("Traceback", w.stderr() + w2.stderr())

    def test_sigterm_before_run(self):
        """A SIGTERM between Worker() and run() (the worker signals itself
        there) is held until run(): the shutdown handler, registered after
        it, runs once, and the worker exits 0 without serving."""
        for points in ("init", "run", "init,run"):
            with self.subTest(points=points):
                w, mark = self._marked_worker({"HANDLERS_EARLY_SIGTERM": points})
                self.assertEqual(w.wait(), 0)
                self.assertEqual(self._marks(mark), 1)
                self.assertTrue(w.at_eof())
                self.assertNotIn("Traceback", w.stderr())

    def test_sigterm_in_handler_exits_0(self):
        self.assertTrue(self.w.call("ping")["success"])
        self.w.send({"id": 2, "command": "sleep", "args": {"ms": 10000}})
        time.sleep(0.3)
        start = time.monotonic()
        self.w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.w.wait(), 0)
        self.assertLess(time.monotonic() - start, 3)
        self.assertNotIn("Traceback", self.w.stderr())

    def test_sigterm_while_writing_finishes_the_frame(self):
        """A SIGTERM arriving while a reply is stuck in a full pipe stops the
        worker only once the whole frame is out."""
        self.assertTrue(self.w.call("ping")["success"])
        args = {"s": "x" * (1 << 20)}
        self.w.send({"id": 2, "command": "echo", "args": args})
        fd = self.w.proc.stdout.fileno()
        capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
        deadline = time.monotonic() + 10
        while _unread(fd) < capacity:   # the worker is blocked in write()
            self.assertLess(time.monotonic(), deadline, "pipe never filled")
            time.sleep(0.01)
        self.w.proc.send_signal(signal.SIGTERM)
        reply = self.w.recv(timeout=10)
        self.assertEqual(reply, {"id": 2, "success": True,
                                 "result": {"args": args, "session_id": None}})
        self.assertTrue(self.w.at_eof())
        self.assertEqual(self.w.wait(), 0)


F_GETPIPE_SZ = 1032


def _unread(fd):
    """Bytes waiting in the pipe fd."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class RefusedFrameTest(WorkerTestCase):
    """A whole frame whose payload is not a request: an error reply when
    its id can be read, else a line on stderr; the worker goes on."""

    def send_payload(self, body):
        self.w.send_raw(struct.pack(">I", len(body)) + body)

    def assertServing(self, req_id):
        reply = self.w.call("echo", {"after": req_id}, req_id=req_id)
        self.assertEqual(reply["result"]["args"], {"after": req_id})

    def test_invalid_json_with_id(self):
        self.send_payload(b'{"id":3,"command":"echo","args":{not json}}')
        reply = self.w.recv()
        self.assertEqual(reply["id"], 3)
        self.assertFalse(reply["success"])
        self.assertTrue(reply["error"].startswith("invalid request: invalid JSON"),
                        reply["error"])
        self.assertServing(4)

    def test_invalid_utf8_with_id(self):
        self.send_payload(b'{"id":5,"command":"echo","args":{"s":"\xff\xfe"}}')
        reply = self.w.recv()
        self.assertEqual(reply["id"], 5)
        self.assertFalse(reply["success"])
        self.assertTrue(reply["error"].startswith("invalid request: not UTF-8"),
                        reply["error"])
        self.assertServing(6)

    def test_unreadable_id_is_logged(self):
        huge_id = b"9" * 5000   # beyond Python's int() digit limit
        for body in (b"{not json", b"", b'{"command": "\xff"}', b"[1, 2, 3]",
                     b'{"id":' + huge_id + b',"command":"echo"}',
                     b'{"id":' + huge_id + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}"):
            self.send_payload(body)
        self.assertServing(7)
        self.w.close_stdin()
        self.assertEqual(self.w.wait(), 0)   # and all its stderr is read
        self.assertEqual(self.w.stderr().count("refused request (no id)"), 6,
                         self.w.stderr())
        self.assertNotIn("Traceback", self.w.stderr())

    def test_pipelined_with_good_frames(self):
        self.w.send_raw(frame({"id": 1, "command": "echo"}) +
                        struct.pack(">I", 9) + b'{"id":2,}' +
                        frame({"id": 3, "command": "echo"}))
        self.assertEqual([(r["id"], r["success"]) for r in
                          (self.w.recv(), self.w.recv(), self.w.recv())],
                         [(1, True), (2, False), (3, True)])


class ProtocolErrorTest(WorkerTestCase):
    """A frame the stream cannot be trusted past: log on stderr and exit 2."""

    def assertExit2(self, w, message):
        self.assertEqual(w.wait(), 2)
        self.assertIn(message, w.stderr())

    def test_oversized_frame(self):
        w = self.spawn({"ARBOR_MAX_FRAME_BYTES": "200"})
        self.assertTrue(w.call("echo", {"s": "ok"})["success"])
        w.send_raw(struct.pack(">I", 201) + b" " * 201)
        self.assertExit2(w, "exceeds max_frame_bytes 200")

    def test_default_max_frame_is_16_mib(self):
        self.w.send_raw(struct.pack(">I", 16 * 1024 * 1024 + 1))
        self.assertExit2(self.w, "exceeds max_frame_bytes 16777216")

    def test_truncated_frame(self):
        self.w.send_raw(struct.pack(">I", 100) + b'{"id": 1')
        self.w.close_stdin()
        self.assertExit2(self.w, "truncated frame")


if __name__ == "__main__":
    unittest.main()
