"""Perceptual comparison of image outputs (base64 PNG/JPEG payloads as nbformat stores them)."""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter

# Both images are blurred this much (a 3x3 box, centre-weighted) before comparing, so a
# sharper or softer anti-aliasing filter changes a line's edge pixels, not its substance.
_BLUR_RADIUS = 0.7
# After that blur, a channel that moves by at most this much (of 255) is rendering noise:
# anti-aliasing weights, JPEG recompression, colour rounding. A drawn line differs by far
# more; a light-grey hairline (matplotlib's default grid) is near this limit.
_TOLERANCE = 24
_OVER_TOLERANCE = [0] * (_TOLERANCE + 1) + [255] * (255 - _TOLERANCE)
# Larger images are box-downscaled by an integer factor first, so a dpi=300 figure costs
# what a screen-sized one does; a change a reader can see survives the averaging.
_MAX_SIDE = 1000
# Content boxes (borders trimmed) whose width or height differ by more than this are
# different pictures: bbox_inches="tight" moves a couple of pixels, a new figsize many.
_MAX_SIZE_CHANGE = 0.05
_MIN_SIZE_SLACK = 2
# Images whose width and height scale alike (within this) may be one figure drawn at another
# dpi (matplotlib's inline backend moved from 72 to 100): compared shrunk to half the smaller
# one, where a line's width and a glyph's hinting no longer show, the plot still does.
_MAX_ASPECT_CHANGE = 0.03
_MIN_RESCALED_SIDE = 48
# Said of two such images: the same picture, only its size differs (a cosmetic note).
RESCALED = "the same picture at another size"
_WHITE = (255, 255, 255)

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]


def compare_images(mime: str, before: str, after: str, threshold: float = 0.01) -> tuple[bool, str]:
    """(same, description). before/after: base64 payloads (whitespace/newlines allowed).

    Same when the decoded bytes are equal, or when at most `threshold` of the drawn
    (non-background) pixels differ beyond anti-aliasing noise once both images are flattened
    onto white, trimmed to their content and aligned. Payloads Pillow cannot read are
    compared byte for byte.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"image threshold must be a fraction between 0 and 1, got {threshold}")
    raw_before, raw_after = _b64decode(before), _b64decode(after)
    if raw_before is None or raw_after is None:
        if "".join(before.split()) == "".join(after.split()):
            return True, "identical"
        return False, f"{mime}: cannot decode (not valid base64); the payloads differ"
    if raw_before == raw_after:
        return True, "identical"
    old, new = _decode(raw_before), _decode(raw_after)
    if isinstance(old, str) or isinstance(new, str):
        reason = old if isinstance(old, str) else new
        side = "before" if isinstance(old, str) else "after"
        return False, (
            f"{mime}: cannot decode the {side} image ({reason}); "
            f"the bytes differ ({len(raw_before)} → {len(raw_after)} bytes)"
        )
    return _compare_pixels(mime, old, new, threshold)


# --- decoding ------------------------------------------------------------------------------


def _b64decode(payload: str) -> bytes | None:
    try:
        # nbformat wraps base64 at 76 columns; validate=True then rejects anything else.
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode(raw: bytes) -> Image.Image | str:
    """The image flattened onto white as RGB, or why it cannot be read."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns up to twice its pixel limit; such an image is treated as
            # undecodable here rather than warned about (and decoded into gigabytes).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as opened:
                opened.load()
                # Annotated: with python_version = 3.10, mypy sees Pillow's `with` as Any.
                rgba: Image.Image = opened.convert("RGBA")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return str(error) or type(error).__name__
    except Image.DecompressionBombWarning as warning:
        return str(warning)
    if rgba.getchannel("A").getextrema() == (255, 255):
        return rgba.convert("RGB")  # opaque, as most figures are: no compositing to pay for
    # transparent=True figures must match their white-background twins, as a reader sees them.
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")


# --- pixels --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    image: Image.Image  # flattened RGB, possibly downscaled, blurred
    background: RGB
    box: Box | None  # the content: everything that differs from the background


@dataclass(frozen=True)
class _Alignment:
    label: str
    mismatch: Image.Image  # mask of the differing pixels, on the common canvas
    differing: int
    drawn: int
    # Where the before-content sits on the canvas and how much it was stretched, to report
    # a region in the before-image's own pixels.
    at: tuple[int, int] = (0, 0)
    scale: tuple[float, float] = (1.0, 1.0)

    @property
    def fraction(self) -> float:
        return min(1.0, self.differing / max(self.drawn, 1))


