"""Opening the storage, finding a search's studies, and the cost recorded on them."""

from __future__ import annotations

import optuna
import pytest

from dnc.plugins import UserError
from dnc.search.cost import TEpoch
from dnc.search.storage import (
    mask_url,
    open_storage,
    record_cost,
    recorded_cost,
    search_studies,
    searches_in,
)


def test_a_password_is_never_shown():
    url = "postgresql://dnc:s3cret@db.example:5432/dnc"
    assert mask_url(url) == "postgresql://dnc:***@db.example:5432/dnc"
    assert mask_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    with pytest.raises(UserError) as err:
        open_storage("postgresql://dnc:s3cret@127.0.0.1:1/dnc")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_a_bad_url_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="SQLAlchemy URL"):
        open_storage("optuna.db")
    open_storage(f"sqlite:///{tmp_path}/new/folder/o.db")  # folders are made
    assert (tmp_path / "new" / "folder" / "o.db").exists()


def test_a_search_is_its_studies_oldest_first(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    for name in ("s/core", "other/core", "s/arch", "s-2/core", "s/train"):
        optuna.create_study(study_name=name, storage=storage)
    assert search_studies(storage, "s") == ["s/core", "s/arch", "s/train"]
    assert searches_in(storage) == ["other", "s", "s-2"]


def test_the_recorded_cost_rebuilds_with_its_normaliser(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(study_name="s/core", storage=storage)
    cost = TEpoch()
    cost.calibrate({"t_epoch": 0.25})
    record_cost(study, cost)
    again = recorded_cost(optuna.load_study(study_name="s/core", storage=storage))
    assert isinstance(again, TEpoch) and again.complexity({"t_epoch": 0.5}) == 2.0
    with pytest.raises(UserError, match="records no cost"):
        recorded_cost(optuna.create_study(study_name="s/arch", storage=storage))
    study.set_user_attr("dnc.cost", {"target": "dnc_gone.Cost", "kwargs": {}})
    with pytest.raises(UserError, match="dnc_gone.Cost, which is not installed"):
        recorded_cost(study)
