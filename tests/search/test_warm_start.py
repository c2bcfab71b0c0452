"""Warm start (``search.warm_start``): a search's first BO stage trains the best distinct
candidates of a finished search first (rebuilt for its own data and space), then Sobol points,
within the same budget; a resumed stage or a second worker never queues them twice; an
unusable source is one line before anything trains. Real small searches on real SQLite
storages: digits as the source, generated Morse code (other input size and classes) as the
target."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import optuna
import pytest
from conftest import TINY, run_dnc
from dnc_mlp.space import MLPSpace
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from dnc.bo import RampBOSampler
from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import UserError
from dnc.search import BOSettings, Search, SearchSettings, StageSpec, records, warm_start
from dnc.search.cost import TEpoch
from dnc.search.events import SearchObserver, TrialStarted
from dnc.search.ranking import ranked_trials
from dnc.search.settings import WarmStartSettings
from dnc.search.storage import open_storage
from dnc.suggest import TransferSuggest, TrialSuggest
from dnc.train.datasets import Digits
from dnc.train.morse import Morse
from dnc.train.settings import TrainerSettings

ONE_STAGE = (StageSpec("core", groups=("core", "train")),)


def _search(url: str, name: str, *, dataset=None, space=None, seed=4, **settings) -> Search:
    settings.setdefault("stages", ONE_STAGE)
    return Search(
        SearchSettings(name=name, **settings),
        space=space or MLPSpace(),
        dataset=dataset or Digits(),
        cost=TEpoch(),
        trainer=TrainerSettings(epochs=2),
        storage=url,
        seed=seed,  # not the source's: its random sampler would propose the source's trials
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """A finished search ``src`` of 5 random MLPs on digits, in a run folder's optuna.db."""
    run = tmp_path_factory.mktemp("src")
    url = f"sqlite:///{run}/optuna.db"
    _search(url, "src", sampler="random", bo=BOSettings(prior_states=5, steps=0), seed=3).run()
    return url


def _morse() -> Morse:
    """Morse code frames of 48 values in 20 classes (digits: 64 values, 10 classes)."""
    return Morse(frame_len=48, classes=20, examples_per_class=30, cache_dir=None)


@pytest.fixture(scope="module")
def warm(source, tmp_path_factory):
    """A ramp-BO search on Morse code started from ``src``'s best 2, its MLPs at most 50
    wide (the source's wider layers are clamped), its GPs learning from ``src``'s trials."""
    tmp = tmp_path_factory.mktemp("warm")
    url = f"sqlite:///{tmp}/dst.db"
    search = _search(
        url,
        "dst",
        dataset=_morse(),
        space=MLPSpace(hidden_nodes=(20, 50)),
        sampler="ramp",
        bo=BOSettings(prior_states=4, steps=1, explore=50),
        warm_start=WarmStartSettings(storage=source, search="src", candidates=2, observations=True),
    )
    search.run()
    return optuna.load_study(study_name="dst/core", storage=url)


def test_the_first_trials_are_the_sources_best_rebuilt_then_sobol(source, warm):
    best = ranked_trials(open_storage(source), "src")
    trials = warm.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5  # the budget: 4 + 1
    origins = [t.user_attrs.get(records.WARM_START_FROM) for t in trials]
    assert origins == [f"src/{best[0].key}", f"src/{best[1].key}", None, None, None]
    for trial, row in zip(trials[:2], best[:2], strict=True):
        candidate = trial.user_attrs[records.CANDIDATE]
        for name, value in row.candidate.items():
            if name.startswith("hidden_"):  # clamped into this space's [20, 50]
                assert candidate[name] == min(max(value, 20), 50)
            else:
                assert candidate[name] == pytest.approx(value), name
        assert trial.user_attrs[records.FIGURES]["best_val_acc"] >= 0  # trained on Morse
        assert PHASE_ATTR not in trial.system_attrs  # the sampler was not asked
    phases = [t.system_attrs[PHASE_ATTR]["phase"] for t in trials[2:]]
    assert phases == ["prior", "prior", "bo"]
    recorded = warm.user_attrs[records.WARM_START]
    assert recorded["source"].startswith("src in sqlite:///")
    assert [e["from"] for e in recorded["entries"]] == origins[:2]
    assert warm.user_attrs[records.SETTINGS]["warm_start"] == recorded["source"]


