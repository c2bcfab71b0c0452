"""What dnc's command-line entry points share: one-line errors (``dnc: error: ...``, exit 2)
for everything a user can fix, including Hydra's multi-line composition errors.

``run_cli(main)`` runs a ``@hydra.main`` entry point with Hydra's stderr held back; when
composition fails (an unknown group option or key, a value of the wrong type), the held text
becomes one line, naming the valid keys where a key is unknown. The entry point calls
``release_stderr()`` once its task starts.
"""

from __future__ import annotations

import io
import re
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from hydra.experimental.callback import Callback


def fail(message: str) -> NoReturn:
    """Print ``dnc: error: message`` to stderr (passwords scrubbed) and exit with status 2."""
    from dnc.secrets import scrub

    print(f"dnc: error: {scrub(message)}", file=sys.stderr)
    sys.exit(2)


class HeldStderr(io.StringIO):
    """Holds what Hydra writes to stderr while it composes the config."""

    def __init__(self) -> None:
        super().__init__()
        self.real = sys.stderr

    def release(self) -> None:
        if sys.stderr is self:
            sys.stderr = self.real
            self.real.write(self.getvalue())


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
            if exit_.code not in (0, None) and text.strip():
                fail(one_line(text, config_name))
            sys.stderr.write(text)
        raise
    finally:
        held.release()


__all__ = ["HeldStderr", "ReleaseStderr", "fail", "one_line", "release_stderr", "run_cli"]
