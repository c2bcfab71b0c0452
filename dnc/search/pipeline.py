"""A search: an ordered list of stages, each an Optuna study in the search's storage.

Every decision is read back from the storage (the best candidate so far, the base a stage
holds fixed, how many trials a stage still owes, which grid variants are left), never from one
process's memory, so a killed search resumes where it stopped and several workers can share one
storage (DESIGN §6).

MLflow gets three levels: the search's run, one run per stage nested under it, and one run per
trial nested under its stage (tag ``dnc.kind`` = search / stage / trial; filter on
``tags.dnc.kind = 'trial'`` to compare every trial of every stage side by side).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import Candidate, CostEvaluator, Dataset, SearchSpace, TensorData, UserError
from dnc.search.objective import check_wc, evaluate, loss_terms
from dnc.search.samplers import SAMPLERS, BOSettings, SamplerContext, make_sampler
from dnc.search.stages import StageSpec, candidate_key
from dnc.search.storage import (
    COST_ATTR,
    PARENT_RUN_ATTR,
    SETTINGS_ATTR,
    counts_against_budget,
    open_storage,
    ranked_trials,
    record_cost,
    recorded_cost,
    search_studies,
    study_name,
)
from dnc.search.suggest import TrialSuggest
from dnc.tracking.console import Ranked, SearchConsole
from dnc.tracking.mlflow_tracker import NullTracker, Tracker
from dnc.train.trainer import TrainerSettings, TrialDiverged, count_params, place, train

if TYPE_CHECKING:
    from dnc.bo.sampler import LossParts

log = logging.getLogger(__name__)

STAGE_RUN_ATTR = "mlflow_stage_run_id"
WORKER = f"{socket.gethostname()}:{os.getpid()}"
FINISHED_ATTR = "dnc.finished"
FINAL_TEST_ATTR = "dnc.final_test"


class TrialFailed(Exception):
    """A trial failed on its own (NaN loss, error); recorded, and the search goes on."""


@dataclass(frozen=True)
class SearchSettings:
    """What a search does; the entry point builds it from ``cfg.search``."""

    name: str
    wc: float = 0.1
    stages: tuple[StageSpec, ...] = (StageSpec("core", groups=("core", "train")),)
    sampler: str = "ramp"
    bo: BOSettings = field(default_factory=BOSettings)
    num_best: int = 5
    final_test: bool = False
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
        for sampler in {self.sampler, *(s.sampler for s in self.stages if s.sampler)}:
            if sampler not in SAMPLERS:
                raise UserError(
                    f"search.sampler={sampler!r}: choose one of {', '.join(sorted(SAMPLERS))}"
                )
        if self.num_best < 1:
            raise UserError(f"search.num_best={self.num_best}: must be at least 1")
        if self.max_failures_in_a_row < 1:
            raise UserError("search.max_failures_in_a_row must be at least 1")
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise UserError(
                "storage: need heartbeat_interval >= 1 and grace_period > heartbeat_interval"
            )

    def budget(self, stage: StageSpec) -> int:
        return stage.trials or self.bo.trials


@dataclass
class SearchResult:
    """The best candidates of a finished search, best first (``test_acc`` with final_test)."""

    name: str
    best: list[Ranked]
    settings: SearchSettings
    cost_settings: dict[str, Any]
    test_acc: dict[str, float] = field(default_factory=dict)


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
        resume_hint: str = "",
    ) -> None:
        self.settings = settings
        self.space = space
        self.dataset = dataset
        self.cost = cost
        self.trainer = trainer
        self.tracker = tracker or NullTracker()
        self.console = console or SearchConsole()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.resume_hint = resume_hint
        self.storage = open_storage(
            settings.storage_url,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
        )
        self.search_run = ""
        self._data: TensorData | None = dataset if isinstance(dataset, TensorData) else None
        self._placed = False

    # -- public -------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        s = self.settings
        data = self.data
        first = self._study(s.stages[0])
        self._calibrate(first, data)
        self.search_run = self.tracker.start_search(
            s.name, self._search_params(), run_id=first.user_attrs.get(PARENT_RUN_ATTR)
        )
        if self.search_run and first.user_attrs.get(PARENT_RUN_ATTR) != self.search_run:
            first.set_user_attr(PARENT_RUN_ATTR, self.search_run)
        notes = [
            f"{data.name}: {len(data.xtr)} train / {len(data.xva)} val / {len(data.xte)} "
            f"test, {data.num_classes} classes; space {self.space.name}; cost "
            f"{self.cost.name} ({_compact(self.cost.settings())}); wc {s.wc}"
        ]
        if self.resume_hint:
            notes.append(f"to resume if stopped: {self.resume_hint}")
        self.console.search_start(s.name, s.storage_url, self.tracker.uri, notes)
        status = "FAILED"
        test_acc: dict[str, float] = {}
        try:
            for index, stage in enumerate(s.stages):
                self._run_stage(index, stage)
            if s.final_test:
                test_acc = self._final_test(ranked_trials(self.storage, s.name)[: s.num_best])
            status = "FINISHED"
        finally:
            best = ranked_trials(self.storage, s.name)[: s.num_best]
            test_acc = test_acc or self._recorded_test_acc()
            self._report(best, test_acc, final=status == "FINISHED")
            self.tracker.end_run(
                self.search_run, {"best_search_loss": best[0].loss} if best else {}, status=status
            )
        return SearchResult(s.name, best, s, self.cost.settings(), test_acc)

    @property
    def data(self) -> TensorData:
        if self._data is None:
            assert isinstance(self.dataset, Dataset)
            self._data = self.dataset.load(self.settings.seed)
        if not self._placed:  # once per search: trials then copy no data
            self._data = place(self._data, self.trainer)
            self._placed = True
        return self._data

    # -- studies and bases --------------------------------------------------------------------
    def _study(
        self,
        stage: StageSpec,
        sampler: optuna.samplers.BaseSampler | None = None,
    ) -> optuna.Study:
        study = optuna.create_study(
            storage=self.storage,
            study_name=study_name(self.settings.name, stage.name),
            direction="minimize",
            sampler=sampler,
            load_if_exists=True,
        )
        if SETTINGS_ATTR not in study.user_attrs:
            study.set_user_attr(SETTINGS_ATTR, self._search_params())
        return study

    def _base(self, study: optuna.Study, key: str) -> Candidate:
        """The candidate a stage (or grid sub-stage) holds fixed: the best of the search when
        it first started, recorded on its study so that a resumed run uses the same one."""
        attr = f"dnc.base.{key}"
        if attr not in study.user_attrs:
            best = ranked_trials(self.storage, self.settings.name)
            study.set_user_attr(attr, dict(best[0].candidate) if best else {})
        return dict(study.user_attrs[attr])

    def _tried(self, exclude: int | None = None) -> set[str]:
        """Candidate keys of every finished trial of the search (``exclude``: a trial id)."""
        keys = set()
        for name in search_studies(self.storage, self.settings.name):
            study = optuna.load_study(study_name=name, storage=self.storage)
            for t in study.get_trials(deepcopy=False):
                if (
                    counts_against_budget(t)
                    and t._trial_id != exclude
                    and "candidate" in t.user_attrs
                ):
                    keys.add(candidate_key(t.user_attrs["candidate"]))
        return keys

    # -- stages -------------------------------------------------------------------------------
    def _run_stage(self, index: int, stage: StageSpec) -> None:
        s = self.settings
        study = self._study(stage)
        if study.user_attrs.get(FINISHED_ATTR):
            self.console.print(f"[bold]stage {stage.name}[/bold] finished earlier: skipped")
            return
        if COST_ATTR not in study.user_attrs:
            record_cost(study, self.cost)
        stage_run = self.tracker.start_stage(
            self.search_run,
            search=s.name,
            stage=stage.name,
            study=study.study_name,
            params={
                "kind": stage.kind,
                "groups": list(stage.groups),
                "substages": list(stage.substages),
                "budget": s.budget(stage),
            },
            run_id=study.user_attrs.get(STAGE_RUN_ATTR),
        )
        if stage_run and study.user_attrs.get(STAGE_RUN_ATTR) != stage_run:
            study.set_user_attr(STAGE_RUN_ATTR, stage_run)
        self._close_dead_trials(study)
        status = "FAILED"
        try:
            if stage.kind == "bo":
                self._run_bo(index, stage, study, stage_run)
            else:
                self._run_grid(stage, study, stage_run)
            status = "FINISHED"
        finally:
            self._close_dead_trials(study)
            done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
            best = min((t.value for t in done if t.value is not None), default=None)
            self.tracker.end_run(
                stage_run, {} if best is None else {"best_search_loss": best}, status=status
            )
        study.set_user_attr(FINISHED_ATTR, True)

    def _loss_parts(self) -> LossParts:
        """How a trial's search loss splits (for the ramp sampler's split model): ``(fp, fc)``
        of its recorded figures under this search's cost evaluator."""
        from dnc.bo.sampler import LossParts

        def parts(trial: FrozenTrial) -> tuple[float, float] | None:
            figures = trial.user_attrs.get("figures")
            if not isinstance(figures, Mapping):
                return None
            try:
                return loss_terms(figures, self.cost)
            except (KeyError, TypeError, ValueError):
                return None

        return LossParts(wc=self.settings.wc, parts=parts)

    def _run_bo(self, index: int, stage: StageSpec, study: optuna.Study, stage_run: str) -> None:
        s = self.settings
        base = self._base(study, "stage")
        ctx = SamplerContext(
            space=self.space, groups=stage.groups, base=base, bo=s.bo, seed=s.seed * 1000 + index,
            loss_parts=self._loss_parts(),
        )
        study.sampler = make_sampler(stage.sampler or s.sampler, ctx)
        budget = s.budget(stage)
        self.console.stage_start(
            stage.name, f"{stage.sampler or s.sampler} {stage.label}", budget, self._done(study)
        )

        def objective(trial: optuna.Trial, outcome: dict[str, Any]) -> float:
            trial.set_user_attr("worker", WORKER)
            candidate = self.space.sample(TrialSuggest(trial, stage.groups, base))
            return self._evaluate_trial(trial, stage, stage_run, candidate, outcome)

        self._drive(study, stage, budget, objective, more=lambda: True)

    def _run_grid(self, stage: StageSpec, study: optuna.Study, stage_run: str) -> None:
        substages = stage.substages or tuple(self.space.grid_substages())
        self.console.stage_start(
            stage.name, f"grid over {', '.join(substages)}", 0, self._done(study)
        )
        study.sampler = optuna.samplers.RandomSampler(seed=self.settings.seed)
        for sub in substages:
            base = self._base(study, sub)
            variants = self.space.grid(sub, base)

            def enqueue_missing(sub: str = sub, variants: list[Candidate] = variants) -> bool:
                """Queue the variants neither finished nor queued; True if any is in flight."""
                inflight = {
                    candidate_key(t.user_attrs["candidate"])
                    for t in study.get_trials(
                        deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)
                    )
                    if "candidate" in t.user_attrs
                }
                seen = self._tried() | inflight
                for v in variants:
                    key = candidate_key(v)
                    if key not in seen:
                        seen.add(key)
                        study.enqueue_trial(
                            {}, user_attrs={"candidate": v, "substage": sub}, skip_if_exists=False
                        )
                        inflight.add(key)
                return bool(inflight)

            total = len({candidate_key(v) for v in variants})
            self.console.print(f"  sub-stage {sub}: {total} variants of the best so far")

            def objective(trial: optuna.Trial, outcome: dict[str, Any], sub: str = sub) -> float:
                trial.set_user_attr("worker", WORKER)
                candidate = trial.user_attrs.get("candidate")
                if candidate is None:  # not an enqueued variant: nothing left to pop
                    raise optuna.TrialPruned("no queued grid variant")
                if candidate_key(candidate) in self._tried(exclude=trial._trial_id):
                    trial.set_user_attr("duplicate", True)  # another worker ran it meanwhile
                    raise optuna.TrialPruned("variant already tried")
                return self._evaluate_trial(trial, stage, stage_run, candidate, outcome, sub)

            self._drive(study, stage, None, objective, more=enqueue_missing)

    def _drive(
        self,
        study: optuna.Study,
        stage: StageSpec,
        budget: int | None,
        objective: Callable[[optuna.Trial, dict[str, Any]], float],
        more: Callable[[], bool],
    ) -> None:
        """Run trials one at a time until the budget is used (``bo``) or nothing is left in
        flight (``grid``: ``more`` queues what is missing and says whether anything is)."""
        s = self.settings
        failures = 0
        while True:
            self._fail_dead_trials(study)
            trials = study.get_trials(deepcopy=False)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if budget is not None:
                done = sum(counts_against_budget(t) for t in trials)
                if done >= budget or done + running >= budget:
                    if running == 0:
                        return
                    time.sleep(1.0)  # other workers finish the last trials of the stage
                    continue
            else:
                waiting = any(t.state == TrialState.WAITING for t in trials)
                if not waiting and not more():
                    return
                if not any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
                    time.sleep(1.0)  # only other workers' trials are in flight
                    continue
            outcome: dict[str, Any] = {}
            study.optimize(
                functools.partial(_call, objective, outcome=outcome),
                n_trials=1,
                catch=(TrialFailed,),
                gc_after_trial=False,
            )
            if "number" not in outcome:
                continue  # pruned: a duplicate grid variant
            best = min((r.loss for r in ranked_trials(self.storage, s.name)), default=math.inf)
            shown_budget = budget if budget is not None else self._grid_total(study)
            self.console.trial(
                stage.name,
                self._done(study),
                shown_budget,
                outcome["number"],
                outcome.get("figures"),
                outcome.get("loss"),
                best,
                outcome.get("fail_reason"),
                outcome.get("substage", ""),
            )
            if "fail_reason" in outcome:
                failures += 1
                if failures >= s.max_failures_in_a_row:
                    raise UserError(
                        f"{failures} trials in a row failed in stage {stage.name}; last: "
                        f"{outcome['fail_reason']}. Check the data, bounds and trainer settings"
                    )
            else:
                failures = 0

    def _evaluate_trial(
        self,
        trial: optuna.Trial,
        stage: StageSpec,
        stage_run: str,
        candidate: Candidate,
        outcome: dict[str, Any],
        substage: str = "",
    ) -> float:
        """Train and score ``candidate`` as ``trial``; what happened goes into ``outcome``."""
        s = self.settings
        outcome.update(number=trial.number, substage=substage)
        trial.set_user_attr("candidate", candidate)
        trial.set_user_attr("stage", stage.name)
        run_id = self.tracker.start_trial(
            stage_run or self.search_run,
            search=s.name,
            stage=stage.name,
            study=trial.study.study_name,
            number=trial.number,
            candidate=candidate,
            search_run=self.search_run,
            substage=substage,
        )
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        try:
            ev = evaluate(
                candidate,
                space=self.space,
                data=self.data,
                cost=self.cost,
                wc=s.wc,
                trainer=self.trainer,
                seed=s.seed * 100_003 + trial.number,
            )
        except UserError:
            self.tracker.end_trial(run_id, fail_reason="aborted: invalid settings")
            raise
        except Exception as err:  # NaN loss, out of memory, a bug in a plugin: the search goes on
            reason = str(err) if isinstance(err, TrialDiverged) else f"{type(err).__name__}: {err}"
            outcome["fail_reason"] = reason
            trial.set_user_attr("fail_reason", reason)
            self.tracker.end_trial(run_id, fail_reason=reason)
            if isinstance(err, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise TrialFailed(reason) from err
        trial.set_user_attr("figures", ev.figures)
        self.tracker.end_trial(
            run_id,
            figures=ev.figures,
            loss=ev.loss,
            curves={"train_loss": ev.result.train_loss, "val_acc": ev.result.val_acc},
        )
        outcome.update(figures=ev.figures, loss=ev.loss)
        return ev.loss

    # -- after the stages ---------------------------------------------------------------------
    def _final_test(self, best: Sequence[Ranked]) -> dict[str, float]:
        """Retrain the best candidates on train + validation and measure test accuracy (the
        accuracy after the last epoch: the test set chooses nothing). Recorded on the last
        stage's study, so a resumed search does not retrain them."""
        data = self.data
        merged = TensorData(
            torch.cat([data.xtr, data.xva]),
            torch.cat([data.ytr, data.yva]),
            data.xte,
            data.yte,
            data.xte,
            data.yte,
            data.num_classes,
            data.name,
            data.extras,
        )
        study = self._study(self.settings.stages[-1])
        done: dict[str, float] = dict(study.user_attrs.get(FINAL_TEST_ATTR, {}))
        trainer = TrainerSettings(**{**asdict(self.trainer), "patience": 0})
        self.console.print(
            f"[bold]final test[/bold]: retraining the best {len(best)} on "
            f"train + validation ({len(merged.xtr)} examples)"
        )
        for row in best:
            key = f"{row.stage}/{row.number}"
            if key in done:
                continue
            model = self.space.build(row.candidate, data.spec)
            result = train(
                model,
                merged,
                lr=float(row.candidate["lr"]),
                weight_decay=float(row.candidate["weight_decay"]),
                batch_size=int(row.candidate["batch_size"]),
                settings=trainer,
                seed=self.settings.seed,
            )
            done[key] = result.val_acc[-1]
            study.set_user_attr(FINAL_TEST_ATTR, done)
            self.console.print(f"  {key}: test accuracy {done[key]:.2f}%")
            run_id = self._trial_run_id(row)
            if run_id:
                self.tracker.log_metrics(run_id, {"final_test_acc": done[key]})
        return {f"{r.stage}/{r.number}": done[f"{r.stage}/{r.number}"] for r in best}

    def _recorded_test_acc(self) -> dict[str, float]:
        try:
            study = optuna.load_study(
                study_name=study_name(self.settings.name, self.settings.stages[-1].name),
                storage=self.storage,
            )
        except KeyError:
            return {}
        return dict(study.user_attrs.get(FINAL_TEST_ATTR, {}))

    def _trial_run_id(self, row: Ranked) -> str:
        study = optuna.load_study(
            study_name=study_name(self.settings.name, row.stage), storage=self.storage
        )
        trial: FrozenTrial = study.trials[row.number]
        return str(trial.user_attrs.get("mlflow_run_id", ""))

    # -- bookkeeping --------------------------------------------------------------------------
    @staticmethod
    def _done(study: optuna.Study) -> int:
        return sum(counts_against_budget(t) for t in study.get_trials(deepcopy=False))

    @staticmethod
    def _grid_total(study: optuna.Study) -> int:
        return sum(
            counts_against_budget(t) or t.state in (TrialState.WAITING, TrialState.RUNNING)
            for t in study.get_trials(deepcopy=False)
        )

    def _fail_dead_trials(self, study: optuna.Study) -> None:
        """Fail the running trials of dead workers, so their slots are run again: Optuna's
        heartbeat catches those that died while training; a worker killed in the instant
        between creating a trial and its first heartbeat leaves a trial without a heartbeat
        and without the ``worker`` mark, which this catches after ``grace_period``."""
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        now = datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            started = t.datetime_start or now
            if (
                "worker" not in t.user_attrs
                and (now - started).total_seconds() > self.settings.grace_period
            ):
                try:
                    study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass  # another worker got there first

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
            return {
                "numparams": float(count_params(model)),
                **self.cost.measure(model, ref, data.spec),
            }
        trainer = TrainerSettings(**{**asdict(self.trainer), "epochs": 2, "patience": 0})
        try:
            return evaluate(
                ref,
                space=self.space,
                data=data,
                cost=_Unit(),
                wc=0.0,
                seed=self.settings.seed,
                trainer=trainer,
            ).figures
        except TrialDiverged as err:
            raise UserError(
                f"the reference network diverged while calibrating {self.cost.name} ({err}); "
                "set the normaliser to a number (e.g. cost.tbar_epoch=1.0)"
            ) from err

    def _search_params(self) -> dict[str, Any]:
        s = self.settings
        return {
            "search": s.name,
            "wc": s.wc,
            "sampler": s.sampler,
            "seed": s.seed,
            "stages": json.dumps([asdict(x) for x in s.stages]),
            "space": self.space.name,
            "dataset": getattr(self.dataset, "name", ""),
            "cost": self.cost.name,
            "cost_settings": json.dumps(self.cost.settings()),
            "epochs": self.trainer.epochs,
            "bo": json.dumps(asdict(s.bo)),
            "final_test": s.final_test,
        }

    def _report(self, best: Sequence[Ranked], test_acc: dict[str, float], final: bool) -> None:
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / "results.json"
            path.write_text(
                json.dumps(
                    {
                        "search": self.settings.name,
                        "wc": self.settings.wc,
                        "finished": final,
                        "storage": self.settings.storage_url,
                        "cost": {"name": self.cost.name, **self.cost.settings()},
                        "best": [
                            {
                                "stage": r.stage,
                                "trial": r.number,
                                "search_loss": r.loss,
                                "figures": dict(r.figures),
                                "candidate": dict(r.candidate),
                                **(
                                    {"test_acc": test_acc[k]}
                                    if (k := f"{r.stage}/{r.number}") in test_acc
                                    else {}
                                ),
                            }
                            for r in best
                        ],
                    },
                    indent=2,
                )
            )
            if final and self.search_run:
                self.tracker.log_artifact(self.search_run, path)
        if final:
            rows = [
                Ranked(
                    r.stage,
                    r.number,
                    r.loss,
                    {
                        **r.figures,
                        **(
                            {"test_acc": test_acc[k]}
                            if (k := f"{r.stage}/{r.number}") in test_acc
                            else {}
                        ),
                    },
                    r.candidate,
                    r.substage,
                )
                for r in best
            ]
            self.console.table(
                f"best {len(best)} candidates of {self.settings.name}",
                rows,
                extra=("test_acc",) if test_acc else (),
                describe_candidate=self.space.describe,
            )


def _compact(settings: dict[str, Any]) -> str:
    """``key=value`` pairs with floats to four significant digits, for the console."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()
    )


def _call(
    objective: Callable[[optuna.Trial, dict[str, Any]], float],
    trial: optuna.Trial,
    outcome: dict[str, Any],
) -> float:
    return objective(trial, outcome)


class _Unit(CostEvaluator):
    """A cost of 0, for the calibration run (only its raw figures are used)."""

    name = "unit"

    def complexity(self, figures: Any) -> float:
        return 0.0
