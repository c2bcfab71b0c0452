"""What a search leaves: its best candidates (``SearchResult``), ``results.json`` in the run
directory, and the final test of the best candidates."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from dnc.plugins import CostEvaluator, SearchSpace, TensorData
from dnc.search import records
from dnc.search.events import FinalTested, SearchObserver
from dnc.search.records import Ranked
from dnc.search.settings import SearchSettings
from dnc.train.settings import TrainerSettings


@dataclass
class SearchResult:
    """The best candidates of a search, best first (``test_acc`` by ``Ranked.key`` with
    ``final_test``)."""

    name: str
    best: list[Ranked]
    settings: SearchSettings
    cost_settings: dict[str, Any]
    test_acc: dict[str, float] = field(default_factory=dict)
    finished: bool = True


def write_results(
    path: Path,
    result: SearchResult,
    *,
    storage: str,
    cost: CostEvaluator,
    knee_wc: float | None = None,
) -> Path:
    """Write ``results.json``: the search, whether it finished, its storage (password masked)
    and cost, and the best candidates with their figures (and test accuracy); with
    ``search.wc=null``, the knee's ``wc`` that ranked them (``knee_wc``)."""
    best = []
    for r in result.best:
        row: dict[str, Any] = {
            "stage": r.stage,
            "substage": r.substage,
            "trial": r.number,
            "search_loss": r.loss,
            "figures": dict(r.figures),
            "candidate": dict(r.candidate),
            "mlflow_run_id": r.run_id,
        }
        if r.key in result.test_acc:
            row["test_acc"] = result.test_acc[r.key]
        best.append(row)
    content = {
        "search": result.name,
        "wc": result.settings.wc,
        **({"knee_wc": knee_wc} if result.settings.wc is None else {}),
        "finished": result.finished,
        "storage": storage,
        "cost": {"name": cost.name, **cost.settings()},
        "best": best,
    }
    write_atomically(path, json.dumps(content, indent=2))
    return path


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` whole or not at all: into a new file beside it, then
    renamed over it (``os.replace``). Workers sharing a run folder each replace ``results.json``
    with a whole one, and a full disk leaves the previous one as it was (and no partial file). An
    ``OSError`` names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        with open(fd, "wb") if isinstance(text, bytes) else open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if err.filename is None or os.fsdecode(err.filename) == str(temporary):
            raise OSError(err.errno, err.strerror, str(path)) from err  # the file users know
        raise


def recorded_test_acc(study: optuna.Study | None) -> dict[str, float]:
    """Test accuracies of an earlier final test (on the last stage's study)."""
    if study is None:
        return {}
    return dict(study.user_attrs.get(records.FINAL_TEST, {}))


def final_test(
    best: Sequence[Ranked],
    *,
    study: optuna.Study,
    studies: Mapping[str, optuna.Study],
    space: SearchSpace,
    data: TensorData,
    trainer: TrainerSettings,
    seed: int,
    observer: SearchObserver,
) -> dict[str, float]:
    """Retrain the ``best`` candidates on train + validation and measure their test accuracy
    (after the last epoch: the test set chooses nothing). Recorded on ``study`` (the last
    stage's), so a resumed search does not retrain them; ``studies`` by stage name give the
    trials to report to."""
    import torch

    from dnc.train.trainer import build_seeded, train

    merged = dataclasses.replace(
        data,
        xtr=torch.cat([data.xtr, data.xva]),
        ytr=torch.cat([data.ytr, data.yva]),
        xva=data.xte,
        yva=data.yte,
    )
    done = recorded_test_acc(study)
    no_patience = dataclasses.replace(trainer, patience=0)
    observer.message(
        f"final test: retraining the best {len(best)} on train + validation "
        f"({len(merged.xtr)} examples)"
    )
    for row in best:
        if row.key in done:
            continue
        result = train(
            build_seeded(space, row.candidate, data.spec, seed),
            merged,
            lr=float(row.candidate["lr"]),
            weight_decay=float(row.candidate["weight_decay"]),
            batch_size=int(row.candidate["batch_size"]),
            settings=no_patience,
            seed=seed,
        )
        done[row.key] = result.val_acc[-1]
        study.set_user_attr(records.FINAL_TEST, done)
        trial = studies[row.stage].trials[row.number]
        observer.final_tested(FinalTested(row, done[row.key], trial))
    return {r.key: done[r.key] for r in best}


__all__ = ["SearchResult", "final_test", "recorded_test_acc", "write_atomically", "write_results"]
