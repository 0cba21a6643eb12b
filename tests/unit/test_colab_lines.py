"""Unit tier: which lines of a Colab snapshot the preset installs, and how the ones no index
serves (direct wheel URLs, files on Colab's disk, VCS and editable installs, pip options) are
named in the env's note."""

from __future__ import annotations

from nbguard.envs import colab

SNAPSHOT = """\
# Google Colab runtime: Python 3.11.13, pip freeze of … on 2026-01-05
numpy==2.0.2
pandas[performance]==2.2.2
google-colab @ file:///colabtools/dist/google-colab-1.0.0.tar.gz
torch @ https://download.pytorch.org/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-linux_x86_64.whl
https://example.org/wheels/Foo_Bar-1.2-py3-none-any.whl
/content/wheels/local_tool-0.1-py3-none-any.whl
mylib @ git+https://github.com/example/mylib@v1
-e git+https://github.com/example/course-tools.git@0123abc#egg=course_tools
-e /content/mypkg
--extra-index-url https://user:token@private.example.org/simple
"""


def test_only_what_an_index_serves_is_installed_and_the_rest_is_named() -> None:
    lines, left_out = colab.installable(SNAPSHOT)

    assert lines == ["numpy==2.0.2", "pandas[performance]==2.2.2"]
    assert left_out == [
        "google-colab (installed from Colab's own disk)",
        "torch 2.5.1+cu124 (a direct URL on download.pytorch.org)",
        "foo-bar 1.2 (a direct URL on example.org)",
        "local-tool 0.1 (installed from Colab's own disk)",
        "mylib (a VCS checkout)",
        "course-tools (an editable install on Colab)",
        "mypkg (an editable install on Colab)",
        "--extra-index-url (a pip option, not a package)",
    ]
    # An index URL may carry a token: the note never repeats it.
    assert not any("token" in item for item in left_out)
