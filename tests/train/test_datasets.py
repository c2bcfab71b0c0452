"""Built-in datasets: digits, npz round trip, torchvision's on-disk layouts."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_dnc, write_cifar10

from dnc.plugins import UserError
from dnc.testing import DatasetContract
from dnc.train.datasets import Digits, Npz
from dnc.train.image_folders import TorchvisionFolder


class TestDigitsContract(DatasetContract):
    def make_dataset(self) -> Digits:
        return Digits()


def test_digits_shapes_and_split_sizes():
    data = Digits(val_split=0.2).load(seed=0)
    assert data.xtr.shape[1:] == (1, 8, 8) and data.num_classes == 10
    total = len(data.xtr) + len(data.xva) + len(data.xte)
    assert total == 1797
    assert len(data.xva) == round(0.2 * (len(data.xtr) + len(data.xva)))
    assert 0.0 <= float(data.xtr.min()) and float(data.xtr.max()) <= 1.0
    other = Digits().load(seed=1)
    assert not torch.equal(other.yva, data.yva)  # the seed moves the validation split
    assert torch.equal(other.yte, data.yte)  # the test set is fixed


def test_digits_are_scikit_learns_without_importing_sklearn_datasets():
    from sklearn.datasets import load_digits

    code = (
        "import sys; from dnc.train.datasets import Digits; d = Digits().load(seed=0); "
        "print(len(d.xtr) + len(d.xva) + len(d.xte), 'sklearn.datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1797", "False"]  # seconds of imports saved in each worker
    data, reference = Digits().load(seed=0), load_digits()
    x = np.concatenate([data.xtr.numpy(), data.xva.numpy(), data.xte.numpy()])
    y = np.concatenate([data.ytr.numpy(), data.yva.numpy(), data.yte.numpy()])
    pairs = sorted(zip(y.tolist(), x.reshape(len(x), -1).round(4).tolist(), strict=True))
    expected = sorted(
        zip(reference.target.tolist(), (reference.data / 16.0).round(4).tolist(), strict=True)
    )
    assert pairs == expected


def _write_npz(path: Path, with_val: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "xtr": rng.normal(size=(120, 5)).astype(np.float32),
        "ytr": rng.integers(0, 3, 120),
        "xte": rng.normal(size=(30, 5)).astype(np.float32),
        "yte": rng.integers(0, 3, 30),
    }
    if with_val:
        arrays |= {
            "xva": rng.normal(size=(20, 5)).astype(np.float32),
            "yva": rng.integers(0, 3, 20),
        }
    np.savez(path, **arrays)
    return arrays


def test_npz_round_trip(tmp_path):
    arrays = _write_npz(tmp_path / "d.npz")
    data = Npz(str(tmp_path / "d.npz"), val_split=0.25).load(seed=0)
    assert len(data.xtr) == 90 and len(data.xva) == 30
    assert torch.equal(data.xte, torch.from_numpy(arrays["xte"]))
    assert torch.equal(data.yte, torch.from_numpy(arrays["yte"]).long())
    # train + val is exactly the file's training set, rows kept with their labels
    rows = {
        tuple(np.round(x, 6)): int(y) for x, y in zip(arrays["xtr"], arrays["ytr"], strict=True)
    }
    for x, y in zip(torch.cat([data.xtr, data.xva]), torch.cat([data.ytr, data.yva]), strict=True):
        assert rows[tuple(np.round(x.numpy(), 6))] == int(y)
    assert data.num_classes == 3


def test_npz_with_its_own_validation_set_and_one_hot_labels(tmp_path):
    arrays = _write_npz(tmp_path / "v.npz", with_val=True)
    arrays["ytr"] = np.eye(3)[arrays["ytr"]]  # one-hot, as the original tool stored labels
    np.savez(tmp_path / "v.npz", **arrays)
    data = Npz(str(tmp_path / "v.npz")).load(seed=0)
    assert len(data.xtr) == 120 and len(data.xva) == 20
    assert torch.equal(data.ytr, torch.from_numpy(arrays["ytr"].argmax(1)))


class TestNpzContract(DatasetContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path):
        _write_npz(tmp_path / "c.npz")
        self.path = tmp_path / "c.npz"

    def make_dataset(self) -> Npz:
        return Npz(str(self.path))


def test_search_on_an_npz_file_through_the_cli(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data.astype(np.float32) / 16, d.target
    np.savez(tmp_path / "digits.npz", xtr=x[:1200], ytr=y[:1200], xte=x[1200:], yte=y[1200:])
    proc = run_dnc(
        tmp_path,
        "dataset=npz",
        f"dataset.path={tmp_path}/digits.npz",
        "search=quick",  # the three stages, one variant per grid sub-stage
        "search.bo.prior_states=2",
        "search.bo.steps=0",
        "trainer.epochs=2",
        "cost=numparams",
        "search.name=npzsearch",
        check=True,
    )
    assert "960 train / 240 val / 597 test" in proc.stdout
    assert (tmp_path / "run" / "results.json").exists()


# -- torchvision's on-disk layouts, written by the test --------------------------------------
def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize(
    ("name", "folder", "gz"), [("mnist", "MNIST", False), ("fmnist", "FashionMNIST", True)]
)
def test_mnist_layout(tmp_path, name, folder, gz):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    xtr, ytr = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 10, 50)
    xte, yte = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    for stem, arr in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        _idx(raw / stem, arr, gz)
    data = TorchvisionFolder(name, root=str(tmp_path), normalize=False).load(seed=0)
    assert data.xtr.shape[1:] == (1, 28, 28) and len(data.xtr) + len(data.xva) == 50
    assert torch.equal(data.yte, torch.from_numpy(yte).long())
    assert torch.allclose(data.xte[:, 0], torch.from_numpy(xte / 255.0).float())


def test_cifar10_layout_and_normalisation(tmp_path):
    write_cifar10(tmp_path, per_batch=40, test=30)
    data = TorchvisionFolder("cifar10", root=str(tmp_path)).load(seed=0)
    assert data.xtr.shape[1:] == (3, 32, 32) and len(data.xtr) + len(data.xva) == 200
    assert len(data.xte) == 30 and data.num_classes <= 10
    train = torch.cat([data.xtr, data.xva])
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_cifar100_layout(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 60), ("test", 20)):
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"fine_labels": rng.integers(0, 100, n).tolist(),
                    b"coarse_labels": rng.integers(0, 20, n).tolist(),
                },
                fh,
            )
    data = TorchvisionFolder("cifar100", root=str(tmp_path)).load(seed=0)
    assert len(data.xte) == 20 and data.xte.shape[1:] == (3, 32, 32)


def test_missing_folder_names_it_and_how_to_get_the_data(tmp_path):
    with pytest.raises(UserError) as err:
        TorchvisionFolder("cifar10", root=str(tmp_path / "nope")).load(seed=0)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "download=True" in msg and str(tmp_path / "nope") in msg


def test_damaged_cifar_batch_is_a_user_error(tmp_path):
    write_cifar10(tmp_path, per_batch=40, test=30)
    damaged = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    damaged.write_bytes(b"garbage")
    with pytest.raises(UserError, match="damaged") as err:
        TorchvisionFolder("cifar10", root=str(tmp_path)).load(seed=0)
    assert str(err.value).startswith(f"cifar10: {damaged} is damaged")  # the file, not its folder


@pytest.mark.parametrize("name", ["digits", "npz", "cifar10"])
def test_built_in_datasets_pass_validate(tmp_path, name):
    """The data of every built-in dataset passes the check dnc runs on every dataset."""
    write_cifar10(tmp_path, per_batch=40, test=30)
    _write_npz(tmp_path / "d.npz", with_val=True)
    datasets = {
        "digits": Digits(),
        "npz": Npz(str(tmp_path / "d.npz")),
        "cifar10": TorchvisionFolder("cifar10", root=str(tmp_path)),
    }
    datasets[name].load(seed=0).validate()


def test_max_train_keeps_a_seeded_subset(tmp_path):
    write_cifar10(tmp_path, per_batch=40, test=30)
    small = TorchvisionFolder("cifar10", root=str(tmp_path), max_train=50).load(seed=0)
    assert len(small.xtr) + len(small.xva) == 50 and len(small.xte) == 30
    again = TorchvisionFolder("cifar10", root=str(tmp_path), max_train=50).load(seed=0)
    assert torch.equal(small.ytr, again.ytr)
    with pytest.raises(UserError, match="max_train"):
        TorchvisionFolder("cifar10", root=str(tmp_path), max_train=0)