def test_the_bo_steps_learn_from_every_source_trial(source, warm):
    """Each of the source's completed trials is recorded, rebuilt, with its loss and (fp, fc)
    under the source's own cost; the BO step's GPs learnt from all of them."""
    best = ranked_trials(open_storage(source), "src")
    observed = warm_start.recorded_observations(warm)
    assert [o.origin for o in observed] == [f"src/{r.key}" for r in best]
    for obs, row in zip(observed, best, strict=True):
        assert obs.loss == pytest.approx(row.loss)
        fp, fc = obs.parts  # type: ignore[misc]
        assert fp == pytest.approx(1 - row.figures["best_val_acc"] / 100)
        assert 10**row.loss == pytest.approx(fp + 0.1 * fc)  # the source's wc, 0.1
        assert all(1 <= obs.params[k] <= 50 for k in obs.params if k.startswith("hidden_"))
    step = warm.get_trials()[-1].system_attrs[PHASE_ATTR]
    assert step["phase"] == "bo" and step["source"] == len(best)


def test_by_default_only_the_candidates_carry_over(source, tmp_path):
    url = f"sqlite:///{tmp_path}/dst.db"
    ws = WarmStartSettings(storage=source, search="src", candidates=2)  # observations: off
    _search(
        url, "dst", sampler="ramp", bo=BOSettings(prior_states=2, steps=1, explore=50),
        warm_start=ws,
    ).run()  # fmt: skip
    study = optuna.load_study(study_name="dst/core", storage=url)
    assert warm_start.recorded_observations(study) == []
    assert [t.system_attrs.get(PHASE_ATTR, {}).get("phase") for t in study.trials] == [
        None, None, "bo",
    ]  # fmt: skip
    assert "source" not in study.trials[-1].system_attrs[PHASE_ATTR]


def test_the_sobol_points_follow_the_warm_trials():
    """Trial 2 after two warm trials takes Sobol point 0, the point a cold stage's trial 0
    takes: no stratified point is lost, and the prior states still end at prior_states."""

    def first_sobol(warm_trials: int) -> dict:
        sampler = RampBOSampler(space=MLPSpace(), prior_states=4, seed=5, warm_trials=warm_trials)
        study = optuna.create_study(sampler=sampler)
        for _ in range(warm_trials):
            study.tell(study.ask(), state=TrialState.FAIL)
        return MLPSpace().sample(TrialSuggest(study.ask()))

    assert first_sobol(2) == first_sobol(0)


def test_a_candidate_is_rebuilt_clamped_or_refused():
    s = TransferSuggest({"num_hidden_layers": 2, "hidden_0": 800, "hidden_1": 5}, ("core",))
    cand = MLPSpace(hidden_nodes=(20, 400)).sample(s)
    assert (cand["hidden_0"], cand["hidden_1"], s.clamped) == (400, 20, ["hidden_0", "hidden_1"])
    assert cand["lr"] == 1e-3  # not searched: its default
    with pytest.raises(ValueError, match="activation='gelu' is not one of"):
        MLPSpace().sample(TransferSuggest({"activation": "gelu"}, ("arch",)))


def test_settings_are_checked():
    assert not WarmStartSettings().enabled and WarmStartSettings(search="a").enabled
    with pytest.raises(UserError, match=r"search.warm_start.candidates=0: give a whole number"):
        WarmStartSettings(search="a", candidates=0)
    with pytest.raises(UserError, match="not both"):
        WarmStartSettings(storage="sqlite:///a.db", run_dir="b")
    with pytest.raises(UserError, match=r"search.warm_start.storage='a.db': give an SQLAlch"):
        WarmStartSettings(storage="a.db")
    with pytest.raises(UserError, match=r"observations='yes': give true or false"):
        WarmStartSettings(search="a", observations="yes")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="no bo stage"):
        SearchSettings(
            stages=(StageSpec("arch", kind="grid"),), warm_start=WarmStartSettings(search="a")
        )
    at_most = SearchSettings(bo=BOSettings(prior_states=2), warm_start=WarmStartSettings("a"))
    assert at_most.warm_slots() == 2 and SearchSettings().warm_slots() == 0


