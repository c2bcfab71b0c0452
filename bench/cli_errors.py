"""Seconds until ``python -m dnc`` reports a bad setting (issue target: at most 3 s each).

Each case runs ``python -m dnc <bad settings>`` in a fresh process (``--repeats`` times, the
median) and must end with one ``dnc: error:`` line. The baseline, timed the same way in the same
run, is ``python -c "import torch"``: the floor of any command that may train. A case that needs
torch to find the error (CUDA asked for where there is none) cannot be faster than it.

    python bench/cli_errors.py [--repeats 3]

Last line: one JSON object with ``seconds`` per case, ``max_seconds``, ``baseline_seconds``
(import torch), ``max_ratio_to_baseline``, ``target_seconds`` and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "misspelt key": ["search.bo.stepz=3"],
    "wrong type": ["seed=notanumber"],
    "bad value": ["search.wc=-1"],
    "missing .npz": ["dataset=npz", "dataset.path=/nonexistent/data.npz"],
    "missing image folder": ["dataset=cifar10", "dataset.root=/nonexistent/cifar"],
    "bad space bounds": ["search_space.hidden_layers=[3,1]"],
    "bad cnn setting": ["search_space=cnn", "search_space.core.conv_layers=[5,4]"],
    "unknown plugin key": ["+search_space.hidden_layer=[1,2]"],
    "bad cost setting": ["cost=hardware", "cost.metric=speed"],
    "bad trainer setting": ["trainer.epochs=0"],
    "cuda where there is none": ["trainer.device=cuda"],
}


def seconds(args: list[str], cwd: str, expect_error: bool) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if expect_error and not (proc.returncode == 2 and proc.stderr.startswith("dnc: error:")):
        raise SystemExit(f"{args}: expected one error line, got {proc.returncode} {proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        baseline = statistics.median(
            seconds([sys.executable, "-c", "import torch"], cwd, False) for _ in range(args.repeats)
        )
        figures = {}
        for name, bad in CASES.items():
            cmd = [sys.executable, "-m", "dnc", f"hydra.run.dir={cwd}/run", *bad]
            figures[name] = round(
                statistics.median(seconds(cmd, cwd, True) for _ in range(args.repeats)), 2
            )
            print(f"{name:<26} {figures[name]:5.2f} s", flush=True)
    worst = max(figures.values())
    print(
        json.dumps(
            {
                "seconds": figures,
                "max_seconds": worst,
                "baseline_seconds": round(baseline, 2),
                "max_ratio_to_baseline": round(worst / baseline, 2),
                "target_seconds": 3.0,
                "repeats": args.repeats,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}, CPU only",
            }
        )
    )


if __name__ == "__main__":
    main()
