"""The best network's weights are kept as a search runs: the best-scoring trial's, saved in the
run folder and read back by a resumed search."""

from __future__ import annotations

import torch
from dnc_mlp.space import MLPSpace

from dnc.plugins import TensorData
from dnc.search.best_model import FILE, BestWeights
from dnc.train.trainer import accuracy


def data() -> TensorData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 4, 4, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    return TensorData(x[:20], y[:20], x[20:30], y[20:30], x[30:], y[30:], 3, "toy")


CANDIDATE = {
    "num_hidden_layers": 1,
    "hidden_0": 8,
    "activation": "relu",
    "dropout": 0.0,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 8,
}


def weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return MLPSpace().build(CANDIDATE, data().spec).state_dict()


def test_only_a_better_trial_replaces_the_kept_weights_and_a_resume_reads_them(tmp_path):
    keeper = BestWeights(tmp_path)
    keeper.offer("core/0", -0.5, CANDIDATE, weights(0))
    keeper.offer("core/1", -0.4, CANDIDATE, weights(1))  # worse: not kept
    assert keeper.key == "core/0" and (tmp_path / FILE).is_file()
    keeper.offer("arch/2", -0.7, CANDIDATE, weights(2))
    resumed = BestWeights(tmp_path)  # a search resumed in the same run folder
    assert (resumed.key, resumed.loss) == ("arch/2", -0.7)
    assert resumed.model("core/0", CANDIDATE, MLPSpace(), data()) is None  # not the one it holds
    other = {**CANDIDATE, "hidden_0": 9}  # another search's trial arch/2, in a reused folder
    assert resumed.model("arch/2", other, MLPSpace(), data()) is None
    best = resumed.model("arch/2", CANDIDATE, MLPSpace(), data())
    assert best is not None and not best.model.training
    expected = MLPSpace().build(CANDIDATE, data().spec)
    expected.load_state_dict(weights(2))
    toy = data()
    assert accuracy(best.model, toy.xva, toy.yva, 8) == accuracy(expected, toy.xva, toy.yva, 8)
    assert best.input_example.shape == (5, 1, 4, 4)


def test_an_unreadable_file_is_a_fresh_start(tmp_path, caplog):
    (tmp_path / FILE).write_bytes(b"not a torch file")
    keeper = BestWeights(tmp_path)
    assert keeper.key == "" and "not readable" in caplog.text
