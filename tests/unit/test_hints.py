"""Fast tier: fix hints from real library messages, and the warnings that foretold a break."""

from __future__ import annotations

import pytest

from nbguard import compare
from nbguard.blame.hints import first_sentence, fix_hint, folded, foreshadowing
from nbguard.judge import judge
from nbguard.model import CellError, CellResult, EnvInfo, Notebook, NotebookRun, WarningRecord

# (library and version, the message as the library words it, the hint a user should see)
ADVICE = [
    (
        "numpy 1.20 DeprecationWarning",
        "`np.float` is a deprecated alias for the builtin `float`. To silence this warning, "
        "use `float` by itself. Doing this will not modify any behavior and is safe. If you "
        "specifically wanted the numpy scalar type, use `np.float64` here.\n"
        "Deprecated in NumPy 1.20; for more details and guidance: "
        "https://numpy.org/devdocs/release/1.20.0-notes.html#deprecations",
        "use `float` by itself",
    ),
    (
        "numpy 1.24 AttributeError",
        "module 'numpy' has no attribute 'float'.\n"
        "`np.float` was a deprecated alias for the builtin `float`. To avoid this error in "
        "existing code, use `float` by itself. Doing this will not modify any behavior and is "
        "safe. If you specifically wanted the numpy scalar type, use `np.float64` here.\n"
        "The aliases was originally deprecated in NumPy 1.20; for more details and guidance "
        "see the original release note at:\n"
        "    https://numpy.org/devdocs/release/1.20.0-notes.html#deprecations",
        "use `float` by itself",
    ),
    (
        "numpy 1.24 DeprecationWarning, alias only",
        "`np.bool8` is a deprecated alias for `np.bool_`.  (Deprecated NumPy 1.24)",
        "use `np.bool_` instead",
    ),
    (
        "numpy 1.25 DeprecationWarning",
        "`product` is deprecated as of NumPy 1.25.0, and will be removed in NumPy 2.0. "
        "Please use `prod` instead.",
        "use `prod` instead",
    ),
    (
        "numpy 1.25 DeprecationWarning, no 'instead'",
        "np.find_common_type is deprecated.  Please use `np.result_type` or "
        "`np.promote_types`.\nSee https://numpy.org/devdocs/release/1.25.0-notes.html and the "
        "docs for more information.  (Deprecated NumPy 1.25)",
        "use `np.result_type` or `np.promote_types`",
    ),
    (
        "numpy 1.25 DeprecationWarning, 'Ensure'",
        "Conversion of an array with ndim > 0 to a scalar is deprecated, and will error in "
        "future. Ensure you extract a single element from your array before performing this "
        "operation. (Deprecated NumPy 1.25.)",
        "ensure you extract a single element from your array before performing this operation",
    ),
    (
        "numpy 1.24 VisibleDeprecationWarning, 'you must'",
        "Creating an ndarray from ragged nested sequences (which is a list-or-tuple of "
        "lists-or-tuples-or ndarrays with different lengths or shapes) is deprecated. If you "
        "meant to do this, you must specify 'dtype=object' when creating the ndarray.",
        "specify 'dtype=object' when creating the ndarray",
    ),
    (
        "numpy 2.0 AttributeError",
        "`np.float_` was removed in the NumPy 2.0 release. Use `np.float64` instead.",
        "use `np.float64` instead",
    ),
    (
        "numpy 2.0 DeprecationWarning, trailing alternatives",
        "`trapz` is deprecated. Use `trapezoid` instead, or one of the numerical integration "
        "functions in `scipy.integrate`.",
        "use `trapezoid` instead",
    ),
    (
        "numpy 2.0 DeprecationWarning, 'directly'",
        "`row_stack` alias is deprecated. Use `np.vstack` directly.",
        "use `np.vstack` directly",
    ),
    (
        "numpy 2.0 np.core, advice before a rename",
        "numpy.core is deprecated and has been renamed to numpy._core. The numpy._core "
        "namespace contains private NumPy internals and its use is discouraged, as NumPy "
        "internals can change without warning in any release. In practice, most real-world "
        "usage of numpy.core is to access functionality in the public NumPy API. If that is "
        "the case, use the public NumPy API. If not, you are using NumPy internals. If you "
        "would still like to access an internal attribute, use numpy._core.multiarray.",
        "use the public NumPy API",
    ),
    (
        "pandas 1.4 FutureWarning",
        "The frame.append method is deprecated and will be removed from pandas in a future "
        "version. Use pandas.concat instead.",
        "use pandas.concat instead",
    ),
    (
        "pandas: removal after a colon",
        "DataFrame.append has been removed: use pandas.concat instead",
        "use pandas.concat instead",
    ),
    (
        "pandas 1.5 FutureWarning, 'Either'",
        "The default value of numeric_only in DataFrameGroupBy.mean is deprecated. In a future "
        "version, numeric_only will default to False. Either specify numeric_only or select "
        "only columns which should be valid for the function.",
        "specify numeric_only or select only columns which should be valid for the function",
    ),
    (
        "pandas 1.5 FutureWarning, 'Don't ... to avoid this warning'",
        "In a future version of pandas, a length 1 tuple will be returned when iterating over "
        "a groupby with a grouper equal to a list of length 1. Don't supply a list with a "
        "single grouper to avoid this warning.",
        "don't supply a list with a single grouper",
    ),
    (
        "pandas 1.5 FutureWarning, 'Use of'",
        "Use of **kwargs is deprecated, use engine_kwargs instead.",
        "use engine_kwargs instead",
    ),
    (
        "pandas 1.x FutureWarning, 'to silence this warning' dropped",
        "The default dtype for empty Series will be 'object' instead of 'float64' in a future "
        "version. Specify a dtype explicitly to silence this warning.",
        "specify a dtype explicitly",
    ),
    (
        "pandas 2.1 FutureWarning, 'Explicitly ... instead'",
        "Series.replace without 'value' and with non-dict-like 'to_replace' is deprecated and "
        "will raise in a future version. Explicitly specify the new values instead.",
        "explicitly specify the new values instead",
    ),
    (
        "pandas 2.1 FutureWarning, 'used directly' is not advice",
        "The provided callable <built-in function sum> is currently using "
        "DataFrameGroupBy.sum. In a future version of pandas, the provided callable will be "
        'used directly. To keep current behavior pass the string "sum" instead.',
        'pass the string "sum" instead',
    ),
    (
        "matplotlib 3.3 MatplotlibDeprecationWarning, 'directly' mid-clause",
        "Passing parameters norm and vmin/vmax simultaneously is deprecated since 3.3 and will "
        "become an error two minor releases later. Please pass vmin/vmax directly to the norm "
        "when creating it.",
        "pass vmin/vmax directly to the norm when creating it",
    ),
    (
        "pandas 2.1 FutureWarning",
        "DataFrame.applymap has been deprecated. Use DataFrame.map instead.",
        "use DataFrame.map instead",
    ),
    (
        "pandas 2.1 FutureWarning, 'To retain the old behavior'",
        "The behavior of DataFrame concatenation with empty or all-NA entries is deprecated. "
        "In a future version, this will no longer exclude empty or all-NA columns when "
        "determining the result dtype. To retain the old behavior, exclude the relevant "
        "entries before the concat operation.",
        "exclude the relevant entries before the concat operation",
    ),
    (
        "pandas 2.1 FutureWarning, 'To access ...,' without a final period",
        "Series.__getitem__ treating keys as positions is deprecated. In a future version, "
        "integer keys will always be treated as labels (consistent with DataFrame behavior). "
        "To access a value by position, use `ser.iloc[pos]`",
        "use `ser.iloc[pos]`",
    ),
    (
        "pandas 2.1 FutureWarning, the fix before the opt-in",
        "Downcasting object dtype arrays on .fillna, .ffill, .bfill is deprecated and will "
        "change in a future version. Call result.infer_objects(copy=False) instead. To opt-in "
        "to the future behavior, set `pd.set_option('future.no_silent_downcasting', True)`",
        "call result.infer_objects(copy=False) instead",
    ),
    (
        "pandas 2.1 FutureWarning, 'observed'",
        "The default of observed=False is deprecated and will be changed to True in a future "
        "version of pandas. Pass observed=False to retain current behavior or observed=True "
        "to adopt the future default and silence this warning.",
        "pass observed=False to retain current behavior or observed=True to adopt the future "
        "default",
    ),
    (
        "pandas 2.2 FutureWarning, after a comma",
        "'H' is deprecated and will be removed in a future version, please use 'h' instead.",
        "use 'h' instead",
    ),
    (
        "pandas 2.2 DeprecationWarning, 'to silence this warning' dropped",
        "DataFrameGroupBy.apply operated on the grouping columns. This behavior is deprecated, "
        "and in a future version of pandas the grouping columns will be excluded from the "
        "operation. Either pass `include_groups=False` to exclude the groupings or explicitly "
        "select the grouping columns after groupby to silence this warning.",
        "pass `include_groups=False` to exclude the groupings or explicitly select the "
        "grouping columns after groupby",
    ),
    (
        "pandas 2.2 ChainedAssignmentError FutureWarning, multi-line",
        "A value is trying to be set on a copy of a DataFrame or Series through chained "
        "assignment using an inplace method.\nThe behavior will change in pandas 3.0. This "
        "inplace method will never work because the intermediate object on which we are "
        "setting values always behaves as a copy.\n\nFor example, when doing "
        "'df[col].method(value, inplace=True)', try using 'df.method({col: value}, "
        "inplace=True)' or df[col] = df[col].method(value) instead, to perform the operation "
        "inplace on the original object.\n\n",
        "try using 'df.method({col: value}, inplace=True)' or df[col] = df[col].method(value) "
        "instead",
    ),
    (
        "scipy 1.12 DeprecationWarning, 'in favour of'",
        "'scipy.integrate.trapz' is deprecated in favour of 'scipy.integrate.trapezoid' and "
        "will be removed in SciPy 1.14.0",
        "use 'scipy.integrate.trapezoid' instead",
    ),
    (
        "scipy 1.8 DeprecationWarning, namespace",
        "Please use `gaussian_filter` from the `scipy.ndimage` namespace, the "
        "`scipy.ndimage.filters` namespace is deprecated.",
        "use `gaussian_filter` from the `scipy.ndimage` namespace",
    ),
    (
        "scipy 1.12 DeprecationWarning, namespace",
        "Please import `gaussian_filter` from the `scipy.ndimage` namespace; the "
        "`scipy.ndimage.filters` namespace is deprecated and will be removed in SciPy 2.0.0.",
        "import `gaussian_filter` from the `scipy.ndimage` namespace",
    ),
    (
        "scipy: 'Please use ... instead'",
        "`scipy.integrate.trapz` is deprecated. Please use `scipy.integrate.trapezoid` instead",
        "use `scipy.integrate.trapezoid` instead",
    ),
    (
        "scipy 1.10 DeprecationWarning, wrapped paragraphs",
        "`interp2d` is deprecated in SciPy 1.10 and will be removed in SciPy 1.14.0.\n\n"
        "For legacy code, nearly bug-for-bug compatible replacements are\n"
        "`RectBivariateSpline` on regular grids, and `bisplrep`/`bisplev` for\n"
        "scattered 2D data.\n\n"
        "In new code, for regular grids use `RegularGridInterpolator` instead.\n"
        "For scattered data, prefer `LinearNDInterpolator` or\n"
        "`CloughTocher2DInterpolator`.\n\n"
        "For more details see\n"
        "`https://scipy.github.io/devdocs/notebooks/interp_transition_guide.html`\n",
        "use `RegularGridInterpolator` instead",
    ),
    (
        "matplotlib 3.7 MatplotlibDeprecationWarning",
        "The get_cmap function was deprecated in Matplotlib 3.7 and will be removed two minor "
        "releases later. Use ``matplotlib.colormaps[name]`` or "
        "``matplotlib.colormaps.get_cmap(obj)`` instead.",
        "use ``matplotlib.colormaps[name]`` or ``matplotlib.colormaps.get_cmap(obj)`` instead",
    ),
    (
        "matplotlib 3.5 MatplotlibDeprecationWarning, after a semicolon",
        "Support for passing numbers through unit converters is deprecated since 3.5 and "
        "support will be removed two minor releases later; use Axis.convert_units instead.",
        "use Axis.convert_units instead",
    ),
    (
        "matplotlib 3.9 MatplotlibDeprecationWarning, renamed parameter",
        "The 'labels' parameter of boxplot() has been renamed 'tick_labels' since Matplotlib "
        "3.9; support for the old name will be dropped in 3.11.",
        "use 'tick_labels' instead",
    ),
    (
        "scikit-learn 1.0 FutureWarning",
        "Function get_feature_names is deprecated; get_feature_names is deprecated in 1.0 and "
        "will be removed in 1.2. Please use get_feature_names_out instead.",
        "use get_feature_names_out instead",
    ),
    (
        "scikit-learn 1.2 FutureWarning, 'to suppress the warning' dropped",
        "The default value of `n_init` will change from 10 to 'auto' in 1.4. Set the value of "
        "`n_init` explicitly to suppress the warning",
        "set the value of `n_init` explicitly",
    ),
    (
        "scikit-learn 1.2 FutureWarning, renamed to",
        "The `sparse` argument was renamed to `sparse_output` in version 1.2 and will be "
        "removed in 1.4. `sparse_output` is ignored unless you leave `sparse` to its default "
        "value.",
        "use `sparse_output` instead",
    ),
    (
        "scikit-learn 1.5 FutureWarning, 'Leave'",
        "'multi_class' was deprecated in version 1.5 and will be removed in 1.7. From then on, "
        "binary problems will be fit as proper binary logistic regression models (as if "
        "multi_class='ovr' were set). Leave it to its default value to avoid this warning.",
        "leave it to its default value",
    ),
    (
        "Python 3.12 DeprecationWarning, advice holding a colon",
        "datetime.datetime.utcnow() is deprecated and scheduled for removal in a future "
        "version. Use timezone-aware objects to represent datetimes in UTC: "
        "datetime.datetime.now(datetime.UTC).",
        "use timezone-aware objects to represent datetimes in UTC: "
        "datetime.datetime.now(datetime.UTC)",
    ),
    (
        "the Deprecated package's decorator, with a reason",
        "Call to deprecated function (or staticmethod) old_api. (Use new_api instead) -- "
        "Deprecated since version 1.2.",
        "use new_api instead",
    ),
    (
        "a local package",
        "old_mean is deprecated and will be removed in 2.0. Use wobble.mean instead",
        "use wobble.mean instead",
    ),
]

