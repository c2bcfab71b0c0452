"""``Search``: the stages of a search, one Optuna study each, run in order against one storage.

The algorithm (DESIGN §3): calibrate the cost on this machine; run each stage from the best
candidate so far (a finished stage is skipped, an unfinished one resumes); retrain the best on
train + validation for their test accuracy (``final_test``); report the best candidates. Every
decision is read back from the storage, so a killed search resumes where it stopped and
several workers can share one storage (DESIGN §6).
"""

from __future__ import annotations

import collections
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna

from dnc.plugins import CostEvaluator, Dataset, SearchSpace, TensorData, UserError
from dnc.search import coordination, pareto, records, warm_start
from dnc.search.best_model import BestWeights
from dnc.search.calibration import calibrated
from dnc.search.driver import Driver, TrialsFailed, best_loss
from dnc.search.events import (
    Observers,
    SearchFinished,
    SearchObserver,
    SearchStarted,
    StageFinished,
    StageStarted,
)
from dnc.search.objective import LossParts, feasibility_screen
from dnc.search.pruning import make_pruner
from dnc.search.ranking import knee_of, ranked_trials, search_wc
from dnc.search.results import SearchResult, final_test, recorded_test_acc, write_results
from dnc.search.settings import SearchSettings, StorageSettings
from dnc.search.stages import Stage, StageContext, describe_stages, make_stage
from dnc.search.storage import load, mask_url, open_storage, search_studies, study_name
from dnc.search.trial import TrialRunner, worker_name
from dnc.train.settings import TrainerSettings


