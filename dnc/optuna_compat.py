"""Every use of Optuna's private API, in one place (``tests/test_optuna_compat.py`` covers each).

dnc needs a few things Optuna does not expose publicly: a trial's and a study's storage ids, a
sampler writing a system attribute on the trial it samples for, failing a running trial that
belongs to a dead worker, a heartbeat for trials run through ``ask``/``tell``, and whether a
distribution contains a value. When an Optuna upgrade changes any of them, this module is the
one to mend.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study`` (stable across processes sharing the storage)."""
    return int(study._study_id)


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of ``trial``, unique across the studies of a storage."""
    return int(trial._trial_id)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of every study in ``storage``, oldest first (by storage id: the creation order,
    which ``get_all_studies`` does not promise)."""
    return [s.study_name for s in sorted(storage.get_all_studies(), key=lambda s: s._study_id)]


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes (without the cache Optuna wraps it in)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)  # type: ignore[no-any-return]


def set_trial_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Record ``key: value`` in the system attributes of ``trial`` (what a sampler may do for the
    trial it samples; ``Trial.set_system_attr`` is gone from the public API)."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def fail_trial(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Mark a running ``trial`` of another (dead) process failed; False when it has finished
    meanwhile (another worker got there first)."""
    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check (``optuna.storages.fail_stale_trials``, experimental since 2.9):
    fail the running trials whose process stopped beating."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for a trial that ``heartbeat`` keeps alive (Optuna warns that a storage
    with a heartbeat is meant for ``Study.optimize``; dnc beats as ``optimize`` does)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat for ``trial`` while the block runs, as ``Study.optimize`` does for its trials, so
    that a trial run through ``ask``/``tell`` is failed by the heartbeat check when its process
    dies (nothing happens on a storage without a heartbeat)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    with get_heartbeat_thread(trial._trial_id, study._storage):
        yield


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a value of ``distribution``."""
    try:
        internal = distribution.to_internal_repr(value)
    except (ValueError, TypeError):
        return False
    return bool(distribution._contains(internal))


def raise_if_multi_objective(sampler: optuna.samplers.BaseSampler, study: optuna.Study) -> None:
    """Optuna's own error for a single-objective sampler on a multi-objective study."""
    sampler._raise_error_if_multi_objective(study)


__all__ = [
    "ask",
    "contains",
    "fail_stale_trials",
    "fail_trial",
    "heartbeat",
    "raise_if_multi_objective",
    "set_trial_system_attr",
    "study_id",
    "storage_of",
    "study_names",
    "trial_id",
]
