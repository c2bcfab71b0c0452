"""Data is put on the trainer's device once per search, not copied by every trial."""

from __future__ import annotations

import torch
from torch import nn

from dnc.train.datasets import Digits
from dnc.train.trainer import TrainerSettings, place, train


def test_place_on_the_current_device_copies_nothing():
    data = Digits().load(seed=0)
    placed = place(data, TrainerSettings(device="cpu"))
    for name in ("xtr", "ytr", "xva", "yva", "xte", "yte"):
        assert getattr(placed, name).data_ptr() == getattr(data, name).data_ptr()


def test_search_places_its_data_once(tmp_path):
    from dnc_mlp.space import MLPSpace

    from dnc.search import Search, SearchSettings
    from dnc.search.cost import NumParams

    search = Search(
        SearchSettings(name="p"),
        storage=f"sqlite:///{tmp_path}/p.db",
        space=MLPSpace(),
        dataset=Digits(),
        cost=NumParams(),
        trainer=TrainerSettings(epochs=1, device="cpu"),
    )
    assert search.load_data() is search.load_data()
    assert search.load_data().xtr.device == torch.device("cpu")


def test_training_reads_placed_data_in_place():
    data = place(Digits().load(seed=0), TrainerSettings(device="cpu"))
    before = data.xtr.clone()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    train(
        model,
        data,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=64,
        settings=TrainerSettings(epochs=1, device="cpu"),
    )
    assert torch.equal(data.xtr, before)  # training never writes into the shared tensors
