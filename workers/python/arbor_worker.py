"""arbor_worker: write arbor workers in Python (SPEC 5), standard library only.

A worker registers one handler per command and calls run()::

    from arbor_worker import Worker, CommandError

    worker = Worker()

    @worker.command("add")
    def add(args, session_id):
        if "a" not in args or "b" not in args:
            raise CommandError("a and b are required")
        return {"sum": args["a"] + args["b"]}

    worker.run()

The SDK reads request frames on stdin, one at a time, and writes exactly one
reply frame per request. A frame is a 4-byte big-endian length followed by
that many bytes of UTF-8 JSON. Replies are::

    {"id": <request id, unchanged>, "success": true,  "result": <handler result>}
    {"id": <request id, unchanged>, "success": false, "error": "<message>"}

Handlers are called as ``fn(args, session_id)``: ``args`` is the request's
"args" object ({} when absent) and ``session_id`` its "session_id" or None.
The return value (any JSON-serialisable value) becomes the result.

Built in:

* ``ping`` answers {"pong": true, "worker_id": <name>, "pid": <pid>}; the
  name comes from the init ping's args.worker_id. A handler registered for
  "ping" replaces the reply (worker_id is remembered all the same).
* ``shutdown`` answers {"shutting_down": true} and the process exits 0. A
  handler registered for "shutdown" runs first (for cleanup); a non-None
  return value replaces the reply. The process exits either way. A SIGTERM
  or SIGINT that stops the worker before a shutdown request was handled
  runs that handler too (with {} and None), as arbord sends SIGTERM right
  behind its shutdown frame: the cleanup runs once, whichever comes first.
  The signal handling is in place from Worker() on: a SIGTERM or SIGINT
  that arrives before run() is held until run(), which then runs the
  handler (registered by then) and exits 0 without reading a request.
* An unknown command gets the error "unknown command: <name>".
* A handler raising CommandError gets its message as the error, verbatim.
  Any other exception gets "<ExceptionType>: <message>" and its traceback
  goes to stderr; the worker keeps serving. An exception whose str() fails
  gets "<exception str() failed>" as its message. This holds for
  BaseException subclasses too (GeneratorExit, a library's own), except
  SystemExit and KeyboardInterrupt, which are not errors of the request: a
  handler calling sys.exit() ends the worker, and its restart type decides
  what follows.

Protocol stream hygiene: creating the Worker moves the protocol to private
duplicates of fds 0 and 1, then points fd 1 (and sys.stdout) at stderr and
fd 0 at /dev/null. From then on print(), C extensions and child processes
write to stderr, which arbord logs line by line, and cannot read or corrupt
frames. Create the Worker before anything may print (output still buffered
in sys.stdout at that moment is sent to stderr too).

Exit statuses (the process exits with these when run() returns):

* 0 (EXIT_OK): EOF on stdin between frames, shutdown, SIGTERM or SIGINT.
* 1 (EXIT_IO): reading or writing the protocol stream failed.
* 2 (EXIT_PROTOCOL): a request frame larger than the maximum (default
  16 MiB, env ARBOR_MAX_FRAME_BYTES) or a truncated frame: the stream
  cannot be trusted past it.

A reply that would exceed the maximum frame size, or whose result is not
JSON-serialisable (nested too deeply, or raising anything while it is
encoded, included) or not JSON that arbord reads (a string holding U+0000
or a lone surrogate, an integer outside the signed 64-bit range, a dict
whose keys json writes alike, as {1: "a", "1": "b"}), is replaced by an
error reply. In an error message, U+0000 and lone
surrogates are sent as the text "\\x00", "\\udcff". A whole frame whose
payload is not a request (not UTF-8, not JSON, JSON nested too deeply for
Python's decoder, or not an object) is refused without ending the worker,
as the next frame starts right after it: it gets the error "invalid
request: <why>" when its id can be read (arbord writes it first), else the
refusal is only logged on stderr.
"""

import json
import os
import re
import signal
import struct
import sys
import time
import traceback

