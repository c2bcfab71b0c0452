"""``python -m dnc.transfer`` end to end: real small searches (Morse baseline -> difficult,
digits -> an ``.npz`` of cropped digits with 5 classes), their picks retrained on the target
data, read back from the JSON, the PNG and a real MLflow store; and every bad input as one
line."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import run_dnc
from mlflow.tracking import MlflowClient

from dnc.plugins import DataSpec, UserError
from dnc.search import records
from dnc.search.cost import NumParams, TEpoch
from dnc.search.transfer import check_comparable

pytestmark = pytest.mark.slow

SEARCH = ("search=quick", "trainer.epochs=2")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _searches(cwd: Path, **folders: tuple[str, ...]) -> list[Path]:
    """A search in each ``cwd/<folder>`` with its overrides, run at the same time (one thread
    each: on two cores the pair takes little longer than one)."""

    def search(folder: str, overrides: tuple[str, ...]) -> Path:
        run = cwd / folder
        run_dnc(cwd, *SEARCH, *overrides, f"hydra.run.dir={run}", check=True, env=ONE_THREAD)
        return run

    with ThreadPoolExecutor(len(folders)) as pool:
        return list(pool.map(search, folders, folders.values()))


def _transfer(cwd: Path, *args: str, check: bool = False):
    return run_dnc(cwd, *args, module="dnc.transfer", check=check, timeout=300)


@pytest.fixture(scope="module")
def morse(tmp_path_factory):
    """Morse baseline -> difficult (cost t_epoch), transferred once for three wc (MLflow:
    cwd/mlflow.db)."""
    cwd = tmp_path_factory.mktemp("morse")
    small = ("dataset=morse", "dataset.examples_per_class=30")  # 1,920 frames: quick to train
    src, dst = _searches(
        cwd,
        src=(*small, "dataset.preset=baseline", "search.name=baseline"),
        dst=(*small, "dataset.preset=difficult", "search.name=difficult"),
    )
    proc = _transfer(cwd, f"source.run_dir={src}", f"target.run_dir={dst}", "wc=[0,0.1,10]")
    return cwd, src, dst, proc


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A digits search, and a search on an .npz of digits 0-4 cropped to 6 x 6 (another input
    shape and class count), both costed by parameter count."""
    from sklearn.datasets import load_digits

    cwd = tmp_path_factory.mktemp("digits")
    bunch = load_digits()
    keep = bunch.target < 5
    x = (bunch.images[keep, 1:7, 1:7] / 16.0).astype(np.float32)
    y = bunch.target[keep]
    cut = int(0.8 * len(x))
    npz = cwd / "crops.npz"
    np.savez(npz, xtr=x[:cut], ytr=y[:cut], xte=x[cut:], yte=y[cut:])
    src, dst = _searches(
        cwd,
        src=("cost=numparams",),
        dst=("cost=numparams", "dataset=npz", f"dataset.path={npz}"),
    )
    return cwd, src, dst, npz


def test_morse_transfer_prints_a_table_and_trains_each_pick_once(morse):
    _, src, dst, proc = morse
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "baseline picks trained on morse, beside difficult's own" in out
    assert "transferred val acc %" in out and "own val acc %" in out
    rows = json.loads((dst / "transfer-baseline-to-difficult.json").read_text())["rows"]
    distinct = {json.dumps(r["transferred"]["candidate"], sort_keys=True) for r in rows}
    assert out.count("training the source's pick on morse") == len(distinct)
    assert "training the target's own" not in out  # their recorded figures stand


