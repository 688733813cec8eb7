"""Tests for bridge_worker.py (SPEC 5's bridge commands), run over pipes.

Run from this directory: python3 -m unittest -v
"""

import os
import signal
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "testdata"))

from wire import WorkerProc  # noqa: E402

BRIDGE = os.path.join(HERE, "bridge_worker.py")


class BridgeTestCase(unittest.TestCase):
    """A fresh bridge worker per test, initialised like arbord does."""

    def setUp(self):
        self.w = WorkerProc(BRIDGE)
        self.addCleanup(self.w.close)
        init = self.w.call("ping", {"initialization": True, "worker_id": "pool/worker.1"})
        self.assertTrue(init["success"], init)

    def ok(self, command, args=None, session_id=None):
        """Calls command and returns its result, failing on an error reply."""
        reply = self.w.call(command, args, session_id)
        self.assertTrue(reply["success"], reply)
        return reply["result"]

    def err(self, command, args=None, session_id=None):
        """Calls command and returns its error message, failing on success."""
        reply = self.w.call(command, args, session_id)
        self.assertFalse(reply["success"], reply)
        self.assertNotIn("result", reply)
        return reply["error"]


class ProgramTest(BridgeTestCase):

    def test_ping(self):
        result = self.ok("ping")
        self.assertEqual(result, {"pong": True, "worker_id": "pool/worker.1",
                                  "pid": self.w.proc.pid})

    def test_create_generates_ids(self):
        self.assertEqual(self.ok("create_program", {"signature": "question -> answer"}),
                         {"program_id": "prog_1"})
        self.assertEqual(self.ok("create_program", {}), {"program_id": "prog_2"})
        self.assertEqual(self.ok("list_programs"), {"programs": ["prog_1", "prog_2"]})

    def test_generated_ids_skip_taken_ones(self):
        self.ok("create_program", {"program_id": "prog_1"})
        self.assertEqual(self.ok("create_program")["program_id"], "prog_2")

    def test_create_with_id_and_duplicate(self):
        self.assertEqual(self.ok("create_program", {"program_id": "qa"}), {"program_id": "qa"})
        self.assertEqual(self.err("create_program", {"program_id": "qa"}),
                         "program already exists: qa")

    def test_invalid_signatures(self):
        for sig in ("question answer", "a -> b -> c", " -> b", "a ->", "a, , b -> c",
                    "a -> a", "my field -> x", 42):
            message = self.err("create_program", {"signature": sig})
            self.assertTrue(message.startswith("invalid signature"), (sig, message))
        self.assertEqual(self.ok("list_programs"), {"programs": []})

    def test_execute_default_signature(self):
        pid = self.ok("create_program")["program_id"]
        result = self.ok("execute_program", {"program_id": pid,
                                             "inputs": {"question": "What is 2+2?"}})
        self.assertEqual(result, {"program_id": pid,
                                  "outputs": {"answer": "answer: What is 2+2?"}})

    def test_execute_is_deterministic_and_multi_field(self):
        self.ok("create_program", {"program_id": "p", "signature": "context, question -> answer, reason"})
        args = {"program_id": "p",
                "inputs": {"question": "why?", "context": "sky", "extra": "ignored"}}
        first = self.ok("execute_program", args)
        self.assertEqual(first["outputs"], {"answer": "answer: sky why?",
                                            "reason": "reason: sky why?"})
        self.assertEqual(self.ok("execute_program", args), first)

    def test_execute_non_string_inputs(self):
        self.ok("create_program", {"program_id": "p", "signature": "n, xs -> out"})
        result = self.ok("execute_program", {"program_id": "p",
                                             "inputs": {"n": 3, "xs": {"b": 1, "a": [True, None]}}})
        self.assertEqual(result["outputs"], {"out": 'out: 3 {"a":[true,null],"b":1}'})

    def test_execute_errors(self):
        self.assertEqual(self.err("execute_program", {"program_id": "nope", "inputs": {}}),
                         "program not found: nope")
        self.ok("create_program", {"program_id": "p"})
        self.assertEqual(self.err("execute_program", {"program_id": "p", "inputs": {}}),
                         "missing input: question")
        self.assertIn("inputs", self.err("execute_program", {"program_id": "p", "inputs": [1]}))
        self.assertIn("program_id", self.err("execute_program", {"inputs": {}}))

    def test_program_info_counts_executions(self):
        self.ok("create_program", {"program_id": "p", "signature": "a,b->c"})
        info = self.ok("get_program_info", {"program_id": "p"})
        self.assertEqual((info["program_id"], info["signature"], info["executions"]),
                         ("p", "a, b -> c", 0))
        for _ in range(3):
            self.ok("execute_program", {"program_id": "p", "inputs": {"a": 1, "b": 2}})
        self.err("execute_program", {"program_id": "p", "inputs": {"a": 1}})
        self.assertEqual(self.ok("get_program_info", {"program_id": "p"})["executions"], 3)
        self.assertEqual(self.err("get_program_info", {"program_id": "q"}),
                         "program not found: q")

    def test_delete(self):
        self.ok("create_program", {"program_id": "p"})
        self.ok("create_program", {"program_id": "q"})
        self.assertEqual(self.ok("delete_program", {"program_id": "p"}), {"deleted": True})
        self.assertEqual(self.ok("list_programs"), {"programs": ["q"]})
        self.assertEqual(self.err("delete_program", {"program_id": "p"}),
                         "program not found: p")
        self.assertEqual(self.err("execute_program", {"program_id": "p", "inputs": {}}),
                         "program not found: p")

    def test_unknown_command(self):
        self.assertEqual(self.err("train_program"), "unknown command: train_program")


