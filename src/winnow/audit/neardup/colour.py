"""The colour measures of pixel verification (winnow.audit.neardup.similarity): the
chroma of a picture, the colour difference of two aligned pictures that no brightness shift
produces, and the share of pixels greyed in one of them. (P, m, m) planes, one per pair."""

from __future__ import annotations

import numpy as np


def chroma_planes(rgb: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R−G, B−G) and its length (how colourful a pixel is, 0 for grey); R, G, B planes."""
    r, g, b = rgb
    x, y = r - g, b - g
    return x, y, np.sqrt(x * x + y * y)


def chroma_distance(
    chroma_a: tuple[np.ndarray, ...], chroma_b: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Per-pixel colour difference that a brightness shift does not produce; `chroma_planes` of
    the two pictures.

    Chroma is the (R−G, B−G) vector. A uniform brightness shift leaves it unchanged, except
    where a channel clips (red 255,0,0 brightened by 30 is 255,30,30): then its length
    shrinks by up to twice the shift but its direction, the hue, barely moves. A
    recoloured part changes the direction. So the distance is the chord between the two
    directions times the smaller length (hue change, weighted by how colourful the pixel
    is in both), plus half the change in length (a colour against its grey version)."""
    (x_a, y_a, length_a), (x_b, y_b, length_b) = chroma_a, chroma_b
    cosine = (x_a * x_b + y_a * y_b) / np.maximum(length_a * length_b, 1e-6)
    chord = np.sqrt(np.maximum(2 - 2 * cosine, 0))  # between the two unit directions
    return chord * np.minimum(length_a, length_b) + 0.5 * np.abs(length_a - length_b)


GREY_CHROMA = 6.0  # a pixel whose (R−G, B−G) is shorter than this is grey
COLOUR_GAIN = 20.0  # ... and the other picture's is longer by more than this: coloured
MID_GREY = (24.0, 231.0)  # grey levels between which clipping cannot have made a pixel grey


def greyed_share(
    level_a: np.ndarray, length_a: np.ndarray, level_b: np.ndarray, length_b: np.ndarray
) -> np.ndarray:
    """Per pair, the fraction of pixels that are grey in one picture and coloured in the
    other while the grey one is a mid grey; each picture's grey level (R + G + B) / 3 and
    chroma length (`chroma_planes`), (P, m, m).

    A brightness shift adds the same amount to R, G and B, so a grey pixel stays grey. Only
    clipping can turn colour into grey, and only at white (pale yellow brightened into
    white) or black. A mid-grey pixel that is coloured in the other picture is a colour
    version against a grey one (an LED icon in grey and in orange, a cone in black and white
    and in vanilla), which the hue-based `chroma_distance` does not see: a grey pixel has
    no hue to compare."""
    share = []
    for level, length, other_length in (
        (level_a, length_a, length_b),
        (level_b, length_b, length_a),
    ):
        greyed = (
            (length < GREY_CHROMA)
            & (other_length - length > COLOUR_GAIN)
            & (level > MID_GREY[0])
            & (level < MID_GREY[1])
        )
        share.append(greyed.reshape(len(level), -1).mean(axis=1))
    return share[0] + share[1]