# Messages that say what went wrong but not what to do instead.
NO_ADVICE = [
    ("pandas 2.0 AttributeError", "'DataFrame' object has no attribute 'append'"),
    ("pandas 3.0 TypeError", "dtype 'str' does not support operation 'mean'"),
    ("scipy 1.14 AttributeError", "module 'scipy.integrate' has no attribute 'simps'"),
    (
        "scipy 1.12 ImportError",
        "cannot import name 'comb' from 'scipy.misc' "
        "(/env/lib/python3.11/site-packages/scipy/misc/__init__.py)",
    ),
    ("Python 3.12 ModuleNotFoundError", "No module named 'distutils'"),
    ("Python 3.12 SyntaxWarning", "invalid escape sequence '\\d'"),
    ("scipy 1.10 DeprecationWarning", "scipy.misc is deprecated and will be removed in 2.0.0"),
    (
        "matplotlib 3.2 MatplotlibDeprecationWarning",
        "Passing the minor parameter of set_ticks() positionally is deprecated since "
        "Matplotlib 3.2; the parameter will become keyword-only two minor releases later.",
    ),
    (
        "scikit-learn 1.1 RuntimeWarning: what it did, not what to do",
        "algorithm='elkan' doesn't make sense for a single cluster. Using 'full' instead.",
    ),
    (
        "scikit-learn 1.4 TypeError",
        "OneHotEncoder.__init__() got an unexpected keyword argument 'sparse'",
    ),
    (
        "pandas 1.4 FutureWarning",
        "In a future version of pandas all arguments of DataFrame.drop except for the "
        "argument 'labels' will be keyword-only.",
    ),
    (
        "the Deprecated package's decorator, without a reason",
        "Call to deprecated function (or staticmethod) old_api. -- Deprecated since version 1.2.",
    ),
    ("empty", ""),
]