def _compare_pixels(
    mime: str, before: Image.Image, after: Image.Image, threshold: float
) -> tuple[bool, str]:
    sizes = _size(before) if before.size == after.size else f"{_size(before)} → {_size(after)}"
    head = f"{mime} {sizes}"
    factor = math.ceil(max(*before.size, *after.size) / _MAX_SIDE)
    notes = [f"downscaled 1/{factor} for speed"] if factor > 1 else []
    old, new = _side(before, factor), _side(after, factor)

    if old.box is None or new.box is None:
        if old.box is None and new.box is None:
            same = _channel_distance(old.background, new.background) <= _TOLERANCE
            return same, f"{head}: both blank" + ("" if same else ", in different colours")
        return False, f"{head}: {'before' if old.box is None else 'after'} is blank"

    old_size, new_size = _box_size(old.box), _box_size(new.box)
    content = f"content {_scaled(old_size, factor)} → {_scaled(new_size, factor)}"
    if any(_too_different(o, n) for o, n in zip(old_size, new_size, strict=True)):
        if _same_aspect(before.size, after.size):
            return _rescaled(mime, before, after, threshold, head)
        return False, f"{head}: sizes differ too much to compare ({content})"

    moved = (new.box[0] - old.box[0]) * factor, (new.box[1] - old.box[1]) * factor
    if moved != (0, 0):
        notes.append(f"bounding box moved {_offset(moved)}")
    best = min(_alignments(old, new), key=lambda a: a.fraction)
    if old_size != new_size:
        notes.append(f"{content}, compared {best.label}")
    region = best.mismatch.getbbox()
    if region is not None:
        x0, y0 = _frame_point(best, old.box, factor, region[0], region[1])
        x1, y1 = _frame_point(best, old.box, factor, region[2], region[3])
        x1, y1 = min(x1, before.width) - 1, min(y1, before.height) - 1
        notes.append(f"differences in region x {x0}–{x1}, y {y0}–{y1}")
    summary = f"{head}: {_percent(best.fraction)} of drawn pixels differ"
    return best.fraction <= threshold, summary + (f" ({'; '.join(notes)})" if notes else "")


def _same_aspect(old: tuple[int, int], new: tuple[int, int]) -> bool:
    scales = new[0] / old[0], new[1] / old[1]
    return abs(scales[0] - scales[1]) <= _MAX_ASPECT_CHANGE * max(scales)


