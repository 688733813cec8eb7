"""Test helper: runs a worker script as a subprocess and speaks SPEC 5 framing to it."""

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.dirname(HERE)


_AUTO = object()


def frame(obj):
    """Encodes obj as one frame: 4-byte big-endian length + UTF-8 JSON."""
    payload = json.dumps(obj).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


class WorkerProc:
    """A worker process over pipes; stderr is collected in the background."""

    def __init__(self, script, env=None):
        full_env = dict(os.environ)
        full_env.pop("ARBOR_MAX_FRAME_BYTES", None)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)   # None: remove from the environment
            else:
                full_env[key] = value
        self.proc = subprocess.Popen(
            [sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=full_env)
        self._stderr = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._reader.start()
        self._next_id = 1
        self._buf = b""

    def _drain_stderr(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            with self._lock:
                self._stderr.append(chunk)

    def stderr(self):
        """Everything the worker wrote to stderr so far, decoded."""
        with self._lock:
            return b"".join(self._stderr).decode("utf-8", "replace")

    def wait_stderr(self, text, timeout=5.0):
        """Waits until text shows up on stderr; returns whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return True
            time.sleep(0.02)
        return text in self.stderr()

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj):
        self.send_raw(frame(obj))

    def _read(self, n, timeout):
        """Reads exactly n bytes from the worker's stdout, or raises."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply within %.1fs" % timeout)
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("worker closed stdout")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv_raw(self, timeout=5.0):
        """One frame's payload bytes."""
        (length,) = struct.unpack(">I", self._read(4, timeout))
        return self._read(length, timeout)

    def recv(self, timeout=5.0):
        """One frame, decoded."""
        return json.loads(self.recv_raw(timeout).decode("utf-8"))

    def at_eof(self, timeout=5.0):
        """True if the worker's stdout reaches EOF with no further bytes."""
        try:
            self._read(1, timeout)
        except EOFError:
            return True
        return False

    def call(self, command, args=None, session_id=None, req_id=_AUTO):
        """Sends one request and returns its reply (checking the id)."""
        if req_id is _AUTO:
            req_id = self._next_id
            self._next_id += 1
        req = {"id": req_id, "command": command}
        if args is not None:
            req["args"] = args
        if session_id is not None:
            req["session_id"] = session_id
        self.send(req)
        reply = self.recv()
        if reply.get("id") != req_id:
            raise AssertionError("reply id %r for request id %r" % (reply.get("id"), req_id))
        return reply

    def close_stdin(self):
        self.proc.stdin.close()

    def wait(self, timeout=5.0):
        """The exit status (raises subprocess.TimeoutExpired)."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def close(self):
        """Ends the worker if it still runs and releases the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self._reader.join(5)
        self.proc.stderr.close()