@pytest.mark.parametrize(
    ("message", "hint"), [pytest.param(m, h, id=name) for name, m, h in ADVICE]
)
def test_fix_hint_is_the_advice_the_library_wrote(message: str, hint: str) -> None:
    assert fix_hint(message) == hint


@pytest.mark.parametrize("message", [pytest.param(m, id=name) for name, m in NO_ADVICE])
def test_fix_hint_is_none_when_the_message_gives_no_advice(message: str) -> None:
    assert fix_hint(message) is None


def test_fix_hint_stays_short() -> None:
    message = "x is deprecated. Use " + " or ".join(f"`replacement_{n}`" for n in range(30))

    hint = fix_hint(message)

    assert hint is not None
    assert len(hint) <= 120
    assert hint.startswith("use `replacement_0` or") and hint.endswith("…")


# scikit-learn 1.2's ImportError for load_boston: paragraphs, then code samples (reST `::`).
LOAD_BOSTON = """
`load_boston` has been removed from scikit-learn since version 1.2.

The Boston housing prices dataset has an ethical problem: as
investigated in [1], the authors of this dataset engineered a
non-invertible variable "B" assuming that racial self-segregation had a
positive impact on house prices [2]. Furthermore the goal of the
research that led to the creation of this dataset was to study the
impact of air quality but it did not give adequate demonstration of the
validity of this assumption.

The scikit-learn maintainers therefore strongly discourage the use of
this dataset unless the purpose of the code is to study and educate
about ethical issues in data science and machine learning.

In this special case, you can fetch the dataset from the original
source::

    import pandas as pd
    import numpy as np

    data_url = "http://lib.stat.cmu.edu/datasets/boston"
    raw_df = pd.read_csv(data_url, sep="\\s+", skiprows=22, header=None)
    data = np.hstack([raw_df.values[::2, :], raw_df.values[1::2, :2]])
    target = raw_df.values[1::2, 2]

Alternative datasets include the California housing dataset and the
Ames housing dataset. You can load the datasets as follows::

    from sklearn.datasets import fetch_california_housing
    housing = fetch_california_housing()

for the California housing dataset and::

    from sklearn.datasets import fetch_openml
    housing = fetch_openml(name="house_prices", as_frame=True)

for the Ames housing dataset.
"""


