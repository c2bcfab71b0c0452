"""What dnc's command-line entry points share: one-line errors (``dnc: error: ...``, exit 2)
for everything a user can fix, including Hydra's multi-line composition errors.

``run_cli(main)`` runs a ``@hydra.main`` entry point with Hydra's stderr held back; when
composition fails (an unknown group option or key, a value of the wrong type), the held text
becomes one line, naming the valid keys where a key is unknown. The entry point calls
``release_stderr()`` once its task starts.

``stop_on_signals()`` turns SIGTERM (a cluster's warning before preemption) and Ctrl-C into
``Interrupted``, which a search handles by closing its running trial; a second signal, or a
clean-up that takes longer than ``grace_s``, ends the process at once.

A write that fails (a full disk, a run folder that cannot be written) is one line too
(``dnc.write_errors``): ``run_cli`` reports the run folder Hydra could not make or write before
the entry point ran (Hydra makes ``hydra.run.dir``, opens the log and saves ``.hydra/`` there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from hydra.experimental.callback import Callback

from dnc.write_errors import FailedWrite, failed_write


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``dnc: error: message`` to stderr (passwords scrubbed) and exit with ``code``."""
    from dnc.secrets import scrub

    print(f"dnc: error: {scrub(message)}", file=sys.stderr)
    sys.exit(code)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT (Ctrl-C) asked the process to stop; ``exit_code`` is the shell's
    ``128 + signal`` (143 for SIGTERM, 130 for Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(grace_s: float = 8.0) -> Iterator[None]:
    """In the block, the first SIGTERM or SIGINT raises ``Interrupted`` in the main thread; the
    clean-up that follows has ``grace_s`` seconds, after which, or at a second signal, the
    process exits at once with ``128 + signal``. Outside a main thread it does nothing.

    Python runs a signal's handler between any two bytecodes, a finaliser's included (a
    ``__del__``, a weakref callback such as SQLAlchemy's), and an exception raised inside a
    finaliser is printed as "Exception ignored" and dropped. Such an ``Interrupted`` is sent
    again (``sys.unraisablehook``), so the signal still stops the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}
    previous_hook = sys.unraisablehook
    received: list[int] = []  # the first signal
    dropped: list[int] = []  # it again, while its Interrupted, swallowed by a finaliser, is resent
    hooking = [False]
    resending: list[threading.Timer] = []

    def exit_now(signum: int) -> None:
        os.write(2, b"dnc: stopped at once; run the same command again to resume\n")
        os._exit(128 + signum)

    def resend(signum: int) -> None:
        """Send the signal again from another thread: its handler runs in the main thread at
        the next bytecode past the finaliser (and this hook) that swallowed it."""
        dropped[:] = [signum]
        timer = threading.Timer(0.01, os.kill, args=(os.getpid(), signum))
        timer.daemon = True
        timer.start()
        resending.append(timer)

    def at_once(signum: int, frame: object) -> None:
        if dropped:  # not a second signal: the first one, sent again
            if hooking[0]:
                resend(dropped[0])
                return
            raise Interrupted(dropped.pop())
        exit_now(signum)

    def first(signum: int, frame: object) -> None:
        received.append(signum)
        for s in signals:
            signal.signal(s, at_once)
        timer = threading.Timer(grace_s, exit_now, args=(signum,))
        timer.daemon = True
        timer.start()
        raise Interrupted(signum)

    def swallowed(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            previous_hook(unraisable)
            return
        hooking[0] = True
        try:
            resend(unraisable.exc_value.signum)
        finally:
            hooking[0] = False

    for s in signals:
        signal.signal(s, first)
    sys.unraisablehook = swallowed
    try:
        yield
        if received:  # the block ended, yet a signal came: it was lost on its way
            raise Interrupted(received[0])
    finally:
        for timer in resending:  # the block is over: a resent signal must not kill the process
            timer.cancel()
        sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, handler)


class HeldStderr(io.StringIO):
    """Holds what Hydra writes to stderr while it composes the config."""

    def __init__(self) -> None:
        super().__init__()
        self.real = sys.stderr

    def release(self) -> None:
        if sys.stderr is self:
            sys.stderr = self.real
            self.real.write(self.getvalue())
        # Hydra's console logging, set up while stderr was held, writes to the real one now

        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", ()):
                if isinstance(handler, logging.StreamHandler) and handler.stream is self:
                    handler.setStream(self.real)


def release_stderr() -> None:
    """Give stderr back (an entry point calls this first: composition went well)."""
    if isinstance(sys.stderr, HeldStderr):
        sys.stderr.release()


class ReleaseStderr(Callback):
    """A Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``): a multirun's parent
    process gives stderr back once its config composed, before the launcher starts the jobs
    (its own messages and the jobs' are not composition errors)."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        release_stderr()


def one_line(hydra_error: str, config_name: str = "config") -> str:
    """Hydra's multi-line error as one line: lists of options joined, hints dropped, and for an
    unknown key the valid keys."""
    explained = _unknown_key(hydra_error, config_name) or _wrong_type(hydra_error)
    if explained:
        return explained
    parts: list[str] = []
    listing = False  # inside "Available options in 'group':" followed by one option a line
    for line in hydra_error.splitlines():
        text = line.strip()
        if not text or text.startswith(
            (
                "Set the environment variable HYDRA_FULL_ERROR",
                "full_key:",
                "object_type=",
                "reference_type=",
            )
        ):
            continue
        if text.startswith("Config search path"):
            break
        if listing and line.startswith(("\t", "  ")):
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + text
            continue
        listing = text.endswith(":")
        parts.append(text.rstrip("."))
    return "; ".join(parts)


def _unknown_key(hydra_error: str, config_name: str) -> str | None:
    """``KEY: unknown key; valid keys: ...`` for Hydra's "Key 'x' not in 'Schema'" (a typed
    group) or "Key 'x' is not in struct" (any other node, e.g. a plugin group), else None."""
    from dnc.config import schema_path, valid_keys

    found = re.search(r"Key '([^']+)' (?:not in '(\w+)'|is not in struct)", hydra_error)
    if found is None:
        return None
    key, schema = found.group(1), found.group(2)
    full = re.search(r"full_key: (\S+)", hydra_error)
    where = full.group(1) if full else key
    if "." not in where and schema and schema_path(schema):
        where = f"{schema_path(schema)}.{key}"  # a key in a file: Hydra names only the key
    valid = valid_keys(schema) if schema else _keys_near(where, config_name)
    source = re.search(r"(?:In|Error merging) '([^']+)'", hydra_error)
    origin = f" (in {source.group(1)}.yaml)" if source else ""
    hint = f"; valid keys: {', '.join(valid)}" if valid else ""
    return f"{where}: unknown key{origin}{hint}"


def _wrong_type(hydra_error: str) -> str | None:
    """``KEY=VALUE: give ...`` for Hydra's "Value 'v' ... could not be converted to Integer"."""
    found = re.search(
        r"override (\S+?)=(.*?)\n.*?could not be converted to (\w+)", hydra_error, re.S
    )
    if found is None:
        return None
    kind = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}
    wanted = kind.get(found.group(3), found.group(3).lower())
    return f"{found.group(1)}={found.group(2)}: give {wanted}"