def test_morse_json_has_a_row_per_wc_scored_by_the_target(morse):
    _, src, dst, _ = morse
    content = json.loads((dst / "transfer-baseline-to-difficult.json").read_text())
    assert content["source"]["search"] == "baseline"
    assert content["target"]["search"] == "difficult"
    assert content["dataset"] == "morse" and content["space"] == "mlp"
    assert content["trainer"]["epochs"] == 2
    bar = content["cost"]["tbar_epoch"]
    assert content["cost"]["name"] == "t_epoch" and bar > 0
    rows = content["rows"]
    assert [r["wc"] for r in rows] == [0.0, 0.1, 10.0]
    storage = f"sqlite:///{dst}/optuna.db"
    from dnc.search import open_storage
    from dnc.search.rescore import rescore

    native = rescore(open_storage(storage), "difficult", [0.0, 0.1, 10.0])
    source = rescore(open_storage(f"sqlite:///{src}/optuna.db"), "baseline", [0.0, 0.1, 10.0])
    for row, own, theirs in zip(rows, native, source, strict=True):
        moved, mine, wc = row["transferred"], row["native"], row["wc"]
        assert moved["trial"] == theirs.best.number and moved["candidate"] == theirs.best.candidate
        assert mine["trial"] == own.best.number and mine["retrained"] is False
        assert mine["search_loss"] == pytest.approx(own.best.loss)
        assert mine["figures"] == pytest.approx(dict(own.best.figures))
        figures = moved["figures"]
        assert 0 <= figures["best_val_acc"] <= 100 and figures["epochs_run"] == 2
        assert moved["complexity"] == pytest.approx(figures["t_epoch"] / bar)
        fp = (100 - figures["best_val_acc"]) / 100
        assert moved["search_loss"] == pytest.approx(math.log10(fp + wc * moved["complexity"]))
        assert row["transferred_better"] == (moved["search_loss"] < mine["search_loss"])


def test_morse_plot_is_written_beside_the_json(morse):
    _, _, dst, proc = morse
    png = dst / "transfer-baseline-to-difficult.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"front: {png}" in proc.stdout


def test_morse_study_is_an_mlflow_run_nested_under_the_target_search(morse):
    cwd, _, dst, proc = morse
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlflow.db")
    experiment = client.get_experiment_by_name("dnc").experiment_id
    [target] = client.search_runs(
        [experiment], "tags.`dnc.kind` = 'search' and tags.`dnc.search` = 'difficult'"
    )
    [run] = client.search_runs([experiment], "tags.`dnc.kind` = 'transfer'")
    assert run.data.tags["mlflow.parentRunId"] == target.info.run_id
    assert run.data.tags["dnc.source_search"] == "baseline" and run.info.status == "FINISHED"
    assert f"logged to MLflow run {run.info.run_id} nested under" in proc.stdout
    assert run.data.params["source"] == "baseline" and run.data.params["target"] == "difficult"
    rows = json.loads((dst / "transfer-baseline-to-difficult.json").read_text())["rows"]
    metrics = run.data.metrics
    for row in rows:
        wc = f"wc_{row['wc']:g}"
        moved = row["transferred"]["figures"]["best_val_acc"]
        assert metrics[f"{wc}/transferred_best_val_acc_pct"] == pytest.approx(moved)
        assert metrics[f"{wc}/native_search_loss"] == pytest.approx(row["native"]["search_loss"])
    assert metrics["transferred_better"] == sum(r["transferred_better"] for r in rows)
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "transfer-baseline-to-difficult.json",
        "transfer-baseline-to-difficult.png",
    ]