def test_a_code_sample_in_a_message_is_pointed_to_not_flattened_into_the_hint() -> None:
    assert fix_hint(LOAD_BOSTON) == (
        "fetch the dataset from the original source (as the full message shows)"
    )


@pytest.mark.parametrize(
    ("message", "sentence"),
    [
        (LOAD_BOSTON, "`load_boston` has been removed from scikit-learn since version 1.2."),
        (
            "module 'numpy' has no attribute 'int'.\n`np.int` was a deprecated alias for the "
            "builtin `int`. To avoid this error in existing code, use `int` by itself.",
            "module 'numpy' has no attribute 'int'.",
        ),
        ("No module named 'imp'", "No module named 'imp'"),
        ("a message wrapped\nmid-sentence. Then more.", "a message wrapped mid-sentence."),
    ],
    ids=["paragraphs-and-code", "advice-after-the-error", "one-line", "wrapped"],
)
def test_first_sentence_is_one_line(message: str, sentence: str) -> None:
    assert first_sentence(message) == sentence


def test_first_sentence_stays_short() -> None:
    shortened = first_sentence("word " * 100)

    assert len(shortened) <= 160 and shortened.endswith("…") and "\n" not in shortened


def test_a_long_pin_list_is_folded_to_one_line() -> None:
    pins = [f"package{n} 1.{n}" for n in range(44)]

    assert folded(pins) == "package0 1.0, package1 1.1, package2 1.2 and 41 more pins"
    assert folded(pins[:4]) == "package0 1.0, package1 1.1, package2 1.2, package3 1.3"
    assert folded([]) == "nothing"