class StatsTest(BridgeTestCase):

    def test_get_stats(self):
        self.ok("create_program", {"program_id": "p"})
        self.ok("create_program", {"program_id": "q"}, session_id="s1")
        self.err("execute_program", {"program_id": "zzz", "inputs": {}})
        self.err("no_such_command")
        stats = self.ok("get_stats")
        # init ping, 2 creates, 2 errors, this get_stats
        self.assertEqual(stats["command_count"], 6)
        self.assertEqual(stats["error_count"], 2)
        self.assertEqual(stats["programs_count"], 2)
        self.assertIsInstance(stats["uptime_ms"], int)
        self.assertGreaterEqual(stats["uptime_ms"], 0)
        later = self.ok("get_stats")
        self.assertGreaterEqual(later["uptime_ms"], stats["uptime_ms"])
        self.assertEqual(later["command_count"], 7)

    def test_reset_state(self):
        self.ok("create_program", {"program_id": "p"})
        self.ok("create_program", {}, session_id="s1")
        self.err("delete_program", {"program_id": "x"})
        self.assertEqual(self.ok("reset_state"), {"reset": True})
        self.assertEqual(self.ok("list_programs"), {"programs": []})
        self.assertEqual(self.ok("list_programs", session_id="s1"), {"programs": []})
        stats = self.ok("get_stats")
        self.assertEqual((stats["programs_count"], stats["error_count"]), (0, 0))
        self.assertEqual(self.ok("create_program")["program_id"], "prog_1")


class SessionTest(BridgeTestCase):

    def test_sessions_are_separate(self):
        self.ok("create_program", {"program_id": "p", "signature": "x -> y"}, session_id="s1")
        self.assertEqual(self.ok("list_programs", session_id="s1"), {"programs": ["p"]})
        self.assertEqual(self.ok("list_programs", session_id="s2"), {"programs": []})
        self.assertEqual(self.ok("list_programs"), {"programs": []})
        self.assertEqual(self.err("execute_program", {"program_id": "p", "inputs": {"x": 1}},
                                  session_id="s2"), "program not found: p")
        self.assertEqual(self.err("get_program_info", {"program_id": "p"}),
                         "program not found: p")
        # The same id may exist independently in another space.
        self.ok("create_program", {"program_id": "p", "signature": "q -> a"}, session_id="s2")
        self.ok("create_program", {"program_id": "p"})
        self.assertEqual(self.ok("execute_program", {"program_id": "p", "inputs": {"x": 1}},
                                 session_id="s1")["outputs"], {"y": "y: 1"})
        self.assertEqual(self.ok("get_program_info", {"program_id": "p"},
                                 session_id="s2")["signature"], "q -> a")
        self.ok("delete_program", {"program_id": "p"}, session_id="s2")
        self.assertEqual(self.ok("list_programs", session_id="s1"), {"programs": ["p"]})
        self.assertEqual(self.ok("list_programs"), {"programs": ["p"]})

    def test_cleanup_session(self):
        self.ok("create_program", {}, session_id="s1")
        self.ok("create_program", {}, session_id="s1")
        self.ok("create_program", {}, session_id="s2")
        self.ok("create_program", {})
        self.assertEqual(self.ok("cleanup_session", {"session_id": "s1"}), {"cleaned": 2})
        self.assertEqual(self.ok("list_programs", session_id="s1"), {"programs": []})
        self.assertEqual(len(self.ok("list_programs", session_id="s2")["programs"]), 1)
        self.assertEqual(len(self.ok("list_programs")["programs"]), 1)
        self.assertEqual(self.ok("cleanup_session", {"session_id": "s1"}), {"cleaned": 0})
        self.assertEqual(self.ok("cleanup_session", {"session_id": "never"}), {"cleaned": 0})
        self.assertEqual(self.ok("get_stats")["programs_count"], 2)

    def test_refused_create_makes_no_session(self):
        for bad in ({"program_id": 5}, {"program_id": ""}, {"signature": "a b"}):
            self.err("create_program", bad, session_id="s9")
        self.assertEqual(self.ok("get_stats")["sessions_count"], 0)

    def test_cleanup_session_defaults_to_request_session(self):
        self.ok("create_program", {}, session_id="s3")
        self.assertEqual(self.ok("cleanup_session", {}, session_id="s3"), {"cleaned": 1})
        self.assertIn("session_id", self.err("cleanup_session", {}))


class LifecycleTest(BridgeTestCase):

    def test_shutdown(self):
        self.assertEqual(self.ok("shutdown"), {"shutting_down": True})
        self.assertTrue(self.w.at_eof())
        self.assertEqual(self.w.wait(), 0)

    def test_eof_exits_0(self):
        self.ok("create_program")
        self.w.close_stdin()
        self.assertEqual(self.w.wait(), 0)

    def test_sigterm_exits_0(self):
        self.w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.w.wait(), 0)
        self.assertNotIn("Traceback", self.w.stderr())


if __name__ == "__main__":
    unittest.main()
