"""Fast tier: perceptual comparison of image outputs, on plots drawn here with Pillow."""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from PIL import Image, ImageDraw

from nbguard.compare.images import compare_images

Point = tuple[float, float]

# Drawn at 4x and downscaled, the way a rasterizer anti-aliases: what varies between two
# renderings of one figure is the filter, sub-pixel position and padding, as with Agg.
_SUPERSAMPLE = 4
_PLOT = (600, 440)
_PAD = 20
_BLUE, _ORANGE, _GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)


def _curve(shape: str) -> tuple[Point, ...]:
    heights: dict[str, Callable[[int], float]] = {
        "sine": lambda i: 380 - 300 * math.sin(i / 20 * math.pi / 1.2),
        "sine, amplitude 2 % larger": lambda i: 380 - 306 * math.sin(i / 20 * math.pi / 1.2),
        "line": lambda i: 380 - 14 * i,
    }
    return tuple((40 + i * 27, heights[shape](i)) for i in range(21))


@cache
def _plot(
    curve: str = "sine",
    *,
    pad: int = _PAD,
    shift: float = 0.0,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
    extra_marker: bool = False,
    colour: tuple[int, int, int] = _BLUE,
    transparent: bool = False,
) -> Image.Image:
    """Axes, ticks, a polyline with markers: the shapes a matplotlib line plot is made of."""
    k = _SUPERSAMPLE
    width, height = _PLOT
    background = (255, 255, 255, 0 if transparent else 255)
    big = Image.new("RGBA", (width * k, height * k), background)
    draw = ImageDraw.Draw(big)

    def at(x: float, y: float) -> Point:
        return ((x + shift) * k, (y + shift) * k)

    black = (0, 0, 0, 255)
    draw.line([at(30, 0), at(30, height - 30), at(width - 1, height - 30)], black, width=k)
    for tick in range(30, width, 60):
        draw.line([at(tick, height - 30), at(tick, height - 24)], black, width=k)
    points = _curve(curve)
    draw.line([at(x, y) for x, y in points], (*colour, 255), width=2 * k, joint="curve")
    markers = list(points[::3]) + ([(300.0, 60.0)] if extra_marker else [])
    for x, y in markers:
        draw.ellipse([at(x - 4, y - 4), at(x + 4, y + 4)], (*_ORANGE, 255))
    small = big.resize((width, height), resample)
    framed = Image.new("RGBA", (width + 2 * pad, height + 2 * pad), background)
    framed.paste(small, (pad, pad))
    return framed


def _b64(image: Image.Image, fmt: str = "PNG", **options: int) -> str:
    buffer = io.BytesIO()
    image.convert("RGB" if fmt == "JPEG" else image.mode).save(buffer, fmt, **options)
    return base64.b64encode(buffer.getvalue()).decode()


def _png(curve: str = "sine", **options: Any) -> str:
    return _b64(_plot(curve, **options))


def _both_ways(mime: str, before: str, after: str, **options: float) -> list[tuple[bool, str]]:
    return [
        compare_images(mime, before, after, **options),
        compare_images(mime, after, before, **options),
    ]


def _percent(description: str) -> float:
    match = re.search(r"<?([\d.]+) % of drawn pixels differ", description)
    assert match, description
    return float(match[1])


VARIANTS_THE_SAME: dict[str, dict[str, Any]] = {
    "bounding box 2 px tighter": {"pad": _PAD - 2},
    "bounding box 2 px looser": {"pad": _PAD + 2},
    "box filter, half a pixel over": {"shift": 0.5, "resample": Image.Resampling.BOX},
    "bilinear filter, quarter pixel over": {
        "shift": 0.25,
        "resample": Image.Resampling.BILINEAR,
    },
    "hamming filter": {"resample": Image.Resampling.HAMMING},
    "transparent background": {"transparent": True},
}


# --- same in substance ---------------------------------------------------------------------


def test_byte_equal_payloads_are_identical_even_when_wrapped_differently() -> None:
    payload = _png()
    wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76)) + "\n"

    assert _both_ways("image/png", payload, wrapped) == [(True, "identical")] * 2


@pytest.mark.parametrize("variant", VARIANTS_THE_SAME)
def test_the_same_plot_rendered_differently_is_the_same(variant: str) -> None:
    before, after = _png(), _png(**VARIANTS_THE_SAME[variant])
    assert before != after  # the bytes differ: only the pixels can say they match

    for same, description in _both_ways("image/png", before, after):
        assert same, description
        assert description.startswith("image/png 6"), description
        assert _percent(description) < 1.0


def test_a_tighter_bounding_box_is_described_as_a_move() -> None:
    same, description = compare_images("image/png", _png(), _png(pad=_PAD - 2))

    assert same
    assert description == (
        "image/png 640×480 → 636×476: 0.0 % of drawn pixels differ "
        "(bounding box moved by (-2, -2) px)"
    )


def test_jpeg_recompression_noise_is_the_same() -> None:
    plot = _plot()
    before, after = _b64(plot, "JPEG", quality=90), _b64(plot, "JPEG", quality=85)

    for same, description in _both_ways("image/jpeg", before, after):
        assert same, description
        assert description.startswith("image/jpeg 640×480: "), description


def test_a_palette_png_matches_its_truecolour_original() -> None:
    # What pngquant-style optimizers and some backends write: the colours are rounded.
    palette = _plot().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)

    for same, description in _both_ways("image/png", _png(), _b64(palette)):
        assert same, description