def _keys_near(full_key: str, config_name: str) -> list[str]:
    """The keys beside ``full_key`` in the config composed from the command line without the
    override that named it (for nodes without a schema: the plugin groups)."""
    parent = full_key.rpartition(".")[0]
    if not parent:
        return []
    try:
        from hydra import compose, initialize_config_module

        overrides = [
            a for a in sys.argv[1:] if "=" in a and not a.lstrip("+~").startswith(full_key)
        ]
        with initialize_config_module("dnc.conf", version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
        from omegaconf import OmegaConf

        node = OmegaConf.select(cfg, parent)
        return [str(k) for k in node.keys() if str(k) != "_target_"] if node is not None else []
    except Exception:
        return []


def run_cli(entry: Callable[[], Any], config_name: str = "config") -> None:
    """Run a ``@hydra.main`` entry point (whose primary config is ``config_name``); Hydra's
    composition errors become one ``dnc: error:`` line."""
    if hasattr(signal, "SIGPIPE"):  # `python -m dnc --help | head` ends quietly, as a CLI should
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    held = HeldStderr()
    sys.stderr = held
    try:
        entry()
    except SystemExit as exit_:
        if sys.stderr is held:
            sys.stderr = held.real
            text = held.getvalue()
            error = exit_.__context__  # what Hydra's report of an error hides
            failure, job_dir = failed_write(error), _job_dir(error)
            if exit_.code not in (0, None) and failure is not None and job_dir is not None:
                if failure.path is None:  # an OSError of write() names no file
                    failure = dataclasses.replace(failure, path=job_dir)
                fail(failure.message(_choose_another(failure)))
            if exit_.code not in (0, None) and text.strip():
                fail(one_line(text, config_name))
            sys.stderr.write(text)
        raise
    finally:
        held.release()


def _job_dir(error: BaseException | None) -> str | None:
    """The run folder Hydra's ``run_job`` was making or writing when ``error`` was raised (its
    local ``output_dir``); ``None`` for an error raised elsewhere (composing the config)."""
    import traceback

    tb = error.__traceback__ if error is not None else None
    for frame, _ in traceback.walk_tb(tb):
        output_dir = frame.f_locals.get("output_dir")
        if frame.f_code.co_name == "run_job" and isinstance(output_dir, str):
            return os.path.abspath(output_dir)
    return None


def _choose_another(failure: FailedWrite) -> str:
    """What to do when Hydra cannot create or write the run folder (before any search)."""
    multirun = any(a in ("-m", "--multirun") for a in sys.argv[1:])
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if failure.disk_full:
        return f"free some space, or choose a folder on another disk with {key}=PATH"
    return f"choose a writable run folder with {key}=PATH"


__all__ = [
    "HeldStderr",
    "Interrupted",
    "ReleaseStderr",
    "fail",
    "one_line",
    "release_stderr",
    "run_cli",
    "stop_on_signals",
]
