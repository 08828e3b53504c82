"""Settings of `winnow scan`: what decides the cached pixels and the decoding limits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from winnow.data.engine import EngineName

# bumped when decoding changes what a row or its cached pixels hold; part of the pixel
# settings, so a cache made by another decoder version is not reused
DECODER_VERSION = 4


class ScanConfig(BaseModel):
    """Settings of `winnow scan`.

    image_size: side of the square pixel-cache images (aspect kept, letterboxed).
    detail_size: side of the detail crop cached beside each image: a window of the image at
        its own resolution (no resizing), where it has the most foreground. Fine texture
        and sensor noise that resizing to `image_size` averages away survive in it.
    background: colour under transparent pixels and in the letterbox bars (any Pillow colour).
    workers: decode processes; None = all cores.
    max_pixels: images with more pixels than this are refused as `oversized` (bomb guard).
    decode_memory_mb: largest in-memory decode; bigger images are streamed by libvips.
    shard_mb: target size of one pixel-cache shard file.
    engine: where files are decoded: `local` (a process pool) or `ray` (Ray Data; see
        `winnow.data.engine`). The manifest and the cache hold the same either way.
    ray_address: the Ray cluster to join with `engine: ray` (None: a local Ray for the scan).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: int = 128
    detail_size: int = 64
    background: str = "white"
    workers: int | None = None
    max_pixels: int = 1_000_000_000
    decode_memory_mb: int = 256
    shard_mb: int = 64
    engine: EngineName = "local"
    ray_address: str | None = None

    @field_validator("image_size")
    @classmethod
    def _size_range(cls, value: int) -> int:
        if not 16 <= value <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024, got {value}")
        return value

    @field_validator("detail_size")
    @classmethod
    def _detail_range(cls, value: int) -> int:
        if not 16 <= value <= 512 or value % 4:
            raise ValueError(f"detail_size must be a multiple of 4 from 16 to 512, got {value}")
        return value

    @field_validator("background")
    @classmethod
    def _known_colour(cls, value: str) -> str:
        from PIL import ImageColor

        try:
            ImageColor.getrgb(value)
        except ValueError:
            raise ValueError(
                f"background {value!r} is not a colour Pillow knows; "
                "use a name ('white') or hex ('#ffffff')"
            ) from None
        return value

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ScanConfig:
        if self.ray_address and self.engine != "ray":
            raise ValueError("ray_address needs engine: ray")
        return self

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"workers must be at least 1, got {value}")
        return value

    @field_validator("max_pixels", "decode_memory_mb", "shard_mb")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be positive, got {value}")
        return value

    @classmethod
    def matching(
        cls, image_size: int, background: tuple[int, int, int], workers: int | None = None
    ) -> ScanConfig:
        """Settings that decode exactly like an existing cache or checkpoint."""
        return cls(
            image_size=image_size,
            background="#{:02x}{:02x}{:02x}".format(*background),
            workers=workers,
        )

    def background_rgb(self) -> tuple[int, int, int]:
        from PIL import ImageColor

        return ImageColor.getrgb(self.background)[:3]

    def pixel_settings(self) -> dict[str, Any]:
        """What decides cached pixels and rows: a cache made with other values isn't reused."""
        return {
            "image_size": self.image_size,
            "detail_size": self.detail_size,
            "background": self.background_rgb(),
            "decoder_version": DECODER_VERSION,
        }