# -- hints on a notebook's verdict -----------------------------------------------------------

NOTEBOOK = Notebook("lectures/plots.ipynb", "0" * 64, "python3", "python")
ENVS = {
    "locked": EnvInfo("locked", "3.11.7", {"seaborn": "0.11.2", "numpy": "1.26.4"}, "fp-1"),
    "upcoming": EnvInfo("upcoming", "3.11.7", {"seaborn": "0.13.2", "numpy": "2.0.1"}, "fp-2"),
}
PLOT_CELLS = (
    CellResult(0, "ok", "import numpy as np\nimport seaborn as sns"),
    CellResult(1, "ok", "x = np.arange(5.0)\nsns.jointplot(x, x)"),
)
NP_FLOAT = (
    "`np.float` is a deprecated alias for the builtin `float`. To silence this warning, use "
    "`float` by itself. Doing this will not modify any behavior and is safe."
)


def _plots(error: CellError | None, warnings: tuple[WarningRecord, ...]) -> NotebookRun:
    env = "upcoming" if error else "locked"
    status = "error" if error else "ok"
    return NotebookRun(NOTEBOOK.path, env, status, 1.0, PLOT_CELLS, error, warnings)


def test_a_hint_from_another_packages_warning_is_not_shown_on_a_break() -> None:
    """numpy's `np.float` advice is no fix for a seaborn break; seaborn's own advice is."""
    numpy_warning = WarningRecord(1, "DeprecationWarning", NP_FLOAT, "numpy")
    seaborn_warning = WarningRecord(
        1,
        "FutureWarning",
        "Pass the following variables as keyword args: x, y. Passing them positionally will "
        "be an error in 0.12.",
        "seaborn",
    )
    error = CellError(
        1, "TypeError", "jointplot() takes from 0 to 1 positional arguments but 2 were given"
    )
    runs = {
        "locked": _plots(None, (numpy_warning, seaborn_warning)),
        "upcoming": _plots(error, ()),
    }

    report = judge(NOTEBOOK, runs, "locked", ENVS, compare.CompareOptions())

    assert report.verdict == "broken"
    assert report.culprit is not None and report.culprit.package == "seaborn"
    assert [(hint.hint, hint.source) for hint in report.hints] == [
        ("pass the following variables as keyword args: x, y", "FutureWarning (seaborn)")
    ]


