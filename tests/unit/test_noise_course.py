"""Fast tier: fixtures/noise-course is what fixtures/make_noise_course.py writes."""

from __future__ import annotations

import importlib.util
import json

from tests.support.courses import FIXTURES


def test_the_committed_noise_course_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "_nbguard_noise", FIXTURES / "make_noise_course.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    written = script.files()

    course = FIXTURES / "noise-course"
    assert {path: (course / path).read_text(encoding="utf-8") for path in written} == written
    expected = json.loads(written["EXPECTED.json"])["notebooks"]
    assert {nb["verdict"] for nb in expected.values()} == {"ok", "changed"}
