"""Resampling and filtering as matrices, for the near-duplicate search's descriptors and
pixel verification: the picture inside a letterboxed cache image, area-average resizing,
linear-interpolation sampling of a line, Gaussian blur, and the row helpers both use.
Every one is a plain (n_out, n_in) matrix (or a stack of them), so whole batches of
pictures are resampled by matrix products."""

from __future__ import annotations

import functools

import numpy as np


def image_region(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a letterboxed cache image that holds the picture (bars removed)."""
    size = pixels.shape[0]
    scale = size / max(width, height)
    fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
    x0, y0 = (size - fit_w) // 2, (size - fit_h) // 2
    return pixels[y0 : y0 + fit_h, x0 : x0 + fit_w]


def resize(region: np.ndarray, side: int) -> np.ndarray:
    """Area-average resize of an (h, w, c) array to (side, side, c) as float32. An axis
    already `side` long is left as it is (its matrix would be the identity: same values)."""
    resized = region.astype(np.float32)
    if region.shape[0] != side:
        rows = area_matrix(region.shape[0], side)
        resized = np.tensordot(rows, resized, axes=(1, 0))  # (side, w, c)
    if region.shape[1] != side:
        cols = area_matrix(region.shape[1], side)
        resized = np.tensordot(resized, cols, axes=(1, 1)).transpose(0, 2, 1)  # (side, side, c)
    return resized


@functools.lru_cache(maxsize=1024)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear map averaging n_in samples into n_out bins (upsamples by repetition).

    Memoised: cache regions take at most a few hundred distinct sizes.
    """
    edges = np.linspace(0, n_in, n_out + 1)
    matrix = np.zeros((n_out, n_in), np.float32)
    for j in range(n_out):
        lo, hi = edges[j], edges[j + 1]
        first, last = int(np.floor(lo)), min(int(np.ceil(hi)), n_in)
        for k in range(first, max(last, first + 1)):
            overlap = min(hi, k + 1) - max(lo, k)
            matrix[j, min(k, n_in - 1)] += max(overlap, 0.0)
        matrix[j] /= max(matrix[j].sum(), 1e-9)
    matrix.flags.writeable = False
    return matrix


FLAT_STD = 0.5  # grey levels: a picture whose values vary less than this is flat


def flat_rows(rows: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """Which rows (centred pictures or detail descriptors, one per row) vary by less than
    FLAT_STD grey levels per value: blank or one-colour pictures. `norms`, the rows' norms,
    when the caller has them already."""
    norms = np.linalg.norm(rows, axis=1) if norms is None else norms
    return norms < FLAT_STD * np.sqrt(rows.shape[1])


def sample_matrices(starts: np.ndarray, stops: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """Linear-interpolation weights sampling [start, stop) of an n_in line at n_out points.

    One (n_out, n_in) matrix per (start, stop); samples outside the line get no weight.
    """
    starts = np.asarray(starts, np.float64).reshape(-1)
    stops = np.asarray(stops, np.float64).reshape(-1)
    steps = (stops - starts) / n_out
    positions = starts[:, None] + (np.arange(n_out) + 0.5)[None, :] * steps[:, None] - 0.5
    low = np.floor(positions).astype(np.int64)
    frac = (positions - low).astype(np.float32)
    matrices = np.zeros((len(starts), n_out, n_in), np.float32)
    which = np.broadcast_to(np.arange(len(starts))[:, None], low.shape)
    rows = np.broadcast_to(np.arange(n_out)[None, :], low.shape)
    for offset, weight in ((0, 1 - frac), (1, frac)):
        index = low + offset
        valid = (index >= 0) & (index < n_in)
        matrices[which[valid], rows[valid], index[valid]] += weight[valid]
    return flushed(matrices)


def sample_matrix(start: float, stop: float, n_in: int, n_out: int) -> np.ndarray:
    return sample_matrices(np.array([start]), np.array([stop]), n_in, n_out)[0]


@functools.lru_cache(maxsize=64)
def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """Gaussian blur of a line of n samples by `sigma`, as an (n, n) matrix (read-only:
    memoised, the comparisons use a few sizes and sigmas)."""
    x = np.arange(n)
    weights = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return read_only(flushed((weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)))


def read_only(array: np.ndarray) -> np.ndarray:
    """`array`, made read-only (a memoised result is shared by every caller)."""
    array.flags.writeable = False
    return array


NEGLIGIBLE_WEIGHT = 1e-12  # below float32's resolution next to any weight that matters


def flushed(weights: np.ndarray) -> np.ndarray:
    """`weights` with the negligible ones set to zero. A Gaussian's far tail is subnormal in
    float32 (under 1.2e-38), and on many x86 CPUs every multiplication that touches a
    subnormal number takes a slow microcode path: one such entry in a warp matrix made the
    whole batched product 8-9x slower (verification ran at a third of its speed on an
    Intel Xeon). Weights under NEGLIGIBLE_WEIGHT change no result: a row's largest weight
    is over 1e-2 for every blur used here, so they lie far below float32's relative
    precision (6e-8) next to it (results on 300 benchmark pairs moved by at most 1.5e-8)."""
    return np.where(np.abs(weights) < NEGLIGIBLE_WEIGHT, 0, weights).astype(
        weights.dtype, copy=False
    )


def channel_sum(pixels: np.ndarray) -> np.ndarray:
    """`pixels.sum(axis=-1)` of (..., 3) float arrays, bit for bit (the same additions in
    the same order), plane by plane: numpy reduces a last axis of three values in a small
    loop per pixel, about ten times slower."""
    return pixels[..., 0] + pixels[..., 1] + pixels[..., 2]


def channel_mean(pixels: np.ndarray) -> np.ndarray:
    """`pixels.mean(axis=-1)` of (..., 3) arrays, bit for bit (`channel_sum`; integers are
    summed in float64, as numpy's mean does)."""
    if not np.issubdtype(pixels.dtype, np.inexact):
        pixels = pixels.astype(np.float64)
    return channel_sum(pixels) / 3


def channel_max(pixels: np.ndarray) -> np.ndarray:
    """`pixels.max(axis=-1)` of (..., 3) arrays, plane by plane (see `channel_sum`)."""
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def centred(images: np.ndarray) -> np.ndarray:
    """(P, ...) → (P, pixels), each row minus its mean."""
    rows = images.reshape(len(images), -1)
    return rows - rows.mean(axis=1, keepdims=True)


def range_along(images: np.ndarray, axis: int, reach: int, pick: np.ufunc) -> np.ndarray:
    """`pick` (minimum or maximum) over the `reach` neighbours either side along `axis`,
    edges repeated: what scipy.ndimage.minimum_filter / maximum_filter (mode "nearest")
    give, with identical values, in half their time on these (P, 64, 64) batches (this
    runs for every candidate pair)."""
    result = images.copy()
    n = images.shape[axis]
    for step in range(1, reach + 1):
        ahead = [slice(None)] * 3
        behind = [slice(None)] * 3
        ahead[axis], behind[axis] = slice(step, n), slice(0, n - step)
        result[tuple(behind)] = pick(result[tuple(behind)], images[tuple(ahead)])
        result[tuple(ahead)] = pick(result[tuple(ahead)], images[tuple(behind)])
    return result