def test_a_hint_keeps_the_whole_message_as_its_detail() -> None:
    error = CellError(1, "ImportError", LOAD_BOSTON)
    runs = {"locked": _plots(None, ()), "upcoming": _plots(error, ())}

    report = judge(NOTEBOOK, runs, "locked", ENVS, compare.CompareOptions())

    [hint] = report.hints
    assert "\n" not in hint.hint
    assert hint.detail == LOAD_BOSTON.strip()
    assert hint.to_json()["detail"] == LOAD_BOSTON.strip()


def test_advice_the_error_repeats_from_a_warning_is_shown_once() -> None:
    """numpy's AttributeError for `np.float` gives the advice its DeprecationWarning gave."""
    warning = WarningRecord(1, "DeprecationWarning", NP_FLOAT, "numpy")
    error = CellError(
        1,
        "AttributeError",
        "module 'numpy' has no attribute 'float'.\n`np.float` was a deprecated alias for the "
        "builtin `float`. To avoid this error in existing code, use `float` by itself.",
    )
    runs = {"locked": _plots(None, (warning,)), "upcoming": _plots(error, ())}

    report = judge(NOTEBOOK, runs, "locked", ENVS, compare.CompareOptions())

    assert report.culprit is not None and report.culprit.package == "numpy"
    assert [(hint.cell, hint.hint, hint.source) for hint in report.hints] == [
        (1, "use `float` by itself", "AttributeError")
    ]


def test_without_a_culprit_every_warning_keeps_its_hint() -> None:
    numpy_warning = WarningRecord(1, "DeprecationWarning", NP_FLOAT, "numpy")
    runs = {"locked": _plots(None, (numpy_warning,)), "upcoming": _plots(None, (numpy_warning,))}

    report = judge(NOTEBOOK, runs, "locked", ENVS, compare.CompareOptions())

    assert report.culprit is None
    assert [(hint.hint, hint.detail) for hint in report.hints] == [
        ("use `float` by itself", NP_FLOAT)
    ]


