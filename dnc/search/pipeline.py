"""A search: an ordered list of stages, each an Optuna study in the search's storage.

Every decision is read back from the storage (the best candidate so far, how many trials a
stage still owes), never from one process's memory, so a killed search resumes where it stopped
and several workers can share one storage (DESIGN §6).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dnc.plugins import Candidate, CostEvaluator, Dataset, SearchSpace, TensorData, UserError
from dnc.search.objective import Evaluation, check_wc, evaluate
from dnc.search.samplers import SAMPLERS, BOSettings, SamplerContext, make_sampler
from dnc.search.storage import (
    COST_ATTR,
    PARENT_RUN_ATTR,
    SETTINGS_ATTR,
    counts_against_budget,
    open_storage,
    ranked_trials,
    record_cost,
    recorded_cost,
    study_name,
)
from dnc.search.suggest import TrialSuggest
from dnc.tracking.console import Ranked, SearchConsole
from dnc.tracking.mlflow_tracker import NullTracker, Tracker
from dnc.train.trainer import TrainerSettings, TrialDiverged, count_params

log = logging.getLogger(__name__)

GROUPS = ("core", "arch", "train")


class TrialFailed(Exception):
    """A trial failed on its own (NaN loss, error); recorded, and the search goes on."""


@dataclass(frozen=True)
class StageSpec:
    """One stage. ``kind``: ``bo`` (a model-based sampler over ``groups``; budget from
    ``trials`` or, when 0, ``search.bo``)."""

    name: str
    kind: str = "bo"
    groups: tuple[str, ...] = ("core",)
    trials: int = 0

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise UserError(f"search.stages: stage name {self.name!r} must be non-empty, without '/'")
        if self.kind != "bo":
            raise UserError(f"search.stages[{self.name}].kind={self.kind!r}: choose bo")
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown or not self.groups:
            raise UserError(
                f"search.stages[{self.name}].groups={list(self.groups)}: name one or more of "
                f"{', '.join(GROUPS)}"
            )
        if self.trials < 0:
            raise UserError(f"search.stages[{self.name}].trials={self.trials}: must be >= 0")


@dataclass(frozen=True)
class SearchSettings:
    """What a search does; the entry point builds it from ``cfg.search``."""

    name: str
    wc: float = 0.1
    stages: tuple[StageSpec, ...] = (StageSpec("core", groups=("core", "train")),)
    sampler: str = "tpe"
    bo: BOSettings = field(default_factory=BOSettings)
    num_best: int = 5
    seed: int = 0
    max_failures_in_a_row: int = 10
    storage_url: str = "sqlite:///optuna.db"
    heartbeat_interval: int = 10
    grace_period: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "wc", check_wc(self.wc))
        if not self.name or "/" in self.name:
            raise UserError(f"search.name={self.name!r}: must be non-empty, without '/'")
        if not self.stages:
            raise UserError("search.stages is empty: name at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise UserError(f"search.stages: stage names must be unique, got {names}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"search.sampler={self.sampler!r}: choose one of {', '.join(sorted(SAMPLERS))}")
        if self.num_best < 1:
            raise UserError(f"search.num_best={self.num_best}: must be at least 1")
        if self.max_failures_in_a_row < 1:
            raise UserError("search.max_failures_in_a_row must be at least 1")

    def budget(self, stage: StageSpec) -> int:
        return stage.trials or self.bo.trials


@dataclass
class SearchResult:
    """The best candidates of a finished search, best first."""

    name: str
    best: list[Ranked]
    settings: SearchSettings
    cost_settings: dict[str, Any]


class Search:
    """Runs the stages of a search against its storage, logging every trial to MLflow.

    Example:
        >>> Search(SearchSettings(name="demo"), space=MLPSpace(), dataset=Digits(),
        ...        cost=TEpoch(), trainer=TrainerSettings(epochs=3)).run()
    """

    def __init__(
        self,
        settings: SearchSettings,
        *,
        space: SearchSpace,
        dataset: Dataset | TensorData,
        cost: CostEvaluator,
        trainer: TrainerSettings,
        tracker: Tracker | None = None,
        console: SearchConsole | None = None,
        output_dir: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.dataset = dataset
        self.cost = cost
        self.trainer = trainer
        self.tracker = tracker or NullTracker()
        self.console = console or SearchConsole()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.storage = open_storage(
            settings.storage_url, heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
        )
        self.parent_run = ""
        self._data: TensorData | None = dataset if isinstance(dataset, TensorData) else None

    # -- public -------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        s = self.settings
        data = self.data
        first = self._study(s.stages[0])
        self._calibrate(first, data)
        self.parent_run = self.tracker.start_search(
            s.name, self._search_params(), run_id=first.user_attrs.get(PARENT_RUN_ATTR)
        )
        self.console.search_start(
            s.name, s.storage_url, self.tracker.uri,
            [f"{data.name}: {len(data.xtr)} train / {len(data.xva)} val / {len(data.xte)} test, "
             f"{data.num_classes} classes; space {self.space.name}; cost {self.cost.name} "
             f"{self.cost.settings()}; wc {s.wc}"],
        )
        status = "FAILED"
        try:
            for stage in s.stages:
                self._run_stage(stage)
            status = "FINISHED"
        finally:
            best = ranked_trials(self.storage, s.name)[: s.num_best]
            self._report(best, final=status == "FINISHED")
            self.tracker.end_search(
                self.parent_run, {"best_search_loss": best[0].loss} if best else {}, status=status
            )
        return SearchResult(s.name, best, s, self.cost.settings())

    @property
    def data(self) -> TensorData:
        if self._data is None:
            assert isinstance(self.dataset, Dataset)
            self._data = self.dataset.load(self.settings.seed)
        return self._data

    # -- stages -------------------------------------------------------------------------------
    def _study(self, stage: StageSpec, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        study = optuna.create_study(
            storage=self.storage, study_name=study_name(self.settings.name, stage.name),
            direction="minimize", sampler=sampler, load_if_exists=True,
        )
        if self.parent_run and study.user_attrs.get(PARENT_RUN_ATTR) != self.parent_run:
            study.set_user_attr(PARENT_RUN_ATTR, self.parent_run)
        if SETTINGS_ATTR not in study.user_attrs:
            study.set_user_attr(SETTINGS_ATTR, self._search_params())
        return study

    def _base(self) -> Candidate:
        """The best candidate so far over every stage of this search (empty at the start)."""
        best = ranked_trials(self.storage, self.settings.name)
        return dict(best[0].candidate) if best else {}

    def _run_stage(self, stage: StageSpec) -> None:
        s = self.settings
        base = self._base()
        index = [x.name for x in s.stages].index(stage.name)
        ctx = SamplerContext(space=self.space, groups=stage.groups, base=base, bo=s.bo,
                             seed=s.seed * 1000 + index)
        study = self._study(stage, make_sampler(s.sampler, ctx))
        if COST_ATTR not in study.user_attrs:
            record_cost(study, self.cost)
        budget = s.budget(stage)
        self._close_dead_trials(study)
        self.console.stage_start(stage.name, f"{s.sampler}", budget, self._done(study), stage.groups)

        failures = 0
        last_reason = ""
        while True:
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            done = sum(counts_against_budget(t) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if done >= budget:
                if running == 0:
                    break
                time.sleep(1.0)  # other workers finish the last trials of the stage
                continue
            if done + running >= budget:
                time.sleep(1.0)
                continue
            outcome: dict[str, Any] = {}
            study.optimize(
                lambda trial: self._objective(trial, stage, base, outcome),
                n_trials=1, catch=(TrialFailed,), gc_after_trial=False,
            )
            best = study.best_value if self._has_complete(study) else math.inf
            self.console.trial(stage.name, self._done(study), budget, outcome["number"],
                               outcome.get("figures"), outcome.get("loss"), best,
                               outcome.get("fail_reason"))
            if "fail_reason" in outcome:
                failures += 1
                last_reason = outcome["fail_reason"]
                if failures >= s.max_failures_in_a_row:
                    raise UserError(
                        f"{failures} trials in a row failed in stage {stage.name}; last: "
                        f"{last_reason}. Check the data, bounds and trainer settings"
                    )
            else:
                failures = 0
        self._report(ranked_trials(self.storage, s.name)[: s.num_best], final=False)

    def _objective(self, trial: optuna.Trial, stage: StageSpec, base: Candidate,
                   outcome: dict[str, Any]) -> float:
        s = self.settings
        suggest = TrialSuggest(trial, stage.groups, base)
        candidate = self.space.sample(suggest)
        outcome["number"] = trial.number
        trial.set_user_attr("candidate", candidate)
        trial.set_user_attr("stage", stage.name)
        run_id = self.tracker.start_trial(
            self.parent_run, search=s.name, stage=stage.name, study=trial.study.study_name,
            number=trial.number, candidate=candidate,
        )
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        try:
            ev = evaluate(candidate, space=self.space, data=self.data, cost=self.cost, wc=s.wc,
                          trainer=self.trainer, seed=s.seed * 100_003 + trial.number)
        except UserError:
            self.tracker.end_trial(run_id, fail_reason="aborted: invalid settings")
            raise
        except (TrialDiverged, Exception) as err:  # noqa: B014 - the reason is what matters
            reason = str(err) if isinstance(err, TrialDiverged) else f"{type(err).__name__}: {err}"
            outcome["fail_reason"] = reason
            trial.set_user_attr("fail_reason", reason)
            self.tracker.end_trial(run_id, fail_reason=reason)
            raise TrialFailed(reason) from err
        self._record(trial, run_id, ev)
        outcome.update(figures=ev.figures, loss=ev.loss)
        return ev.loss

    def _record(self, trial: optuna.Trial, run_id: str, ev: Evaluation) -> None:
        trial.set_user_attr("figures", ev.figures)
        self.tracker.end_trial(
            run_id, figures=ev.figures, loss=ev.loss,
            curves={"train_loss": ev.result.train_loss, "val_acc": ev.result.val_acc},
        )

    # -- bookkeeping --------------------------------------------------------------------------
    @staticmethod
    def _done(study: optuna.Study) -> int:
        return sum(counts_against_budget(t) for t in study.get_trials(deepcopy=False))

    @staticmethod
    def _has_complete(study: optuna.Study) -> bool:
        return any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    def _close_dead_trials(self, study: optuna.Study) -> None:
        """Close MLflow runs of trials whose worker died (Optuna failed them as stale)."""
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if "fail_reason" not in t.user_attrs and "mlflow_run_id" in t.user_attrs:
                self.tracker.mark_killed(t.user_attrs["mlflow_run_id"])

    def _calibrate(self, study: optuna.Study, data: TensorData) -> None:
        """Set ``auto`` normalisers once per search from the space's reference network, or
        from what an earlier run of the same search recorded."""
        if COST_ATTR in study.user_attrs:
            self.cost = recorded_cost(study)
            return
        if getattr(self.cost, "needs_calibration", False):
            self.cost.calibrate(self._reference_figures(data))
        record_cost(study, self.cost)

    def _reference_figures(self, data: TensorData) -> dict[str, float]:
        """Figures of the space's reference network: built, and trained for two epochs when
        the cost calibrates on training figures (``t_epoch``)."""
        ref = self.space.reference_candidate()
        if not self.cost.calibrate_by_training:
            model = self.space.build(ref, data.spec)
            return {"numparams": float(count_params(model)),
                    **self.cost.measure(model, ref, data.spec)}
        trainer = TrainerSettings(**{**asdict(self.trainer), "epochs": 2, "patience": 0})
        try:
            return evaluate(ref, space=self.space, data=data, cost=_Unit(), wc=0.0,
                            seed=self.settings.seed, trainer=trainer).figures
        except TrialDiverged as err:
            raise UserError(
                f"the reference network diverged while calibrating {self.cost.name} ({err}); "
                "set the normaliser to a number (e.g. cost.tbar_epoch=1.0)"
            ) from err

    def _search_params(self) -> dict[str, Any]:
        s = self.settings
        return {
            "search": s.name, "wc": s.wc, "sampler": s.sampler, "seed": s.seed,
            "stages": json.dumps([asdict(x) for x in s.stages]), "space": self.space.name,
            "dataset": getattr(self.dataset, "name", ""), "cost": self.cost.name,
            "cost_settings": json.dumps(self.cost.settings()), "epochs": self.trainer.epochs,
            "bo": json.dumps(asdict(s.bo)),
        }

    def _report(self, best: Sequence[Ranked], final: bool) -> None:
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / "results.json"
            path.write_text(json.dumps({
                "search": self.settings.name, "wc": self.settings.wc, "finished": final,
                "cost": {"name": self.cost.name, **self.cost.settings()},
                "best": [{"stage": r.stage, "trial": r.number, "search_loss": r.loss,
                          "figures": dict(r.figures), "candidate": dict(r.candidate)}
                         for r in best],
            }, indent=2))
            if final and self.parent_run:
                self.tracker.log_artifact(self.parent_run, path)
        if final:
            self.console.table(f"best {len(best)} candidates of {self.settings.name}", best,
                               describe_candidate=self.space.describe)


class _Unit(CostEvaluator):
    """A cost of 0, for the calibration run (only its raw figures are used)."""

    name = "unit"

    def complexity(self, figures: Any) -> float:
        return 0.0
