"""What a server is allowed to do, and how ``nobg serve`` hands it to every worker process.

``nobg serve`` turns its options into ``SEGMENTATION_*`` environment variables
(:meth:`Settings.to_env`); each of uvicorn's worker processes reads them back
(:meth:`Settings.from_env`), so they all load the same model with the same limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from segmentation.resources import MODEL_ENV

__all__ = [
    "ENV_API_KEY",
    "ENV_CONCURRENCY",
    "ENV_MAX_MEGAPIXELS",
    "ENV_MAX_UPLOAD_MB",
    "Settings",
    "default_concurrency",
]

ENV_API_KEY = "SEGMENTATION_API_KEY"
ENV_MAX_UPLOAD_MB = "SEGMENTATION_MAX_UPLOAD_MB"
ENV_MAX_MEGAPIXELS = "SEGMENTATION_MAX_MEGAPIXELS"
ENV_CONCURRENCY = "SEGMENTATION_CONCURRENCY"


def default_concurrency() -> int:
    """Photos processed at once: every core busy, a 12 MP photo's ~0.5 GB each at most."""
    return max(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """What a server is allowed to do; the same for every request."""

    model: str | None = None  # None: $SEGMENTATION_MODEL, else the shipped weights
    api_key: str | None = None  # None: no key needed (fine on localhost)
    max_upload_mb: float = 50.0  # request body, as the app's upload limit
    max_megapixels: float = 50.0  # per image, as the CLI's default
    concurrency: int = field(default_factory=default_concurrency)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from ``SEGMENTATION_*`` variables (how ``nobg serve`` passes them on)."""
        env = os.environ
        return cls(
            model=env.get(MODEL_ENV) or None,
            api_key=env.get(ENV_API_KEY) or None,
            max_upload_mb=float(env.get(ENV_MAX_UPLOAD_MB) or cls.max_upload_mb),
            max_megapixels=float(env.get(ENV_MAX_MEGAPIXELS) or cls.max_megapixels),
            concurrency=int(env.get(ENV_CONCURRENCY) or default_concurrency()),
        )

    def to_env(self) -> dict[str, str]:
        """The variables :meth:`from_env` reads back."""
        env = {
            ENV_MAX_UPLOAD_MB: repr(self.max_upload_mb),
            ENV_MAX_MEGAPIXELS: repr(self.max_megapixels),
            ENV_CONCURRENCY: str(self.concurrency),
        }
        if self.model:
            env[MODEL_ENV] = str(self.model)
        if self.api_key:
            env[ENV_API_KEY] = self.api_key
        return env
