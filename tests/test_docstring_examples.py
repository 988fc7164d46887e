"""Every public function and class documents itself with an example that runs.

The public API is what ``docs/api.rst`` lists with automodapi: the ``__all__``
of the modules in `API_MODULES`. Each function and class found there needs a
numpydoc ``Examples`` section (for a class, in the class docstring) holding at
least one ``>>>`` line that is not skipped. The examples themselves run as
doctests with the rest of the suite (pytest-doctestplus), so this test only
checks that they exist.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
from pathlib import Path

import pytest

#: The modules documented with automodapi in docs/api.rst, in that order.
API_MODULES = [
    "ifsrepr",
    "ifsrepr.cube",
    "ifsrepr.lines",
    "ifsrepr.io",
    "ifsrepr.plugins",
    "ifsrepr.units",
    "ifsrepr.bitmask",
    "ifsrepr.datasets",
    "ifsrepr.extraction",
    "ifsrepr.extraction.continuum",
    "ifsrepr.extraction.bands",
    "ifsrepr.extraction.scratch",
    "ifsrepr.templates",
    "ifsrepr.extinction",
    "ifsrepr.extraction.forward",
    "ifsrepr.mock",
    "ifsrepr.preprocess",
    "ifsrepr.dataset",
    "ifsrepr.hub",
    "ifsrepr.encoder",
    "ifsrepr.models",
    "ifsrepr.training",
    "ifsrepr.scoring",
    "ifsrepr.report",
    "ifsrepr.probes",
]

#: Callable public names that are not functions or classes of ours, and why.
EXEMPT = {
    "ifsrepr.hookimpl": "a pluggy HookimplMarker instance; docs/plugins.rst shows it in use",
}

#: Objects whose files are being edited elsewhere; their examples are written
#: and wait to be pasted in. Remove an entry once its example is in place
#: (the strict xfail fails as soon as it passes).
PENDING: dict[str, str] = {}

_API_RST = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
_SECTION = re.compile(r"^(?P<title>\S[^\n]*)\n-{3,}[ \t]*$", re.MULTILINE)


def _is_exception(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, (BaseException, Warning))


def _public_objects() -> dict[str, object]:
    """Qualified name (first module exporting it) to object, functions and classes only."""
    found: dict[int, tuple[str, object]] = {}
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in found:
                continue
            found[id(obj)] = (f"{module_name}.{name}", obj)
    out = {}
    for qualified, obj in found.values():
        if inspect.ismodule(obj) or not callable(obj):
            continue  # constants and data (and a re-exported submodule)
        if _is_exception(obj) or qualified in EXEMPT:
            continue  # exceptions and warnings explain themselves in their docstring
        out[qualified] = obj
    return out


def examples_section(doc: str | None) -> str | None:
    """The text of the numpydoc ``Examples`` section of ``doc``, or None."""
    if not doc:
        return None
    text = inspect.cleandoc(doc)
    sections = list(_SECTION.finditer(text))
    for i, match in enumerate(sections):
        if match["title"].strip() == "Examples":
            end = sections[i + 1].start() if i + 1 < len(sections) else len(text)
            return text[match.end() : end]
    return None


#: Doctest directives that keep a line from running in the default test run.
_NOT_RUN = ("+SKIP", "+REMOTE_DATA")


def runnable_example_lines(doc: str | None) -> list[str]:
    """The ``>>>`` lines of the Examples section that are not skipped."""
    section = examples_section(doc)
    if section is None:
        return []
    return [
        line
        for line in section.splitlines()
        if line.lstrip().startswith(">>>") and not any(flag in line for flag in _NOT_RUN)
    ]


def skipped_by_module(obj: object) -> bool:
    """Whether pytest-doctestplus skips the object's doctest (``__doctest_skip__``)."""
    module = inspect.getmodule(inspect.unwrap(obj))
    patterns = getattr(module, "__doctest_skip__", ())
    name = getattr(obj, "__qualname__", "")
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


PUBLIC = _public_objects()


def test_api_modules_match_api_rst():
    documented = re.findall(r"^\.\. automodapi:: (\S+)", _API_RST.read_text(), re.MULTILINE)
    assert documented == API_MODULES


def test_exemptions_name_public_objects():
    exported = {f"{m}.{n}" for m in API_MODULES for n in importlib.import_module(m).__all__}
    assert set(EXEMPT) <= exported
    assert set(PENDING) <= set(PUBLIC)


def test_section_parser():
    doc = """Summary.

    Parameters
    ----------
    x : int
        A number.

    Examples
    --------
    >>> 1 + 1
    2
    >>> skipped()  # doctest: +SKIP
    >>> download()  # doctest: +REMOTE_DATA

    Notes
    -----
    >>> not_an_example
    """
    assert runnable_example_lines(doc) == [">>> 1 + 1"]
    assert runnable_example_lines("Summary only.") == []
    assert runnable_example_lines(None) == []


@pytest.mark.parametrize(
    "qualified",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                strict=True, reason=f"example written, waiting for {PENDING[name]}"
            ),
        )
        if name in PENDING
        else name
        for name in PUBLIC
    ],
)
def test_has_runnable_example(qualified):
    obj = PUBLIC[qualified]
    # A class's own docstring, not one inherited; a decorated function keeps its own.
    doc = obj.__doc__ or inspect.unwrap(obj).__doc__
    try:
        where = inspect.getsourcefile(inspect.unwrap(obj))
    except TypeError:
        where = "?"
    kind = "class docstring" if inspect.isclass(obj) else "docstring"
    assert runnable_example_lines(doc) and not skipped_by_module(obj), (
        f"{qualified} (defined in {where}) needs a numpydoc 'Examples' section in its {kind} "
        "with at least one `>>>` line that runs (not marked +SKIP, not in __doctest_skip__)"
    )
