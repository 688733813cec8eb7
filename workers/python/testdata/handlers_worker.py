"""A worker with test handlers, built on arbor_worker.

Env: HANDLERS_PING_OVERRIDE=1 registers its own ping;
HANDLERS_SHUTDOWN_MARK=PATH registers a shutdown handler that appends a
line to PATH;
HANDLERS_EARLY_PRINT=1 prints between Worker() and run() (must end up
on stderr);
HANDLERS_EARLY_SIGTERM=POINTS sends the worker SIGTERM itself at each of
the comma-separated points: "init" right after Worker(), before any handler
is registered, "run" right before run().
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from arbor_worker import CommandError, Worker  # noqa: E402

worker = Worker()
EARLY_SIGTERM = os.environ.get("HANDLERS_EARLY_SIGTERM", "").split(",")

if "init" in EARLY_SIGTERM:
    os.kill(os.getpid(), signal.SIGTERM)

if os.environ.get("HANDLERS_EARLY_PRINT") == "1":
    print("printed before run")


@worker.command("echo")
def echo(args, session_id):
    return {"args": args, "session_id": session_id}


@worker.command("boom")
def boom(args, session_id):
    raise ValueError("bad things")


@worker.command
def fail(args, session_id):
    raise CommandError(args.get("message", "failed on purpose"))


class Unprintable(Exception):
    """An exception whose own __str__ is broken."""

    def __str__(self):
        raise RuntimeError("__str__ is broken too")


class UnprintableCommandError(CommandError):
    def __str__(self):
        raise RuntimeError("__str__ is broken too")


@worker.command("unprintable")
def unprintable(args, session_id):
    if args.get("command_error"):
        raise UnprintableCommandError("x")
    raise Unprintable("x")


def noisy(args, session_id):
    print("hello from print", args.get("n"))
    sys.stdout.write("via sys.stdout\n")
    os.write(1, b"via fd 1\n")
    os.system("echo via child process")
    return {"printed": True}


worker.register("noisy", noisy)


class Abort(BaseException):
    """A library's own BaseException subclass, not an exit request."""


class UnprintableAbort(BaseException):
    def __str__(self):
        raise Abort("__str__ is broken too")


@worker.command("base_exception")
def base_exception(args, session_id):
    kind = args.get("kind")
    if kind == "generator_exit":
        raise GeneratorExit("generator closed")
    if kind == "unprintable":
        raise UnprintableAbort()
    raise Abort("aborted")


@worker.command("read_stdin")
def read_stdin(args, session_id):
    return {"line": input()}


@worker.command("unserializable")
def unserializable(args, session_id):
    return {"obj": object()}


class BrokenMapping(dict):
    """A dict whose items() fails, as the JSON encoder calls it."""

    def items(self):
        raise KeyError("items() is broken")


@worker.command("broken_mapping")
def broken_mapping(args, session_id):
    return {"ok": BrokenMapping(a=1)}


# Values Python encodes as JSON but arbord's parser refuses, and their
# neighbours that it reads.
UNREADABLE = {
    "nul": "a\x00b",
    "nul_key": {"k\x00": 1},
    "surrogate": b"name-\xff".decode("utf-8", "surrogateescape"),
    "int_over": [1, {"n": 2 ** 63}],
    "int_under": -2 ** 63 - 1,
    # Keys that JSON spells alike: a repeated key, which arbord refuses.
    "dup_int": {1: "a", "1": "b"},
    "dup_bool": [{True: 1, "true": 2}],
    "dup_none": {"x": {None: 1, "null": 2}},
    "dup_float": {1.5: 1, "1.5": 2},
    "dup_int_bool": {False: 1, 0: 2, "false": 3},
}
READABLE = {
    "int_max": 2 ** 63 - 1,
    "int_min": -2 ** 63,
    "escaped_text": "\\u0000 and 12345678901234567890",
    "astral": "\U0001F600",
    "keys_apart": {3: "a", "2": "b", True: "c", None: "d", 2.5: "e"},
    "numeric_str_keys": {"1": "a", "true": "b"},
}


@worker.command("value")
def value(args, session_id):
    kind = args["kind"]
    if kind in UNREADABLE:
        return UNREADABLE[kind]
    return READABLE[kind]


@worker.command("big")
def big(args, session_id):
    return "x" * int(args["bytes"])


@worker.command("deep")
def deep(args, session_id):
    value = []
    for _ in range(int(args["depth"])):
        value = [value]
    return value


@worker.command("sleep")
def sleep(args, session_id):
    import time
    time.sleep(args.get("ms", 0) / 1000.0)
    return {"slept": True}


if os.environ.get("HANDLERS_PING_OVERRIDE") == "1":
    @worker.command("ping")
    def ping(args, session_id):
        return {"custom": True, "worker_id": worker.worker_id}

if os.environ.get("HANDLERS_SHUTDOWN_MARK"):
    @worker.command("shutdown")
    def shutdown(args, session_id):
        with open(os.environ["HANDLERS_SHUTDOWN_MARK"], "a") as f:
            f.write("cleaned up\n")

if "run" in EARLY_SIGTERM:
    os.kill(os.getpid(), signal.SIGTERM)

worker.run()
