"""The best network a search found, with the weights it was scored with: kept as the search
runs (the best epoch of the best-so-far trial; nothing is retrained), saved in the run folder
(``best_model.pt``) and handed to observers at the end (the MLflow tracker logs it as an MLflow
model).

Each worker keeps the best of the trials it trained, so the worker that trained the search's
best candidate has it at the end; a search resumed in the same run folder reads it back.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnc.plugins import Candidate, SearchSpace, TensorData, candidate_key

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

FILE = "best_model.pt"
"""The file in the run folder: ``{"key", "loss", "candidate", "state_dict"}`` (``torch.load``
with ``weights_only=True`` reads it)."""


@dataclass(frozen=True)
class BestModel:
    """The search's best candidate (trial ``key``, ``<stage>/<number>``) as a trained network:
    ``model`` on the CPU in eval mode with the weights of its best epoch, ``input_example`` a
    few validation inputs (``n x *input_shape``), ``path`` the saved weights (``None``: not
    saved)."""

    key: str
    loss: float
    candidate: Candidate
    model: nn.Module
    input_example: torch.Tensor
    path: Path | None = None


class BestWeights:
    """The weights of the best trial this process trained, in memory and in ``folder``.

    Example:
        >>> keeper = BestWeights(Path("outputs/run"))
        >>> keeper.offer("core/3", -1.02, candidate, result.best_state)
        >>> keeper.model("core/3", candidate, space, data)  # a BestModel, or None
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.path = folder / FILE if folder is not None else None
        self.key = ""
        self.loss = float("inf")
        self.candidate: Candidate = {}
        self.state: dict[str, torch.Tensor] | None = None
        self._read()

    def _read(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        import torch

        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            self.key, self.loss = str(saved["key"]), float(saved["loss"])
            self.candidate, self.state = dict(saved["candidate"]), dict(saved["state_dict"])
        except Exception as err:  # a file from elsewhere: start afresh
            log.warning("%s is not readable (%s): the best weights are kept anew", self.path, err)

    def offer(
        self, key: str, loss: float, candidate: Candidate, state: Mapping[str, torch.Tensor]
    ) -> None:
        """Keep ``state`` (copied to the CPU) if trial ``key`` scored better than the kept one,
        and save it; a file that cannot be written is a warning (the search goes on)."""
        if not loss < self.loss:
            return
        from dnc.search.results import write_atomically

        self.key, self.loss, self.candidate = key, loss, dict(candidate)
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        if self.path is None:
            return
        import torch

        buffer = io.BytesIO()
        saved = {"key": key, "loss": loss, "candidate": self.candidate, "state_dict": self.state}
        torch.save(saved, buffer)
        try:
            write_atomically(self.path, buffer.getvalue())
        except OSError as err:
            log.warning("the best weights could not be saved to %s: %s", self.path, err)

    def model(
        self, key: str, candidate: Mapping[str, Any], space: SearchSpace, data: TensorData
    ) -> BestModel | None:
        """Trial ``key``'s network (``candidate``) with its kept weights; ``None`` when this
        process does not hold them (another worker trained it) or they do not fit (a file left
        by another search in the run folder: a warning)."""
        if (
            key != self.key
            or self.state is None
            or candidate_key(candidate) != candidate_key(self.candidate)  # fresh or read back
        ):
            return None
        model = space.build(self.candidate, data.spec)
        try:
            model.load_state_dict(self.state)
        except (RuntimeError, ValueError) as err:
            log.warning("the kept weights of trial %s do not fit its network: %s", key, err)
            return None
        model.to("cpu").eval()
        example = data.xva[:5].detach().to("cpu").contiguous()
        return BestModel(key, self.loss, dict(self.candidate), model, example, self.path)


__all__ = ["FILE", "BestModel", "BestWeights"]