def _rescaled(
    mime: str, before: Image.Image, after: Image.Image, threshold: float, head: str
) -> tuple[bool, str]:
    """Two images of one shape and different sizes, compared at a common smaller size."""
    small = min((before, after), key=lambda image: image.width)
    size = (max(small.width // 2, _MIN_RESCALED_SIDE), max(small.height // 2, _MIN_RESCALED_SIDE))
    old = before.resize(size, Image.Resampling.BILINEAR)
    new = after.resize(size, Image.Resampling.BILINEAR)
    same, found = _compare_pixels(mime, old, new, threshold)
    detail = found.split(": ", 1)[-1]
    if same:
        return True, f"{head}: {RESCALED} (compared at {_size(old)}: {detail})"
    return False, f"{head}: compared at {_size(old)}, {detail}"


def _side(image: Image.Image, factor: int) -> _Side:
    if factor > 1:
        image = image.reduce(factor)
    background = _background(image)
    # Blurred whole, before any crop, so a content box that starts one pixel earlier or
    # later does not change the blurred pixels at its edge.
    blurred = image.filter(ImageFilter.BoxBlur(_BLUR_RADIUS))
    return _Side(blurred, background, _drawn(image, background).getbbox())


def _background(image: Image.Image) -> RGB:
    # A figure's facecolor fills its corners; when they disagree (a photograph) there is
    # no border to trim, and white is as good a reference as any for counting drawn pixels.
    width, height = image.size
    corners = [_pixel(image, xy) for xy in ((0, 0), (width - 1, 0), (0, height - 1))]
    corners.append(_pixel(image, (width - 1, height - 1)))
    if all(_channel_distance(corners[0], c) <= _TOLERANCE for c in corners):
        return corners[0]
    return _WHITE


def _alignments(old: _Side, new: _Side) -> list[_Alignment]:
    """The ways to lay the two contents over each other; the caller keeps the best.

    The set is the same with before and after swapped, and each measure is symmetric, so
    the verdict does not depend on which run is the baseline.
    """
    assert old.box is not None and new.box is not None
    old_content, new_content = old.image.crop(old.box), new.image.crop(new.box)
    if old_content.size == new_content.size:
        return [_aligned("by content", old, new, old_content, new_content)]
    # A couple of pixels more or less content (a tick label that grew, a frame drawn in or
    # out) can be anywhere: try the usual anchors, and stretching either onto the other.
    width = max(old_content.width, new_content.width)
    height = max(old_content.height, new_content.height)
    alignments = []
    for label, half_steps in (("top-left", 0), ("at the centre", 1), ("bottom-right", 2)):
        old_at = (
            (width - old_content.width) * half_steps // 2,
            (height - old_content.height) * half_steps // 2,
        )
        new_at = (
            (width - new_content.width) * half_steps // 2,
            (height - new_content.height) * half_steps // 2,
        )
        alignments.append(
            _aligned(
                f"aligned {label}",
                old,
                new,
                _paste(old_content, old.background, (width, height), old_at),
                _paste(new_content, new.background, (width, height), new_at),
                at=old_at,
            )
        )
    stretched_new = new_content.resize(old_content.size, Image.Resampling.BILINEAR)
    stretched_old = old_content.resize(new_content.size, Image.Resampling.BILINEAR)
    scale = (old_content.width / new_content.width, old_content.height / new_content.height)
    alignments.append(_aligned("stretched to the same size", old, new, old_content, stretched_new))
    alignments.append(
        _aligned("stretched to the same size", old, new, stretched_old, new_content, scale=scale)
    )
    return alignments


def _aligned(
    label: str,
    old: _Side,
    new: _Side,
    before: Image.Image,
    after: Image.Image,
    *,
    at: tuple[int, int] = (0, 0),
    scale: tuple[float, float] = (1.0, 1.0),
) -> _Alignment:
    """`before`/`after`: the two contents on one canvas."""
    drawn = ImageChops.lighter(_drawn(before, old.background), _drawn(after, new.background))
    mismatch = _mismatch(before, after)
    return _Alignment(label, mismatch, _lit(mismatch), _lit(drawn), at, scale)


def _frame_point(alignment: _Alignment, box: Box, factor: int, x: int, y: int) -> tuple[int, int]:
    """A canvas point in the before-image's original pixels."""
    frame_x = (x - alignment.at[0]) * alignment.scale[0] + box[0]
    frame_y = (y - alignment.at[1]) * alignment.scale[1] + box[1]
    return max(0, round(frame_x * factor)), max(0, round(frame_y * factor))


def _mismatch(before: Image.Image, after: Image.Image) -> Image.Image:
    """Pixels of either image that no pixel of the other matches within one pixel.

    Anti-aliasing and sub-pixel shifts make an edge pixel a blend of its neighbours, so it
    lies within the range of the other image's 3x3 neighbourhood; a moved or new line does not.
    """
    outside = ImageChops.lighter(_outside_range(before, after), _outside_range(after, before))
    return _over_tolerance(outside)


def _outside_range(image: Image.Image, reference: Image.Image) -> Image.Image:
    low = _neighbourhood(reference, ImageChops.darker)
    high = _neighbourhood(reference, ImageChops.lighter)
    # ImageChops.subtract clips at 0: each term is how far `image` lies below or above.
    return ImageChops.lighter(ImageChops.subtract(low, image), ImageChops.subtract(image, high))


def _neighbourhood(
    image: Image.Image, pick: Callable[[Image.Image, Image.Image], Image.Image]
) -> Image.Image:
    """The darkest (or lightest) value of each pixel's 3x3 neighbourhood.

    Separable, from shifted copies: Pillow's MinFilter/MaxFilter are ten times slower.
    Pasting onto a copy repeats the edge row, so the border sees no pixels from the far side.
    """
    rows = _shift_pick(image, pick, (1, 0), (-1, 0))
    return _shift_pick(rows, pick, (0, 1), (0, -1))


def _shift_pick(
    image: Image.Image,
    pick: Callable[[Image.Image, Image.Image], Image.Image],
    *offsets: tuple[int, int],
) -> Image.Image:
    result = image
    for offset in offsets:
        shifted = image.copy()
        shifted.paste(image, offset)
        result = pick(result, shifted)
    return result


def _drawn(image: Image.Image, background: RGB) -> Image.Image:
    return _over_tolerance(ImageChops.difference(image, Image.new("RGB", image.size, background)))


def _over_tolerance(rgb: Image.Image) -> Image.Image:
    """A mask (mode L, 0 or 255) of pixels where any channel exceeds the tolerance."""
    red, green, blue = rgb.split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue).point(_OVER_TOLERANCE)


def _paste(
    content: Image.Image, background: RGB, size: tuple[int, int], at: tuple[int, int]
) -> Image.Image:
    canvas = Image.new("RGB", size, background)
    canvas.paste(content, at)
    return canvas


# --- small helpers -------------------------------------------------------------------------


def _pixel(image: Image.Image, xy: tuple[int, int]) -> RGB:
    value = image.getpixel(xy)
    assert isinstance(value, tuple) and len(value) == 3
    return int(value[0]), int(value[1]), int(value[2])


def _lit(mask: Image.Image) -> int:
    return mask.histogram()[255]


def _channel_distance(a: RGB, b: RGB) -> int:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def _too_different(old: int, new: int) -> bool:
    return abs(old - new) > max(_MIN_SIZE_SLACK, _MAX_SIZE_CHANGE * max(old, new))


def _box_size(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _size(image: Image.Image) -> str:
    return f"{image.width}×{image.height}"


def _scaled(size: tuple[int, int], factor: int) -> str:
    return f"{size[0] * factor}×{size[1] * factor}"


def _offset(moved: tuple[int, int]) -> str:
    dx, dy = moved
    if dy == 0:
        return f"{abs(dx)} px {'right' if dx > 0 else 'left'}"
    if dx == 0:
        return f"{abs(dy)} px {'down' if dy > 0 else 'up'}"
    return f"by ({dx:+d}, {dy:+d}) px"


def _percent(fraction: float) -> str:
    if 0 < fraction < 0.001:
        return "<0.1 %"
    return f"{fraction * 100:.1f} %"