class _StopAt(SearchObserver):
    """Ctrl-C as trial ``number`` starts (the trial is failed as interrupted: run again)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def trial_started(self, event: TrialStarted) -> None:
        if event.trial.number == self.number:
            raise KeyboardInterrupt


def test_a_resumed_stage_queues_each_candidate_once(source, tmp_path):
    """Interrupted in its second warm trial, then run again: that one is queued again (its
    worker died), the third stays queued once, nothing runs twice, the budget holds. The
    source is the search's own storage (``storage`` left out)."""
    db = tmp_path / "own.db"
    db.write_bytes(Path(source.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{db}"

    def search() -> Search:
        return _search(
            url,
            "again",
            sampler="random",
            bo=BOSettings(prior_states=3, steps=1),
            warm_start=WarmStartSettings(search="src", candidates=3),
        )

    first = search()
    first.observer.observers += (_StopAt(1),)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    study = optuna.load_study(study_name="again/core", storage=url)
    assert [t.state for t in study.get_trials()] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.WAITING,
    ]
    search().run()
    trials = study.get_trials()
    kept = [t for t in trials if not records.abandoned(t)]
    origins = Counter(t.user_attrs.get(records.WARM_START_FROM) for t in kept)
    assert len(origins) == 4 and origins[None] == 1 and set(origins.values()) == {1}
    assert [t.state for t in kept] == [TrialState.COMPLETE] * 4
    assert trials[1].user_attrs[records.WARM_START_FROM] in origins  # run again

    # run again naming the same source otherwise (a relative path): the search is done
    relative = WarmStartSettings(storage=f"sqlite:///{os.path.relpath(db)}", search="src")
    _search(
        url, "again", sampler="random", bo=BOSettings(prior_states=3, steps=1), warm_start=relative
    ).run()
    # naming another source: refused in one line, before anything trains
    other = WarmStartSettings(search="src", run_dir=str(tmp_path))
    with pytest.raises(UserError) as refused:
        _search(
            url, "again", sampler="random", bo=BOSettings(prior_states=3, steps=4), warm_start=other
        ).run()
    assert str(refused.value) == (
        f"search.warm_start: stage core of search 'again' in this storage was warm-started from "
        f"src in sqlite:///{db}, this run names src in sqlite:///{tmp_path}/optuna.db: run it "
        "with the same warm start (or none), or give this one another search.name"
    )
    assert len(study.get_trials()) == len(trials)


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import optuna
    from dnc_mlp.space import MLPSpace
    from dnc.search import warm_start
    from dnc.search.driver import Wait
    from dnc.search.settings import BOSettings, SearchSettings, StageSpec, WarmStartSettings
    from dnc.search.stages import BOStage, StageContext, _BOSteps
    from dnc.search.storage import open_storage
    from dnc.search.events import SearchObserver
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, source = sys.argv[1], sys.argv[2]
    storage = open_storage(url)
    spec = StageSpec("core", groups=("core", "train"))
    ws = WarmStartSettings(storage=source, search="src", candidates=3)
    settings = SearchSettings(name="s", stages=(spec,), bo=BOSettings(prior_states=3, steps=3),
                              warm_start=ws)
    src = warm_start.open_source(ws, search="s", storage=storage, storage_url=url,
                                 space=MLPSpace(), groups=spec.groups)
    study = optuna.create_study(study_name="s/core", storage=storage, load_if_exists=True)
    study.sampler = optuna.samplers.RandomSampler()
    context = StageContext("s", storage, MLPSpace(), None, SearchObserver(), 0, None,
                           warm_source=src)
    stage = BOStage(spec, settings)
    ready = Path(sys.argv[3])  # all start together: once every worker has got this far
    (ready / str(os.getpid())).touch()
    while len(list(ready.iterdir())) < int(sys.argv[4]):
        time.sleep(0.005)
    steps = _BOSteps(stage, context, {}, stage._warm_start(context, study, {})[0])
    while (step := steps.next(study)) is not Wait.DONE:
        if step is Wait.LATER:
            time.sleep(0.01)
        else:
            steps.candidate(step)
            time.sleep(0.05)
            study.tell(step, 0.5)
    """
)


def test_two_workers_share_one_warm_start(source, tmp_path):
    """Two processes start the same warm-started stage at once on one storage: it is planned
    and queued once, the warm candidates are the first trials, each trained once."""
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="s/core", storage=open_storage(url))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, source, str(ready), "2"], stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    trials = optuna.load_study(study_name="s/core", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    origins = [t.user_attrs.get(records.WARM_START_FROM) for t in trials]
    assert all(origins[:3]) and len(set(origins[:3])) == 3 and origins[3:] == [None] * 3


def _assert_refused(proc, *needles: str) -> None:
    """One line on stderr and exit code 2, before any trial was created."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("dnc: error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> str:
    """A storage whose search ``empty`` has only a failed trial."""
    url = f"sqlite:///{tmp_path_factory.mktemp('empty')}/optuna.db"
    study = optuna.create_study(study_name="empty/core", storage=url)
    study.tell(study.ask(), state=TrialState.FAIL)
    return url


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (
            ("search_space=cnn", "search.warm_start.search=src"),
            ("searched space 'mlp', this search searches 'cnn'",),
        ),
        (("search.warm_start.search=nosuch",), ("search.warm_start.search='nosuch': no such",)),
        (
            ("search.warm_start.storage=sqlite:////nonexistent/optuna.db",),
            ("search.warm_start.storage='sqlite:////nonexistent/optuna.db': no such SQLite",),
        ),
        (
            ("search.warm_start.run_dir=/nonexistent/run",),
            ("search.warm_start.run_dir='/nonexistent/run': no such directory",),
        ),
        (("search.warm_start.serach=src",), ("search.warm_start.serach: unknown key",)),
        (("EMPTY", "search.warm_start.search=empty"), ("'empty' has no completed trial",)),
    ],
)
def test_an_unusable_source_is_one_line_before_training(
    source, empty, tmp_path, overrides, needles
):
    storage = empty if overrides[0] == "EMPTY" else source
    given = [o for o in overrides if o != "EMPTY"]
    if not any(
        o.startswith(("search.warm_start.storage", "search.warm_start.run_dir")) for o in given
    ):
        given.append(f"search.warm_start.storage={storage}")
    proc = run_dnc(tmp_path, *TINY, "tracking.uri=null", *given, timeout=120)
    _assert_refused(proc, *needles)
    db = tmp_path / "run" / "optuna.db"
    if db.exists():  # nothing trained
        assert all(s.n_trials == 0 for s in optuna.get_all_study_summaries(f"sqlite:///{db}"))