def test_digits_to_npz_rebuilds_for_the_target_shape_and_retrains_both(digits):
    cwd, src, dst, npz = digits
    out = cwd / "study" / "crops.png"
    uri = f"sqlite:///{cwd}/elsewhere.db"  # the target search's run is not in this store
    proc = _transfer(
        cwd,
        f"source.run_dir={src}",
        f"target.run_dir={dst}",
        "wc=[0,1]",
        "dataset=npz",  # the target's dataset given again (a moved file would need it)
        f"dataset.path={npz}",
        "trainer.epochs=3",
        "retrain_native=true",
        f"out={out}",
        f"tracking.uri={uri}",
        "tracking.experiment=transfers",
        check=True,
    )
    assert out.is_file() and not list(dst.glob("transfer-*"))
    content = json.loads(out.with_suffix(".json").read_text())
    assert content["dataset"] == "crops" and content["trainer"]["epochs"] == 3
    from dnc_mlp.space import MLPSpace

    from dnc.train.trainer import count_params

    for row in content["rows"]:
        moved, mine = row["transferred"], row["native"]
        assert mine["retrained"] is True and "(retrained)" in proc.stdout
        assert moved["figures"]["epochs_run"] == mine["figures"]["epochs_run"] == 3
        # the digits pick, rebuilt for 6 x 6 inputs and 5 classes
        rebuilt = MLPSpace().build(moved["candidate"], DataSpec((6, 6), 5))
        assert moved["figures"]["numparams"] == count_params(rebuilt)
        on_digits = MLPSpace().build(moved["candidate"], DataSpec((1, 8, 8), 10))
        assert moved["source_figures"]["numparams"] == count_params(on_digits)
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("transfers").experiment_id])
    assert run.data.tags["dnc.kind"] == "transfer" and "mlflow.parentRunId" not in run.data.tags
    assert "(the store lacks the target search's run)" in proc.stdout


def _assert_one_line(proc, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("dnc: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def empty_search(digits):
    """A storage whose search has no completed trial (one failed), as dnc records it."""
    cwd = digits[0]
    folder = cwd / "empty"
    folder.mkdir()
    study = optuna.create_study(study_name="empty/core", storage=f"sqlite:///{folder}/optuna.db")
    study.set_user_attr(records.SETTINGS, {"search": "empty", "space": "mlp", "seed": 0})
    study.set_user_attr(
        records.COST, {"target": "dnc.search.cost.NumParams", "kwargs": {"numparams_bar": 99.0}}
    )
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return folder


SOURCE, TARGET = "source.run_dir={src}", "target.run_dir={dst}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((TARGET,), "give source.run_dir=<the source search's run folder> or source.storage_url="),
        (("source.run_dir=/nonexistent/run", TARGET), "source.run_dir='/nonexistent/run': no such"),
        ((SOURCE, TARGET, "source.search_name=nosuch"), "source.search_name='nosuch' is not in"),
        ((SOURCE, TARGET, "wc=[0,-1]"), "wc=[0, -1]: each must be a finite number >= 0"),
        ((SOURCE, TARGET, "wc=many"), "wc=['many']: give numbers >= 0"),
        ((SOURCE, TARGET, "dataset=nosuchdata"), "dataset/nosuchdata"),
        ((SOURCE, TARGET, "dataset=digits"), "dataset 'digits' is not the target search's ('npz')"),
        ((SOURCE, "target.run_dirr=x"), "target.run_dirr: unknown key"),
        ((SOURCE, TARGET, "trainer.epochz=3"), "trainer.epochz: unknown key"),
        (("source.run_dir={empty}", TARGET), "source: search 'empty' has no finished trial"),
        (
            ("source.run_dir={morse}", TARGET),  # Morse's difficult search was costed by t_epoch
            "the source search 'difficult' was scored with cost 't_epoch' but the target 'npz-mlp' "
            "with 'numparams'",
        ),
    ],
)
def test_bad_input_is_one_clear_line(digits, morse, empty_search, args, needle):
    cwd, src, dst, _ = digits
    where = {"src": src, "dst": dst, "empty": empty_search, "morse": morse[2]}
    proc = _transfer(cwd, *(a.format(**where) for a in args), "tracking.uri=null")
    _assert_one_line(proc, needle)


def test_searches_must_share_the_space_and_the_cost_kind():
    mlp, cnn = {"search": "a", "space": "mlp"}, {"search": "b", "space": "cnn"}
    with pytest.raises(UserError, match="used search space 'mlp' but the target 'b' used 'cnn'"):
        check_comparable(mlp, cnn, TEpoch(1.0), TEpoch(2.0))
    with pytest.raises(UserError, match="cost 'numparams' but the target 'a' with 't_epoch'"):
        check_comparable(mlp, mlp, NumParams(10), TEpoch(1.0))
    check_comparable(mlp, {**mlp, "search": "c"}, NumParams(10), NumParams(20))
