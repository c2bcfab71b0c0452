"""The trainer on image data: augmentation per epoch, precision, torch.compile, bad settings."""

from __future__ import annotations

import pytest
import torch
from dnc_cnn.space import CNNSpace

from dnc.plugins import TensorData, UserError
from dnc.train.augment import AUGMENTATIONS
from dnc.train.datasets import Digits
from dnc.train.trainer import TrainerSettings, autocast_dtype, train


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return Digits().load(seed=0)


def small_cnn(data: TensorData, **arch) -> torch.nn.Module:
    space = CNNSpace(core={"conv_layers": (3, 3), "first_channels": (16, 16), "max_channels": 64})
    cand = {**space.reference_candidate(), "channels_1": 32, "channels_2": 64,
            "dropout_fraction": 0.0, **arch}
    return space.build(cand, data.spec)


def test_a_small_cnn_learns_digits_with_augmentation(digits):
    result = train(small_cnn(digits), digits, lr=3e-3, weight_decay=0.0, batch_size=32,
                   settings=TrainerSettings(epochs=3, device="cpu", augment="flip"), seed=0)
    assert result.epochs_run == 3 and result.t_epoch > 0
    assert result.best_val_acc > 70.0


def test_augmentation_runs_once_per_epoch_on_the_whole_training_tensor(digits, monkeypatch):
    calls: list[tuple[tuple[int, ...], torch.device]] = []

    def record(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append((tuple(x.shape), x.device))
        return AUGMENTATIONS["flip_crop"](x, generator)

    monkeypatch.setitem(AUGMENTATIONS, "record", record)
    settings = TrainerSettings(epochs=3, device="cpu", augment="record")
    train(small_cnn(digits), digits, lr=1e-3, weight_decay=0.0, batch_size=128,
          settings=settings, seed=0)
    assert calls == [(tuple(digits.xtr.shape), torch.device("cpu"))] * 3


def test_augmentation_changes_training_but_not_validation(digits):
    def run(augment: str):
        torch.manual_seed(0)
        model = small_cnn(digits)
        return train(model, digits, lr=1e-3, weight_decay=0.0, batch_size=128, seed=0,
                     settings=TrainerSettings(epochs=1, device="cpu", augment=augment))

    plain, again, flipped = run("none"), run("none"), run("flip")
    assert plain.train_loss == again.train_loss  # deterministic on CPU
    assert plain.train_loss != flipped.train_loss


def test_bf16_autocast_trains_on_cpu(digits):
    result = train(small_cnn(digits), digits, lr=3e-3, weight_decay=0.0, batch_size=32,
                   settings=TrainerSettings(epochs=2, device="cpu", precision="bf16"), seed=0)
    assert all(torch.isfinite(torch.tensor(result.train_loss)))
    assert result.train_loss[-1] < result.train_loss[0] and result.best_val_acc > 30.0


def test_precision_auto_is_bf16_only_for_images_on_cuda():
    auto = TrainerSettings(device="cpu")
    assert autocast_dtype(auto, torch.device("cuda"), image=True) is torch.bfloat16
    assert autocast_dtype(auto, torch.device("cuda"), image=False) is None
    assert autocast_dtype(auto, torch.device("cpu"), image=True) is None
    fp32 = TrainerSettings(device="cpu", precision="fp32")
    assert autocast_dtype(fp32, torch.device("cuda"), image=True) is None


@pytest.mark.slow
def test_torch_compile_trains(digits):
    result = train(small_cnn(digits), digits, lr=3e-3, weight_decay=0.0, batch_size=32,
                   settings=TrainerSettings(epochs=2, device="cpu", compile=True), seed=0)
    assert result.epochs_run == 2 and result.train_loss[-1] < result.train_loss[0]
    assert result.best_val_acc > 30.0


def test_image_augmentation_on_flat_data_is_a_user_error(digits):
    flat = TensorData(digits.xtr.flatten(1), digits.ytr, digits.xva.flatten(1), digits.yva,
                      digits.xte.flatten(1), digits.yte, num_classes=10, name="flat")
    model = torch.nn.Linear(64, 10)
    with pytest.raises(UserError, match="needs image data"):
        train(model, flat, lr=1e-3, weight_decay=0.0, batch_size=64,
              settings=TrainerSettings(epochs=1, device="cpu", augment="flip_crop"))


@pytest.mark.parametrize("kwargs, match", [
    ({"augment": "mixup"}, "trainer.augment"),
    ({"augment": ["flip"]}, "trainer.augment"),
    ({"precision": "fp16"}, "trainer.precision"),
    ({"compile": "false"}, "trainer.compile"),
])
def test_bad_settings_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        TrainerSettings(device="cpu", **kwargs)
