"""Run a test's risky step in a forked child: hangs, crashes and memory limits stay there.

``in_child(fn, ...)`` forks (medlab is already imported, so the child starts in
milliseconds), optionally drops root (``as_user``: root ignores permission
bits, so a test of an unreadable file must run as another user) and caps the
address space (``extra_address_space``: an allocation beyond it fails instead
of taking the machine's memory), runs ``fn`` and sends back its result or its
exception. A child that does not answer within ``timeout_s`` is killed and
reported as a hang.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import signal
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class ChildResult:
    exitcode: int | None
    ok: bool
    value: Any  # fn's return value, or "ExcType: message\ntraceback"
    hung: bool = False


def virtual_memory_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def in_child(fn, *args, timeout_s: float = 120, as_user: int | None = None,
             extra_address_space: int | None = None) -> ChildResult:
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            if extra_address_space is not None:
                limit = virtual_memory_bytes() + extra_address_space
                resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(
                    resource.RLIMIT_AS)[1]))
            if as_user is not None:
                os.setgroups([])  # none of root's supplementary groups
                os.setgid(as_user)
                os.setuid(as_user)
            out = (True, fn(*args))
        except BaseException as exc:  # sent back to the test
            out = (False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        send.send(out)
        send.close()

    proc = ctx.Process(target=target, daemon=True)
    proc.start()
    send.close()
    if not receive.poll(timeout_s):
        proc.kill()
        proc.join(10)
        return ChildResult(proc.exitcode, False, f"no answer within {timeout_s} s", hung=True)
    try:
        ok, value = receive.recv()
    except EOFError:  # the child died without answering (killed, aborted)
        proc.join(10)
        return ChildResult(proc.exitcode, False, f"child died (exit code {proc.exitcode})")
    proc.join(30)
    return ChildResult(proc.exitcode, ok, value)


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging forever) when the block takes longer than ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