# -- foreshadowing ---------------------------------------------------------------------------


def _warning(
    cell: int, message: str, package: str | None, category: str = "FutureWarning"
) -> WarningRecord:
    return WarningRecord(cell=cell, category=category, message=message, package=package)


def test_foreshadowing_finds_the_warning_naming_the_removed_api() -> None:
    error = CellError(4, "AttributeError", "module 'wobble' has no attribute 'old_mean'")
    named = _warning(2, "old_mean is deprecated and will be removed in 2.0", "wobble")
    unrelated = _warning(1, "other_thing is deprecated", "numpy", "DeprecationWarning")

    assert foreshadowing(error, [unrelated, named], culprit_package=None) == (named,)


def test_foreshadowing_the_pandas_groupby_mean_case_from_the_issue() -> None:
    error = CellError(3, "TypeError", "dtype 'str' does not support operation 'mean'")
    numeric_only = _warning(
        3,
        "The default value of numeric_only in DataFrameGroupBy.mean is deprecated. In a future "
        "version, numeric_only will default to False. Either specify numeric_only or select "
        "only columns which should be valid for the function.",
        "pandas",
    )

    assert foreshadowing(error, [numeric_only], culprit_package="pandas") == (numeric_only,)


def test_foreshadowing_orders_name_then_cell_then_package() -> None:
    error = CellError(5, "AttributeError", "module 'numpy' has no attribute 'trapz'")
    same_package = _warning(1, "`np.in1d` is deprecated. Use `np.isin` instead.", "numpy")
    same_cell = _warning(5, "some_helper is deprecated", None, "DeprecationWarning")
    name_and_package = _warning(
        7,
        "`trapz` is deprecated. Use `trapezoid` instead, or one of the numerical integration "
        "functions in `scipy.integrate`.",
        "numpy",
        "DeprecationWarning",
    )
    name_package_cell = _warning(5, "trapz will go away", "numpy", "DeprecationWarning")
    unrelated = _warning(2, "something else", "matplotlib", "MatplotlibDeprecationWarning")

    found = foreshadowing(
        error,
        [same_package, same_cell, name_and_package, unrelated, name_package_cell],
        culprit_package="numpy",
    )

    assert found == (name_package_cell, name_and_package, same_cell, same_package)


def test_foreshadowing_reports_a_message_once_where_it_is_most_specific() -> None:
    error = CellError(3, "AttributeError", "module 'wobble' has no attribute 'old_mean'")
    message = "old_mean is deprecated and will be removed in 2.0"
    early, at_the_error = _warning(1, message, "wobble"), _warning(3, message, "wobble")

    assert foreshadowing(error, [early, at_the_error], "wobble") == (at_the_error,)


def test_foreshadowing_matches_whole_names_and_canonical_packages() -> None:
    # `float` is the removed alias: np.float64 is another API, the module in "module
    # 'numpy'" says where rather than what, and the advice after the first line is numpy's
    # suggested replacement.
    error = CellError(
        2,
        "AttributeError",
        "module 'numpy' has no attribute 'float'.\n`np.float` was a deprecated alias for the "
        "builtin `float`. To avoid this error in existing code, use `float` by itself. If you "
        "specifically wanted the numpy scalar type, use `np.float64` here.",
    )
    alias = _warning(0, "`np.float` is a deprecated alias for the builtin `float`.", "numpy")
    float64 = _warning(0, "np.float64 scalars will print differently", "numpy")
    from_numpy = _warning(1, "numpy.core is deprecated and has been renamed", "numpy")
    culprit = _warning(1, "load_boston is deprecated in 1.0", "scikit_learn")

    found = foreshadowing(error, [float64, alias, from_numpy, culprit], "Scikit-Learn")

    assert found == (alias, culprit)


def test_foreshadowing_is_empty_when_nothing_points_at_the_break() -> None:
    error = CellError(2, "ModuleNotFoundError", "No module named 'distutils'")
    records = [_warning(0, "np.find_common_type is deprecated.", "numpy", "DeprecationWarning")]

    assert foreshadowing(error, records, culprit_package="python") == ()
    assert foreshadowing(error, [], culprit_package=None) == ()
