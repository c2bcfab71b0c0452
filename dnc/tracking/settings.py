"""``TrackingSettings``: where a search's runs go (``tracking``). Importing it is cheap."""

from __future__ import annotations

from dataclasses import dataclass

from dnc.plugins import UserError


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go (``tracking``): any MLflow tracking ``uri`` (``sqlite:///mlflow.db``,
    ``http://host:5000``, a folder; ``None`` switches tracking off) and the ``experiment``."""

    uri: str | None = "sqlite:///mlflow.db"
    experiment: str = "dnc"

    def __post_init__(self) -> None:
        if not self.experiment:
            raise UserError("tracking.experiment must be a non-empty name")


__all__ = ["TrackingSettings"]
