"""`ServeSettings`: what `winnow serve` runs with (no web framework imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from winnow.errors import WinnowError

MB = 2**20


@dataclass(frozen=True)
class ServeSettings:
    """What `winnow serve` runs with; every limit is stated in `GET /model`."""

    weights: str
    threshold: float = 0.7
    top_k: int = 3
    max_file_mb: float = 20.0
    max_files: int = 64
    max_request_mb: float = 100.0
    max_concurrent: int = 4
    max_queued: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ServeError(f"threshold must be between 0 and 1, got {self.threshold}.")
        for name in ("top_k", "max_files", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ServeError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_queued < 0:
            raise ServeError(f"max_queued must be 0 or more, got {self.max_queued}.")
        for name in ("max_file_mb", "max_request_mb"):
            if getattr(self, name) <= 0:
                raise ServeError(f"{name} must be positive, got {getattr(self, name)}.")

    def limits(self) -> dict[str, float]:
        return {
            "max_file_mb": self.max_file_mb,
            "max_files": self.max_files,
            "max_request_mb": self.max_request_mb,
            "max_concurrent": self.max_concurrent,
            "max_queued": self.max_queued,
        }


class ServeError(WinnowError, ValueError):
    """The server can't start with these settings; the message says why."""