def test_two_blank_images_are_the_same() -> None:
    white = _b64(Image.new("RGB", (100, 80), "white"))
    also_white = _b64(Image.new("RGBA", (102, 80), (0, 0, 0, 0)))

    assert _both_ways("image/png", white, also_white) == [
        (True, "image/png 100×80 → 102×80: both blank"),
        (True, "image/png 102×80 → 100×80: both blank"),
    ]


# --- really different ----------------------------------------------------------------------


def test_a_changed_curve_is_different_and_located() -> None:
    before, after = _png(), _png("line")

    for same, description in _both_ways("image/png", before, after):
        assert not same, description
        assert _percent(description) > 30
        match = re.search(r"differences in region x (\d+)–(\d+), y (\d+)–(\d+)\)$", description)
        assert match, description
        x0, x1, y0, y1 = map(int, match.groups())
        # The curves run from x=60 to x=600 within the plot's frame: the axes are untouched.
        assert 55 <= x0 < 70 and 590 < x1 <= 610 and y0 > 80 and y1 < 420


@pytest.mark.parametrize(
    "change",
    [{"curve": "sine, amplitude 2 % larger"}, {"colour": _GREEN}, {"extra_marker": True}],
    ids=["coefficient 2 % larger", "line colour", "one more marker"],
)
def test_small_visible_changes_are_different(change: dict[str, Any]) -> None:
    for same, description in _both_ways("image/png", _png(), _png(**change)):
        assert not same, description


def test_a_plot_against_a_blank_image_is_different() -> None:
    blank = _b64(Image.new("RGB", (640, 480), "white"))

    assert _both_ways("image/png", _png(), blank) == [
        (False, "image/png 640×480: after is blank"),
        (False, "image/png 640×480: before is blank"),
    ]


def test_completely_different_sizes_are_different() -> None:
    squeezed = _b64(_plot().resize((320, 400), Image.Resampling.LANCZOS))

    for same, description in _both_ways("image/png", _png(), squeezed):
        assert not same
        assert "sizes differ too much to compare" in description


def test_the_same_plot_at_another_dpi_is_the_same_picture() -> None:
    # matplotlib's inline backend drew at 72 dpi, now at 100: every side 1.39 times longer.
    larger = _b64(_plot().resize((890, 667), Image.Resampling.LANCZOS))

    for same, description in _both_ways("image/png", _png(), larger):
        assert same, description
        assert "the same picture at another size" in description


def test_another_plot_at_another_dpi_is_different() -> None:
    larger = _b64(_plot("line").resize((890, 667), Image.Resampling.LANCZOS))

    for same, description in _both_ways("image/png", _png(), larger):
        assert not same
        assert description.startswith("image/png 640×480 → 890×667: compared at 320×240") or (
            description.startswith("image/png 890×667 → 640×480: compared at 320×240")
        )


# --- knobs and limits ----------------------------------------------------------------------


def test_the_threshold_moves_the_decision() -> None:
    before, after = _png(), _png(extra_marker=True)
    (_, description), _ = _both_ways("image/png", before, after)
    differing = _percent(description) / 100

    assert not compare_images("image/png", before, after)[0]
    assert not compare_images("image/png", before, after, threshold=differing * 0.9)[0]
    assert compare_images("image/png", before, after, threshold=differing * 1.1)[0]
    assert compare_images("image/png", after, before, threshold=differing * 1.1)[0]


def test_a_threshold_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        compare_images("image/png", _png(), _png(), threshold=5)


def test_large_images_are_downscaled_and_still_compared() -> None:
    def doubled(plot: Image.Image) -> str:  # the same figure at twice the dpi
        return _b64(plot.resize((2 * plot.width, 2 * plot.height), Image.Resampling.LANCZOS))

    before, looser, changed = doubled(_plot()), doubled(_plot(pad=_PAD + 1)), doubled(_plot("line"))

    for same, description in _both_ways("image/png", before, looser):
        assert same, description
        assert "downscaled 1/2 for speed" in description
    for same, description in _both_ways("image/png", before, changed):
        assert not same, description
        assert description.startswith("image/png 1280×960: "), description


def test_payloads_that_are_not_base64_are_compared_as_text() -> None:
    garbage = "not base64 at all!"

    assert compare_images("image/png", garbage, garbage + "\n") == (True, "identical")
    assert (
        _both_ways("image/png", garbage, _png())
        == [(False, "image/png: cannot decode (not valid base64); the payloads differ")] * 2
    )


def test_bytes_that_are_not_an_image_are_compared_as_bytes() -> None:
    text = base64.b64encode(b"<svg>not a png</svg>").decode()
    other = base64.b64encode(b"<svg>not a png either</svg>").decode()

    assert compare_images("image/png", text, text) == (True, "identical")
    same, description = compare_images("image/png", text, other)
    assert not same
    assert description.startswith("image/png: cannot decode the before image (")
    assert description.endswith("the bytes differ (20 → 27 bytes)")
    same, description = compare_images("image/png", _png(), other)
    assert not same
    assert "cannot decode the after image" in description


@pytest.mark.parametrize("limit", [200_000, 100_000], ids=["warning", "error"])
def test_decompression_bombs_are_not_decoded(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow warns above its pixel limit and refuses above twice it; neither may escape
    # (the suite turns warnings into errors) and neither image is decoded.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)

    same, description = compare_images("image/png", _png(), _png("line"))

    assert not same
    assert "cannot decode the before image" in description
    assert "decompression bomb" in description.lower()