__all__ = ["Worker", "CommandError", "EXIT_OK", "EXIT_IO", "EXIT_PROTOCOL",
           "DEFAULT_MAX_FRAME_BYTES"]

EXIT_OK = 0
EXIT_IO = 1
EXIT_PROTOCOL = 2

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")


class CommandError(Exception):
    """Raise from a handler to reply with exactly this error message."""


class ProtocolError(Exception):
    """The parent broke the framing: an oversized or truncated frame."""


class _Refused:
    """A whole frame that is not a request: why, and its id if readable."""

    def __init__(self, req_id, reason):
        self.req_id = req_id
        self.reason = reason


# The id of a request as arbord frames it: {"id":<64-bit integer>, ...
_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*(-?(?:0|[1-9][0-9]{0,18}))\s*[,}]')


class _Stop(BaseException):
    """Raised by the SIGTERM/SIGINT handler to unwind out of run() cleanly.

    A BaseException, so that a handler's ``except Exception`` does not
    swallow it.
    """


# What a handler may raise to end the worker rather than fail its request.
_EXITS = (SystemExit, KeyboardInterrupt, _Stop)


def _max_frame_from_env():
    """Returns ARBOR_MAX_FRAME_BYTES if set to a positive integer, else the default."""
    raw = os.environ.get("ARBOR_MAX_FRAME_BYTES")
    if not raw:
        return DEFAULT_MAX_FRAME_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        _log("ignoring invalid ARBOR_MAX_FRAME_BYTES=%r" % raw)
        return DEFAULT_MAX_FRAME_BYTES
    return value


def _log(message):
    """Writes one line to stderr (arbord logs it under the worker's name)."""
    try:
        sys.stderr.write("arbor_worker: %s\n" % message)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _reject_constant(name):
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError("invalid JSON constant %s" % name)