def test_the_command_line_starts_from_a_run_folder(source, tmp_path):
    """Digits -> Morse from the command line; MLflow shows where the warm trials came from."""
    run_dir = Path(source.removeprefix("sqlite:///")).parent
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_dnc(
        tmp_path,
        "search=quick",
        "trainer.epochs=1",
        f"tracking.uri={uri}",
        "dataset=morse",
        "dataset.classes=16",
        "dataset.examples_per_class=20",
        "dataset.cache_dir=null",
        f"search.warm_start.run_dir={run_dir}",
        "search.warm_start.search=src",
        check=True,
    )
    assert "warm start: stage core trains 2 trials of src in" in proc.stdout
    study = optuna.load_study(
        study_name="morse-mlp/core", storage=f"sqlite:///{tmp_path}/run/optuna.db"
    )
    origins = [t.user_attrs.get(records.WARM_START_FROM) for t in study.get_trials()]
    assert origins[:2] == [o for o in origins if o] and len(origins) == 3
    client = MlflowClient(tracking_uri=uri)
    tags = [client.get_run(t.user_attrs[records.MLFLOW_RUN]).data.tags for t in study.trials]
    assert [t.get("dnc.warm_start_from") for t in tags] == origins
    search_run = client.get_run(study.user_attrs[records.MLFLOW_SEARCH_RUN])
    assert search_run.data.params["warm_start"].startswith("src in sqlite:///")