class Search:
    """Runs the stages of a search against its storage, telling ``observers`` (the console,
    the MLflow tracker, yours) what happens.

    Example:
        >>> result = Search(SearchSettings(name="demo"), space=MLPSpace(), dataset=Digits(),
        ...                 cost=TEpoch(), trainer=TrainerSettings(epochs=3),
        ...                 storage="sqlite:///demo.db").run()
        >>> result.best[0].candidate
    """

    def __init__(
        self,
        settings: SearchSettings,
        *,
        space: SearchSpace,
        dataset: Dataset | TensorData,
        cost: CostEvaluator,
        trainer: TrainerSettings | None = None,
        storage: StorageSettings | str = "sqlite:///optuna.db",
        seed: int = 0,
        observers: Sequence[SearchObserver] = (),
        output_dir: str | Path | None = None,
        resume_hint: str = "",
        worker: int | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.dataset = dataset
        self.cost = cost
        self.trainer = trainer or TrainerSettings()
        self.storage_settings = (
            storage if isinstance(storage, StorageSettings) else StorageSettings(url=storage)
        )
        self.seed = seed
        self.observer = Observers(observers)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.resume_hint = resume_hint
        self.worker = worker
        self.stages: list[Stage] = [make_stage(spec, settings) for spec in settings.stages]
        s = self.storage_settings
        self.storage = open_storage(
            s.url,
            heartbeat_interval=s.heartbeat_interval,
            grace_period=s.grace_period,
            retry_s=s.retry_s,
        )
        self._data: TensorData | None = dataset if isinstance(dataset, TensorData) else None
        self._placed = False
        self.best_weights = BestWeights(self.output_dir)
        self._warm: warm_start.WarmSource | None = None
        self._warm_label = ""  # the source's label, also when a resumed stage recorded it

    # -- the algorithm ------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run (or resume) every stage, then the final test; the best candidates."""
        self._warm = self._warm_source()  # an unusable source stops the search before training
        data = self.load_data()
        first = self._study(self.stages[0], record=False)  # settings once the cost is calibrated
        if records.SETTINGS in first.user_attrs:  # joining a search: is it this one?
            self._check_same_search(first.user_attrs[records.SETTINGS])
        self.cost = calibrated(
            self.cost, first, space=self.space, data=data, trainer=self.trainer, seed=self.seed
        )
        url, notes = mask_url(self.storage_settings.url), self._notes(data)
        self.observer.search_started(
            SearchStarted(self.settings.name, url, notes, self._params(), first)
        )
        test_acc: dict[str, float] = {}
        finished = interrupted = False
        try:
            for stage in self.stages:
                self._run_stage(stage, data)
            if self.settings.final_test:
                test_acc = self._final_test(data)
            finished = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            try:
                result = self._finish(finished, test_acc, interrupted)
            finally:  # a process that runs many searches (a multirun) holds no pool per search
                self.storage.close()
        return result

    def _run_stage(self, stage: Stage, data: TensorData) -> None:
        spec = stage.spec
        study = self._study(stage)
        if study.user_attrs.get(records.FINISHED):
            self.observer.message(f"stage {spec.name} finished earlier: skipped")
            return
        driver = self._driver(data)
        done = sum(records.counts_against_budget(t) for t in study.get_trials(deepcopy=False))
        self.observer.stage_started(
            StageStarted(spec, study, stage.label, stage.budget, done, stage.params(self.space))
        )
        driver.report_abandoned(study)
        finished = interrupted = False
        try:
            stage.run(self._context(driver, stage), study)
            finished = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            driver.report_abandoned(study)
            if pareto.is_pareto(study):  # its trials' losses for the search's wc
                rows = ranked_trials(self.storage, self.settings.name)
                values = [r.loss for r in rows if r.stage == spec.name]
            else:
                trials = study.get_trials(deepcopy=False)
                values = [v for t in trials if (v := records.value(t)) is not None]
            self.observer.stage_finished(
                StageFinished(spec, study, finished, min(values) if values else None, interrupted)
            )
        if pareto.is_pareto(study):
            study.set_user_attr(records.KNEE_WC, knee_of([study], self.cost))
        study.set_user_attr(records.FINISHED, True)
        self._check_some_trial_completed()

    # -- parts --------------------------------------------------------------------------------
    def load_data(self) -> TensorData:
        """The dataset, loaded once, checked (``TensorData.validate``: every dataset, built-in
        or a plugin's) and placed on the trainer's device once per search (``UserError`` for
        missing or malformed data)."""
        if self._data is None:
            assert isinstance(self.dataset, Dataset)
            self._data = self.dataset.load(self.seed)
        if not self._placed:
            from dnc.train.trainer import place

            self._data.validate()
            self._data = place(self._data, self.trainer)
            self._placed = True
        return self._data

    def _study(self, stage: Stage, record: bool = True) -> optuna.Study:
        """The stage's study, created on first use (a Pareto stage's with two objectives, and
        no pruner: Optuna's prune single-objective studies only); ``record``: keep the search's
        settings on it (the first time)."""
        front = stage.spec.objective == "pareto"
        study = optuna.create_study(
            storage=self.storage,
            study_name=study_name(self.settings.name, stage.spec.name),
            directions=list(pareto.DIRECTIONS) if front else ["minimize"],
            load_if_exists=True,
            pruner=(None if front else make_pruner(self.trainer)) or optuna.pruners.NopPruner(),
        )
        if pareto.is_pareto(study) != front:
            raise UserError(
                f"stage {stage.spec.name!r} of search {self.settings.name!r} in this storage "
                f"was started with another objective: run it with the same search.stages, or "
                "give this one another search.name"
            )
        if study.metric_names is None:  # what optuna-dashboard calls the objectives
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(pareto.METRIC_NAMES) if front else ["search_loss"])
        if record:
            recorded = study.user_attrs.get(records.SETTINGS)
            if recorded is None:
                study.set_user_attr(records.SETTINGS, self._params())
            else:
                self._check_same_search(recorded)
        return study

    def _check_same_search(self, recorded: dict[str, Any]) -> None:
        """A resumed search, or another worker, must search what the search began with:
        ``UserError`` naming the first setting that differs."""
        mine = self._params()
        for key in _MUST_MATCH:
            if key in recorded and str(recorded[key]) != str(mine[key]):
                raise UserError(
                    f"search {self.settings.name!r} in this storage was started with "
                    f"{key}={recorded[key]}, this run has {key}={mine[key]}: run it with the "
                    "same settings, or give this one another search.name"
                )

    def _driver(self, data: TensorData) -> Driver:
        runner = TrialRunner(
            space=self.space,
            data=data,
            cost=self.cost,
            wc=self._wc,
            trainer=self.trainer,
            seed=self.seed,
            observer=self.observer,
            worker=worker_name(self.worker),
            best_weights=self.best_weights,
        )
        return Driver(
            runner=runner,
            observer=self.observer,
            best=lambda: best_loss(ranked_trials(self.storage, self.settings.name)),
            max_failures_in_a_row=self.settings.max_failures_in_a_row,
            grace_period=self.storage_settings.grace_period,
        )

    def _context(self, driver: Driver, stage: Stage) -> StageContext:
        first_bo = stage.spec == self.settings.first_bo_stage()
        return StageContext(
            search=self.settings.name,
            storage=self.storage,
            space=self.space,
            driver=driver,
            observer=self.observer,
            seed=self.seed,
            loss_parts=LossParts.of_search(self._wc(), self.cost),
            screen=feasibility_screen(self.space, self.cost, self.load_data().spec),
            warm_source=self._warm if first_bo else None,
        )

    def _wc(self) -> float:
        """The ``wc`` of the search loss now: ``search.wc``, or (``null``) the knee of the
        Pareto stage's front so far (``dnc.search.ranking.search_wc``)."""
        if self.settings.wc is not None:
            return self.settings.wc
        names = search_studies(self.storage, self.settings.name)
        return search_wc([load(self.storage, n) for n in names], self.cost)

    def _warm_source(self) -> warm_start.WarmSource | None:
        """The search the first BO stage starts from (``search.warm_start``), checked; ``None``
        when there is none, or when the stage already recorded its warm start (a resumed
        search, another worker: the recorded plan is used, and the source need not be there;
        one naming another source is refused)."""
        spec = self.settings.first_bo_stage()
        if not self.settings.warm_start.enabled or spec is None:
            return None
        try:
            study = load(self.storage, study_name(self.settings.name, spec.name))
        except KeyError:
            study = None
        done = warm_start.recorded(study) if study is not None else None
        if done is not None:
            ws, url = self.settings.warm_start, self.storage_settings.url
            warm_start.check_resumed(ws, done[0], self.settings.name, spec.name, url)
            self._warm_label = done[0]
            return None
        if study is not None and study.get_trials(deepcopy=False):
            raise UserError(
                f"search.warm_start: stage {spec.name} of search {self.settings.name!r} in this "
                "storage started without a warm start; give this one another search.name"
            )
        source = warm_start.open_source(
            self.settings.warm_start,
            search=self.settings.name,
            storage=self.storage,
            storage_url=self.storage_settings.url,
            space=self.space,
            groups=spec.groups,
        )
        self._warm_label = source.label
        return source

    def _check_some_trial_completed(self) -> None:
        """Stop when every trial so far failed: later stages would only vary nothing."""
        if ranked_trials(self.storage, self.settings.name):
            return
        reasons = collections.Counter(
            reason
            for name in search_studies(self.storage, self.settings.name)
            for t in load(self.storage, name).get_trials(deepcopy=False)
            if (reason := records.fail_reason(t)) is not None
        )
        if reasons:
            reason, count = reasons.most_common(1)[0]
            raise TrialsFailed(
                f"all {sum(reasons.values())} trials failed; the most common reason "
                f"({count} of them): {reason}"
            )

    def _final_test(self, data: TensorData) -> dict[str, float]:
        """Retrain the best on train + validation: one worker at a time, so that each is
        retrained once (a worker that dies releases the lock to the next)."""
        with coordination.lock(self.storage, f"{self.settings.name}:final_test"):
            return final_test(
                ranked_trials(self.storage, self.settings.name)[: self.settings.num_best],
                study=self._study(self.stages[-1]),
                studies={s.spec.name: self._study(s) for s in self.stages},
                space=self.space,
                data=data,
                trainer=self.trainer,
                seed=self.seed,
                observer=self.observer,
            )

    def _finish(
        self, finished: bool, test_acc: dict[str, float], interrupted: bool = False
    ) -> SearchResult:
        """Write the results and tell the observers; also when the search stopped early."""
        s = self.settings
        best = ranked_trials(self.storage, s.name)[: s.num_best]
        last = self._loaded(self.stages[-1])
        result = SearchResult(
            s.name, best, s, self.cost.settings(), test_acc or recorded_test_acc(last), finished
        )
        path = None
        if self.output_dir is not None:
            path = write_results(
                self.output_dir / "results.json",
                result,
                storage=mask_url(self.storage_settings.url),
                cost=self.cost,
                knee_wc=self._wc(),
            )
        model = None
        if best and self._data is not None:
            model = self.best_weights.model(best[0].key, best[0].candidate, self.space, self._data)
        self.observer.search_finished(
            SearchFinished(
                s.name, finished, best, result.test_acc, path, interrupted, best_model=model
            )
        )
        return result

    def _loaded(self, stage: Stage) -> optuna.Study | None:
        try:
            return load(self.storage, study_name(self.settings.name, stage.spec.name))
        except KeyError:
            return None

    def _notes(self, data: TensorData) -> tuple[str, ...]:
        wc = "the knee of the front (null)" if self.settings.wc is None else self.settings.wc
        notes = [
            f"{data.name}: {len(data.xtr)} train / {len(data.xva)} val / {len(data.xte)} "
            f"test, {data.num_classes} classes; space {self.space.name}; cost "
            f"{self.cost.name} ({_compact(self.cost.settings())}); wc {wc}; "
            f"training on {self.trainer.torch_device()}"
        ]
        if self._warm is not None:
            notes.append(f"warm start: from the best candidates of {self._warm.label}")
        if self.resume_hint:
            notes.append(f"to resume if stopped: {self.resume_hint}")
        return tuple(notes)

    def _params(self) -> dict[str, Any]:
        """The search's settings, flat: recorded on its studies and logged by trackers."""
        s = self.settings
        return {
            "search": s.name,
            "wc": s.wc,
            "sampler": s.sampler,
            "seed": self.seed,
            "stages": json.dumps(
                [{"name": st.spec.name, **st.params(self.space)} for st in self.stages]
            ),
            "plan": describe_stages(s, self.space),
            "space": self.space.name,
            "dataset": getattr(self.dataset, "name", ""),
            "cost": self.cost.name,
            "cost_settings": json.dumps(self.cost.settings()),
            "epochs": self.trainer.epochs,
            "pruner": self.trainer.pruner,
            "bo": json.dumps(asdict(s.bo)),
            "final_test": s.final_test,
            "warm_start": self._warm_label,
        }


_MUST_MATCH = ("wc", "space", "dataset", "cost", "epochs", "seed")
"""Settings every run of one search shares (a budget may grow on resume)."""


def _compact(settings: dict[str, Any]) -> str:
    """``key=value`` pairs with floats to four significant digits, for the console."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()
    )


__all__ = ["Search"]