class Worker:
    """A command dispatcher speaking the arbor worker protocol on stdin/stdout."""

    def __init__(self, max_frame_bytes=None):
        """Creates a worker with no handlers and claims the process's stdio.

        max_frame_bytes bounds request and reply frames; default: the
        environment variable ARBOR_MAX_FRAME_BYTES, else 16 MiB.
        """
        self.max_frame_bytes = max_frame_bytes or _max_frame_from_env()
        self.worker_id = None      # from the init ping's args.worker_id
        self.commands_handled = 0  # requests received, the current one included
        self.errors = 0            # error replies sent
        self.started = time.monotonic()
        self._handlers = {}
        self._stopping = False
        self._serving = False      # inside serve(): a signal may unwind it
        self._writing = False      # a reply frame is going out
        self._signalled = False    # stopped by SIGTERM/SIGINT
        self._in, self._out = _claim_stdio()
        self._catch_signals()

    # -- registration -----------------------------------------------------

    def register(self, name, fn):
        """Registers fn(args, session_id) for command name; returns fn."""
        if not isinstance(name, str) or not name:
            raise ValueError("command name must be a non-empty string")
        if not callable(fn):
            raise TypeError("handler for %r is not callable" % name)
        self._handlers[name] = fn
        return fn

    def command(self, name=None):
        """Decorator form of register(): ``@worker.command("name")``.

        ``@worker.command`` without a name uses the function's name.
        """
        if callable(name):
            return self.register(name.__name__, name)

        def decorate(fn):
            return self.register(name or fn.__name__, fn)
        return decorate

    def uptime_ms(self):
        """Milliseconds since the worker was created."""
        return int((time.monotonic() - self.started) * 1000)

    def reset_counters(self):
        """Zeroes commands_handled and errors."""
        self.commands_handled = 0
        self.errors = 0

    # -- dispatch ----------------------------------------------------------

    def handle(self, request):
        """Runs one request (a dict) and returns its reply dict.

        Never raises for handler failures; sets self._stopping after a
        shutdown request.
        """
        self.commands_handled += 1
        req_id = request.get("id")
        command = request.get("command")
        args = request.get("args")
        session_id = request.get("session_id")
        if args is None:
            args = {}
        try:
            if not isinstance(command, str) or not command:
                raise CommandError("invalid request: command must be a non-empty string")
            if not isinstance(args, dict):
                raise CommandError("invalid request: args must be an object")
            if session_id is not None and not isinstance(session_id, str):
                raise CommandError("invalid request: session_id must be a string")
            result = self._dispatch(command, args, session_id)
        except CommandError as exc:
            return self._error(req_id, _message(exc))
        except _EXITS:
            raise
        except BaseException as exc:  # any other handler failure: an error reply
            _log("command %r failed:\n%s" % (command, traceback.format_exc().rstrip()))
            return self._error(req_id, _describe(exc))
        return {"id": req_id, "success": True, "result": result}

    def _dispatch(self, command, args, session_id):
        """Calls the handler for command, or the built-in one."""
        if command == "ping" and isinstance(args.get("worker_id"), str):
            self.worker_id = args["worker_id"]
        if command == "shutdown":
            self._stopping = True
        fn = self._handlers.get(command)
        if fn is not None:
            result = fn(args, session_id)
            if command == "shutdown" and result is None:
                result = {"shutting_down": True}
            return result
        if command == "ping":
            return {"pong": True, "worker_id": self.worker_id, "pid": os.getpid()}
        if command == "shutdown":
            return {"shutting_down": True}
        raise CommandError("unknown command: %s" % command)

    def _error(self, req_id, message):
        """Builds an error reply and counts it."""
        self.errors += 1
        return {"id": req_id, "success": False, "error": _safe_text(message)}

    # -- framing -----------------------------------------------------------

    def _read_exact(self, n):
        """Reads exactly n bytes; returns fewer only at EOF."""
        chunks = []
        while n > 0:
            chunk = self._in.read(n)
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_request(self):
        """Reads one request frame; returns the request dict, None at EOF,
        or a _Refused for a payload that is not a request (not UTF-8 JSON,
        nested too deeply to decode, or not an object).

        Raises ProtocolError on a truncated or oversized frame.
        """
        header = self._read_exact(_HEADER.size)
        if not header:
            return None
        if len(header) < _HEADER.size:
            raise ProtocolError("truncated frame header (%d bytes)" % len(header))
        (length,) = _HEADER.unpack(header)
        if length > self.max_frame_bytes:
            raise ProtocolError("frame of %d bytes exceeds max_frame_bytes %d"
                                % (length, self.max_frame_bytes))
        payload = self._read_exact(length)
        if len(payload) < length:
            raise ProtocolError("truncated frame: %d of %d bytes" % (len(payload), length))
        try:
            request = _DECODER.decode(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return _refuse(payload, "not UTF-8: %s" % exc)
        except ValueError as exc:  # JSONDecodeError, NaN, too many digits
            return _refuse(payload, "invalid JSON: %s" % exc)
        except RecursionError:
            return _refuse(payload, "nested too deeply")
        if not isinstance(request, dict):
            return _Refused(None, "not a JSON object")
        return request

    def encode_reply(self, reply):
        """Serialises a reply to a frame, degrading it to an error reply if
        the result is not JSON that arbord reads or the frame would be too
        large."""
        try:
            payload = _dumps(reply)
            why = _unreadable(reply, payload)
        except Exception as exc:  # user objects in the result may raise anything
            why = _describe(exc)
        if why is not None:
            _log("reply to request %r is not JSON arbord reads: %s" % (reply.get("id"), why))
            reply, payload = self._replace_reply(reply, why)
        if len(payload) > self.max_frame_bytes:
            reply, payload = self._replace_reply(reply, "reply too large: %d bytes exceeds "
                                                 "max_frame_bytes %d"
                                                 % (len(payload), self.max_frame_bytes))
        return _HEADER.pack(len(payload)) + payload

    def _replace_reply(self, reply, message):
        """An error reply standing in for reply (counted once as an error),
        and its payload. An id that cannot be encoded (only a peer other
        than arbord can send one) gives way to null."""
        if reply.get("success"):
            self.errors += 1
        reply = {"id": reply.get("id"), "success": False, "error": _safe_text(message)}
        try:
            return reply, _dumps(reply)
        except ValueError:  # a float id out of range, a lone surrogate in it
            reply["id"] = None
            return reply, _dumps(reply)

    def write_reply(self, reply):
        """Writes one reply frame and flushes it. A SIGTERM/SIGINT arriving
        meanwhile only stops the loop after it (see _on_signal), so that a
        frame is never cut in half by our own exit."""
        frame = self.encode_reply(reply)
        self._writing = True
        try:
            self._out.write(frame)
            self._out.flush()
        finally:
            self._writing = False

    # -- process -----------------------------------------------------------

    def _catch_signals(self):
        """Installs _on_signal for SIGTERM and SIGINT (from the main thread
        only, where Python runs signal handlers)."""
        try:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        except ValueError:  # not the main thread: serve() tries again
            pass

    def _on_signal(self, signum, frame):
        """SIGTERM/SIGINT: leave run() at the next opportunity, exit 0: at
        once, or once the reply frame being written is out. Before run(),
        the signal is held: the handlers are still being registered, and
        run() then runs the "shutdown" one and exits without serving."""
        if not self._stopping:
            self._stopping = True
            self._signalled = True
            if self._serving and not self._writing:
                raise _Stop()

    def serve(self):
        """Serves requests and returns the exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._serving = True
            while not self._stopping:
                request = self.read_request()
                if request is None:
                    return EXIT_OK
                if isinstance(request, _Refused):
                    self.commands_handled += 1
                    _log("refused request %s: %s" % (
                        "(no id)" if request.req_id is None else request.req_id,
                        request.reason))
                    if request.req_id is None:
                        continue
                    reply = self._error(request.req_id,
                                        "invalid request: " + request.reason)
                else:
                    reply = self.handle(request)
                self.write_reply(reply)
            if self._signalled:     # it came before run() or during a write
                self._cleanup_on_signal()
            return EXIT_OK
        except _Stop:
            self._cleanup_on_signal()
            return EXIT_OK
        except ProtocolError as exc:
            _log("protocol error: %s" % exc)
            return EXIT_PROTOCOL
        except BrokenPipeError:
            _log("stdout closed by the parent")
            return EXIT_IO
        except OSError as exc:
            _log("I/O error on the protocol stream: %s" % exc)
            return EXIT_IO
        finally:
            # The handlers stay installed: with _stopping set, a late
            # SIGTERM no longer interrupts the exit or turns it abnormal.
            self._stopping = True

    def _cleanup_on_signal(self):
        """Runs the "shutdown" handler for a worker stopped by a signal
        (a shutdown request sets _stopping itself, and a signal after it
        is then ignored, so the handler never runs twice)."""
        fn = self._handlers.get("shutdown")
        if fn is None:
            return
        try:
            fn({}, None)
        except _EXITS:
            raise
        except BaseException:  # the exit goes on; the cause goes to the log
            _log("shutdown handler failed:\n%s" % traceback.format_exc().rstrip())

    def run(self):
        """Serves requests until EOF, shutdown, a signal or a protocol error,
        then exits the process with the matching status. Does not return."""
        code = self.serve()
        # The interpreter's exit puts Python-level signal handlers back to
        # the default, so a SIGTERM arriving then would kill the process
        # (an abnormal exit): the exit is under way, ignore it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._out.close()
        except OSError:
            pass
        sys.exit(code)


# Made once: json.loads and json.dumps build a new coder per call when given
# options.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                            ensure_ascii=False)

# arbord's JSON parser (jansson) refuses strings holding U+0000, integers
# beyond 64 bits and objects with a repeated key, all of which Python may
# write: a key that is not a str is written as text ({1: .., "1": ..} gives
# "1" twice). The payload is searched for what these look like first, with
# C-speed substring searches on a copy whose digits are all "0"; the result
# is walked only when one was found.
_INT64_MIN = -2 ** 63
_INT64_MAX = 2 ** 63 - 1
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
# How a key that is not a str is written: an int or a float (its repr,
# ending in a digit), true, false, null.
_NON_STR_KEY = re.compile(rb'"(?:-?[0-9][0-9.e+-]*|true|false|null)":')


def _refuse(payload, reason):
    """A _Refused for payload, with its id when it leads the payload as in
    arbord's requests."""
    match = _LEADING_ID.match(payload)
    return _Refused(int(match.group(1)) if match else None, reason)


def _dumps(obj):
    """Compact UTF-8 JSON; NaN and Infinity are refused (not JSON), and so
    is a lone surrogate (UnicodeEncodeError: not UTF-8)."""
    return _ENCODER.encode(obj).encode("utf-8")


def _may_have_non_str_key(payload, digits):
    """Whether payload (digits: the same with each digit as "0") has a key
    written as a key that is not a str would be; the regex only runs when
    some key ends in a digit."""
    if b'"true":' in payload or b'"false":' in payload or b'"null":' in payload:
        return True
    return b'0":' in digits and _NON_STR_KEY.search(payload) is not None


def _unreadable(reply, payload):
    """Why arbord would refuse the result of reply, encoded as payload, as
    not JSON, or None: a string holding U+0000, an integer outside the
    signed 64-bit range, keys written alike in one object."""
    digits = payload.translate(_DIGITS_AS_ZERO)
    check_keys = _may_have_non_str_key(payload, digits)
    if not check_keys and b"\\u0000" not in payload and _LONG_DIGITS not in digits:
        return None
    stack = [reply.get("result")]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                return "a string holds U+0000 (NUL), which arbord does not read"
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                return "an integer is outside the signed 64-bit range arbord reads"
        elif isinstance(value, dict):
            repeated = _repeated_key(value) if check_keys else None
            if repeated is not None:
                return ("an object has the repeated key %s (keys that are not str "
                        "are written as text), which arbord does not read"
                        % _ENCODER.encode(repeated))
            for key, item in value.items():
                if isinstance(key, str):
                    stack.append(key)
                stack.append(item)
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return None


def _repeated_key(obj):
    """The text of a key of the dict obj written as another key of it is
    (1 and "1", True and "true", None and "null"), or None. Only a str key
    can be written as a key that is not a str is: two distinct ints, or
    floats, have distinct reprs, a float's never looks like an int's."""
    others = [key for key in obj if not isinstance(key, str)]
    if not others or len(others) == len(obj):
        return None
    for text in map(_key_text, others):
        if text in obj:
            return text
    return None


def _key_text(key):
    """A dict key that is not a str as json writes it (the order of its
    checks, the base types' own repr as it uses them)."""
    if isinstance(key, float):
        return float.__repr__(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return int.__repr__(key)


def _safe_text(message):
    """message with what arbord does not read in a string (U+0000, lone
    surrogates) spelled out as backslash escapes."""
    if "\0" in message:
        message = message.replace("\0", "\\x00")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return message


_claimed = None


def _claim_stdio():
    """Moves the protocol to private fds (once per process) and returns the
    (input, output) binary streams; fd 1 -> stderr, fd 0 -> /dev/null."""
    global _claimed
    if _claimed is None:
        in_fd = os.dup(0)   # os.dup() fds are not inherited by children
        out_fd = os.dup(1)
        os.dup2(2, 1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        # Whatever print() left buffered so far now goes to stderr.
        try:
            sys.stdout.flush()
        except (AttributeError, OSError, ValueError):
            pass
        sys.stdout = sys.stderr
        # Buffered both ways: a frame's header and payload in one read.
        _claimed = (os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb"))
    return _claimed


def _message(exc):
    """str(exc), or a stand-in when the exception's own __str__ fails (a bug
    in user code must not take the worker down with it)."""
    try:
        return str(exc)
    except _EXITS:
        raise
    except BaseException:
        return "<exception str() failed>"


def _describe(exc):
    """'ExceptionType: message', or just the type name when the message is empty."""
    message = _message(exc)
    name = type(exc).__name__
    return "%s: %s" % (name, message) if message else name
