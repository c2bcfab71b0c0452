"""``TrackingSettings``: where a search's runs go (``tracking``). Importing it is cheap."""

from __future__ import annotations

from dataclasses import dataclass

from dnc.plugins import UserError


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go (``tracking``): any MLflow tracking ``uri`` (``sqlite:///mlflow.db``,
    ``http://host:5000``, a folder; ``None`` switches tracking off) and the ``experiment``.
    The best network is logged to the search's run as an MLflow model (``model``), and also
    registered in the model registry under ``register_model`` when that names a model.
    ``log_model`` (on by default) logs the best network to the search's run as an MLflow
    model; off, only its weights are kept (``best_model.pt`` in the run folder).
    ``pictures`` (on by default) draws the search's pictures into the run folder as it ends
    (``dnc.tracking.pictures``), logged to its run; off, ``python -m dnc.report`` still draws
    the front, and ``dnc.tracking.pictures.draw_search`` all of them, from the storage later."""

    uri: str | None = "sqlite:///mlflow.db"
    experiment: str = "dnc"
    register_model: str | None = None
    log_model: bool = True
    pictures: bool = True

    def __post_init__(self) -> None:
        if not self.experiment:
            raise UserError("tracking.experiment must be a non-empty name")
        if self.register_model is not None and not str(self.register_model).strip():
            raise UserError(
                "tracking.register_model is empty: give the registered model's name, or null"
            )
        if self.register_model is not None and not self.log_model:
            raise UserError(
                "tracking.register_model needs the model logged: drop tracking.log_model=false, "
                "or set tracking.register_model=null"
            )


__all__ = ["TrackingSettings"]
