"""Training on in-memory tensors, and the datasets that provide them."""

from dnc.train.trainer import TrainerSettings, TrainResult, TrialDiverged, count_params, train

__all__ = ["TrainResult", "TrainerSettings", "TrialDiverged", "count_params", "train"]
