#!/usr/bin/env python3
"""bridge_worker: the arbor bridge worker (SPEC 5), built on arbor_worker.

Commands (besides the SDK's built-in ping and shutdown):

  create_program    {program_id?, signature?}  -> {"program_id"}
  execute_program   {program_id, inputs}       -> {"program_id", "outputs"}
  list_programs     {}                         -> {"programs": [id...]}
  delete_program    {program_id}               -> {"deleted": true}
  get_program_info  {program_id}               -> {"program_id", "signature", "executions",
                                                   "inputs", "outputs"}
  get_stats         {}                         -> {"programs_count", "command_count",
                                                   "error_count", "uptime_ms", "sessions_count"}
  cleanup_session   {session_id}               -> {"cleaned": n}
  reset_state       {}                         -> {"reset": true}

State lives in this process. Programs are kept per session: a request's
session_id selects its space, and requests without one share an anonymous
space. The same program_id may exist in several spaces independently.

A signature is "in1, in2 -> out1, out2" (default "question -> answer"):
comma-separated field names, identifiers, distinct, at least one on each side.
A program created without a program_id gets "prog_<n>", n counting up per
process (skipping ids already taken in the space).

The mock model is deterministic: every output field is set to

    "<output field>: " + " ".join(text(inputs[f]) for f in the input fields)

with the input fields in signature order and text(v) = v for a string,
else its compact JSON. For "question -> answer" and {"question": "hi"} the
outputs are {"answer": "answer: hi"}. An input field missing from "inputs"
is an error; extra inputs are ignored.

Counters: command_count is the number of requests this worker received
(including the get_stats being answered), error_count the number of error
replies it sent; reset_state zeroes both and drops every program in every
space. Errors: "program not found: <id>", "program already exists: <id>",
"invalid signature: ...", "missing input: <field>", and argument-type errors.
"""

import json

from arbor_worker import CommandError, Worker

DEFAULT_SIGNATURE = "question -> answer"


def parse_signature(text):
    """Parses "a, b -> c" into (["a", "b"], ["c"]); raises CommandError."""
    if not isinstance(text, str):
        raise CommandError("invalid signature: must be a string like %r" % DEFAULT_SIGNATURE)
    parts = text.split("->")
    if len(parts) != 2:
        raise CommandError("invalid signature: %r needs exactly one '->'" % text)
    sides = []
    for part in parts:
        fields = [f.strip() for f in part.split(",")]
        if not fields or any(not f.isidentifier() for f in fields):
            raise CommandError("invalid signature: %r: fields must be comma-separated names" % text)
        sides.append(fields)
    inputs, outputs = sides
    if len(set(inputs + outputs)) != len(inputs) + len(outputs):
        raise CommandError("invalid signature: %r repeats a field" % text)
    return inputs, outputs


def _text(value):
    """An input value as text for the mock model."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class Program:
    """A created program: its signature and how often it ran."""

    def __init__(self, program_id, inputs, outputs):
        self.program_id = program_id
        self.inputs = inputs
        self.outputs = outputs
        self.executions = 0

    @property
    def signature(self):
        """The normalised signature text, "a, b -> c"."""
        return "%s -> %s" % (", ".join(self.inputs), ", ".join(self.outputs))

    def run(self, inputs):
        """The deterministic mock model (see the module docstring)."""
        for field in self.inputs:
            if field not in inputs:
                raise CommandError("missing input: %s" % field)
        joined = " ".join(_text(inputs[f]) for f in self.inputs)
        self.executions += 1
        return {field: "%s: %s" % (field, joined) for field in self.outputs}


class Bridge:
    """The bridge's state and command handlers."""

    def __init__(self, worker):
        self.worker = worker
        self.spaces = {}   # session_id (None = anonymous) -> {program_id: Program}
        self.next_id = 1
        for name in ("create_program", "execute_program", "list_programs",
                     "delete_program", "get_program_info", "get_stats",
                     "cleanup_session", "reset_state"):
            worker.register(name, getattr(self, name))

    def _space(self, session_id, create=False):
        """The program dict of a session (created on demand if create)."""
        space = self.spaces.get(session_id)
        if space is None:
            space = {}
            if create:
                self.spaces[session_id] = space
        return space

    def _program(self, args, session_id):
        """The program named by args["program_id"] in the session's space."""
        program_id = args.get("program_id")
        if not isinstance(program_id, str) or not program_id:
            raise CommandError("program_id is required (a non-empty string)")
        program = self._space(session_id).get(program_id)
        if program is None:
            raise CommandError("program not found: %s" % program_id)
        return program

    def create_program(self, args, session_id):
        """Creates a program from a signature in the session's space."""
        inputs, outputs = parse_signature(args.get("signature", DEFAULT_SIGNATURE))
        program_id = args.get("program_id")
        if program_id is not None and (not isinstance(program_id, str) or not program_id):
            raise CommandError("program_id must be a non-empty string")
        space = self._space(session_id, create=True)   # checked: it gets one
        if program_id is None:
            while "prog_%d" % self.next_id in space:
                self.next_id += 1
            program_id = "prog_%d" % self.next_id
            self.next_id += 1
        elif program_id in space:
            raise CommandError("program already exists: %s" % program_id)
        space[program_id] = Program(program_id, inputs, outputs)
        return {"program_id": program_id}

    def execute_program(self, args, session_id):
        """Runs a program's mock model on args["inputs"]."""
        program = self._program(args, session_id)
        inputs = args.get("inputs", {})
        if not isinstance(inputs, dict):
            raise CommandError("inputs must be an object")
        return {"program_id": program.program_id, "outputs": program.run(inputs)}

    def list_programs(self, args, session_id):
        """The session's program ids, in creation order."""
        return {"programs": list(self._space(session_id))}

    def delete_program(self, args, session_id):
        """Deletes one program of the session."""
        program = self._program(args, session_id)
        space = self.spaces[session_id]
        del space[program.program_id]
        if not space:
            del self.spaces[session_id]
        return {"deleted": True}

    def get_program_info(self, args, session_id):
        """A program's signature and execution count."""
        program = self._program(args, session_id)
        return {"program_id": program.program_id, "signature": program.signature,
                "executions": program.executions, "inputs": list(program.inputs),
                "outputs": list(program.outputs)}

    def get_stats(self, args, session_id):
        """Worker-wide counters (all sessions)."""
        return {"programs_count": sum(len(s) for s in self.spaces.values()),
                "command_count": self.worker.commands_handled,
                "error_count": self.worker.errors,
                "uptime_ms": self.worker.uptime_ms(),
                "sessions_count": sum(1 for k in self.spaces if k is not None)}

    def cleanup_session(self, args, session_id):
        """Drops every program of args["session_id"] (default: the request's)."""
        target = args.get("session_id", session_id)
        if not isinstance(target, str) or not target:
            raise CommandError("session_id is required (a non-empty string)")
        return {"cleaned": len(self.spaces.pop(target, {}))}

    def reset_state(self, args, session_id):
        """Drops all programs of all sessions and zeroes the counters."""
        self.spaces.clear()
        self.next_id = 1
        self.worker.reset_counters()
        return {"reset": True}


def main():
    """Runs the bridge worker on stdin/stdout."""
    worker = Worker()
    Bridge(worker)
    worker.run()


if __name__ == "__main__":
    main()
