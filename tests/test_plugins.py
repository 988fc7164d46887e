"""The plugin core: discovery through entry points, registries, blocking, errors."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest

import ifsrepr
from ifsrepr.io.manga_maps import MangaMapsReader
from ifsrepr.lines import resolve_lines
from ifsrepr.plugins import BLOCK_VARIABLE, PretrainedModel, manager

pytestmark = pytest.mark.usefixtures("fresh_plugins")


class FakeReader:
    """A reader that claims files by name suffix."""

    def __init__(self, name, suffix=".never", result=None):
        self.name = name
        self.suffix = suffix
        self.result = result

    def identify(self, path, header):
        return str(path).endswith(self.suffix)

    def read(self, path, **options):
        return self.result


class ReaderPlugin:
    """An in-process plugin registering the readers it is given."""

    def __init__(self, *readers):
        self.readers = readers

    @ifsrepr.hookimpl
    def ifsrepr_register_readers(self, register):
        for reader in self.readers:
            register(reader)


def test_builtin_reader_comes_through_its_entry_point():
    points = importlib.metadata.entry_points(group="ifsrepr", name="manga-maps")
    assert [point.value for point in points] == ["ifsrepr.io.manga_maps"]
    registration = ifsrepr.plugins.get_readers().registration("manga-maps")
    assert isinstance(registration.item, MangaMapsReader)
    assert registration.plugin == "manga-maps"
    assert registration.distribution == f"ifsrepr {importlib.metadata.version('ifsrepr')}"


def test_third_party_plugin_is_discovered(example_survey):
    registration = ifsrepr.plugins.get_readers().registration("example-survey")
    assert isinstance(registration.item, example_survey.ExampleSurveyReader)
    assert registration.plugin == "example-survey"
    version = importlib.metadata.version("ifsrepr-example-survey")
    assert registration.distribution == f"ifsrepr-example-survey {version}"


def test_duplicate_name_names_both_plugins():
    impostor = ReaderPlugin(FakeReader("manga-maps"))
    with pytest.raises(ifsrepr.PluginError) as info:
        ifsrepr.plugins.load_registries(extra_plugins={"impostor": impostor})
    message = str(info.value)
    assert "'manga-maps' is registered twice" in message
    assert "plugin 'manga-maps' (from ifsrepr " in message
    assert "plugin 'impostor'" in message
    assert BLOCK_VARIABLE in message


def test_duplicate_between_two_in_process_plugins():
    plugins = {
        "first": ReaderPlugin(FakeReader("twin")),
        "second": ReaderPlugin(FakeReader("twin")),
    }
    with pytest.raises(ifsrepr.PluginError, match="'twin'.*'first'.*'second'"):
        ifsrepr.plugins.load_registries(extra_plugins=plugins)


def test_unknown_name_lists_available_ones():
    readers = ifsrepr.plugins.get_readers()
    with pytest.raises(ifsrepr.UnknownNameError) as info:
        readers.get("no-such-reader")
    message = str(info.value)
    assert "'no-such-reader'" in message
    assert readers.names()  # something to list
    for name in readers.names():
        assert name in message
    assert isinstance(info.value, KeyError)  # callers catching KeyError still work


def test_unknown_name_in_an_empty_registry_says_none():
    with pytest.raises(ifsrepr.UnknownNameError, match="available: none"):
        ifsrepr.plugins.Registry("gadget").get("anything")


def test_plugins_load_lazily_on_first_use():
    assert manager._cached is None  # reset() by the fixture
    readers = ifsrepr.plugins.get_readers()
    assert manager._cached is not None
    assert ifsrepr.plugins.get_readers() is readers  # cached, not rediscovered
    ifsrepr.plugins.reset()
    assert manager._cached is None


def test_read_triggers_loading(maps_path):
    assert manager._cached is None
    ifsrepr.read(maps_path)
    assert manager._cached is not None


def test_importing_ifsrepr_loads_no_plugin():
    # A fresh interpreter: in this one, other tests have long since loaded the plugins.
    code = (
        "import sys, ifsrepr\n"
        "print(ifsrepr.plugins.manager._cached is None,"
        " 'ifsrepr_example_survey' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["True", "False"]


def test_block_variable_blocks_named_plugins(monkeypatch, maps_path):
    assert "manga-maps" in ifsrepr.plugins.get_readers()
    monkeypatch.setenv(BLOCK_VARIABLE, " manga-maps , some-other-plugin ")
    ifsrepr.plugins.reset()
    assert ifsrepr.plugins.blocked_plugins() == ["manga-maps", "some-other-plugin"]
    assert "manga-maps" not in ifsrepr.plugins.get_readers()
    with pytest.raises(ifsrepr.FileFormatError, match="no reader recognises"):
        ifsrepr.read(maps_path)
    monkeypatch.delenv(BLOCK_VARIABLE)
    ifsrepr.plugins.reset()
    assert "manga-maps" in ifsrepr.plugins.get_readers()


def test_block_variable_resolves_a_duplicate(monkeypatch):
    plugins = {"impostor": ReaderPlugin(FakeReader("manga-maps"))}
    monkeypatch.setenv(BLOCK_VARIABLE, "impostor")
    registries = ifsrepr.plugins.load_registries(extra_plugins=plugins)
    assert registries.readers.registration("manga-maps").plugin == "manga-maps"
    monkeypatch.setenv(BLOCK_VARIABLE, "manga-maps")
    registries = ifsrepr.plugins.load_registries(extra_plugins=plugins)
    assert registries.readers.registration("manga-maps").plugin == "impostor"


def test_block_third_party_plugin(monkeypatch, example_survey):
    monkeypatch.setenv(BLOCK_VARIABLE, "example-survey")
    ifsrepr.plugins.reset()
    names = ifsrepr.plugins.get_readers().names()
    assert "example-survey" not in names
    assert "manga-maps" in names


class Nameless:
    def identify(self, path, header):
        return False

    def read(self, path):
        return None


class NoMethods:
    name = "half-a-reader"


class NotCallable:
    name = "stringly"
    identify = "yes"
    read = "please"


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        (NoMethods(), "plugin 'broken' registered a reader .* without identify, read"),
        (Nameless(), "plugin 'broken' registered a reader .* without name"),
        (FakeReader(""), "plugin 'broken' registered a reader with name ''"),
        (FakeReader(None), "plugin 'broken' registered a reader with name None"),
        (NotCallable(), "plugin 'broken': reader 'stringly' has non-callable identify, read"),
    ],
)
def test_malformed_reader_fails_clearly(item, pattern):
    with pytest.raises(ifsrepr.PluginError, match=pattern):
        ifsrepr.plugins.load_registries(extra_plugins={"broken": ReaderPlugin(item)})


class ExplodingPlugin:
    @ifsrepr.hookimpl
    def ifsrepr_register_line_extractors(self, register):
        raise RuntimeError("boom at registration")


def test_plugin_whose_hook_raises_is_named():
    with pytest.raises(ifsrepr.PluginError) as info:
        ifsrepr.plugins.load_registries(extra_plugins={"exploding": ExplodingPlugin()})
    message = str(info.value)
    assert "plugin 'exploding'" in message
    assert "ifsrepr_register_line_extractors" in message
    assert "RuntimeError: boom at registration" in message
    assert isinstance(info.value.__cause__, RuntimeError)


class MisspelledHook:
    @ifsrepr.hookimpl
    def ifsrepr_register_reader(self, register):  # missing the final "s"
        register(FakeReader("never-seen"))


def test_plugin_implementing_an_unknown_hook_is_refused():
    with pytest.raises(ifsrepr.PluginError, match="'misspelled'.*unknown hook"):
        ifsrepr.plugins.load_registries(extra_plugins={"misspelled": MisspelledHook()})


def test_extra_plugins_for_in_process_use():
    reader = FakeReader("in-process")
    registries = ifsrepr.plugins.load_registries(extra_plugins={"local": ReaderPlugin(reader)})
    registration = registries.readers.registration("in-process")
    assert registration.item is reader
    assert registration.plugin == "local"
    assert registration.distribution == ""  # not installed as a distribution
    assert "manga-maps" in registries.readers  # the entry points are still there
    # load_registries is uncached: the shared registries never saw the local plugin.
    assert "in-process" not in ifsrepr.plugins.get_readers()


def test_extra_plugin_reaches_read(use_plugins, tmp_path):
    made = ifsrepr.LineStack(resolve_lines(["Ha-6564"]), np.zeros((1, 2, 2)))
    target = tmp_path / "data.mine"
    target.write_bytes(b"anything")
    use_plugins(local=ReaderPlugin(FakeReader("mine", suffix=".mine", result=made)))
    result = ifsrepr.read(target)
    assert result is made
    assert result.meta == {"filename": "data.mine", "reader": "mine"}


class RaisingIdentify(FakeReader):
    def identify(self, path, header):
        raise ValueError("cannot decide")


def test_identify_that_raises_warns_naming_the_reader(use_plugins, maps_path):
    use_plugins(shaky=ReaderPlugin(RaisingIdentify("shaky-reader")))
    with pytest.warns(RuntimeWarning) as record:
        stack = ifsrepr.read(maps_path)
    assert len(stack) == 22  # manga-maps still read the file
    [warning] = record
    message = str(warning.message)
    assert "reader 'shaky-reader' (plugin 'shaky')" in message
    assert str(maps_path) in message
    assert "ValueError: cannot decide" in message


class Extractor:
    name = "constant"

    def extract(self, cube, lines, redshift, **options):
        raise NotImplementedError


class Architecture:
    name = "tiny"

    def build(self, n_lines, image_size, **options):
        raise NotImplementedError


class EverythingPlugin:
    @ifsrepr.hookimpl
    def ifsrepr_register_line_extractors(self, register):
        register(Extractor())

    @ifsrepr.hookimpl
    def ifsrepr_register_architectures(self, register):
        register(Architecture())

    @ifsrepr.hookimpl
    def ifsrepr_register_pretrained(self, register):
        register(PretrainedModel("tiny-v1", "tiny", {"n_lines": 3}, "ab" * 32, "me", path="."))


def test_every_kind_registers_through_the_same_path():
    registries = ifsrepr.plugins.load_registries(extra_plugins={"all": EverythingPlugin()})
    assert isinstance(registries.line_extractors.get("constant"), Extractor)
    assert isinstance(registries.architectures.get("tiny"), Architecture)
    model = registries.pretrained.get("tiny-v1")
    assert (model.architecture, model.config) == ("tiny", {"n_lines": 3})
    for registry in (registries.line_extractors, registries.architectures, registries.pretrained):
        assert [
            entry.plugin
            for entry in registry.registrations()
            if entry.name in ("constant", "tiny", "tiny-v1")
        ] == ["all"]


class ArchitectureWithoutBuild:
    @ifsrepr.hookimpl
    def ifsrepr_register_architectures(self, register):
        register(Extractor())


def test_required_attributes_depend_on_the_kind():
    with pytest.raises(ifsrepr.PluginError, match="architecture .* without build"):
        ifsrepr.plugins.load_registries(extra_plugins={"wrong": ArchitectureWithoutBuild()})


def test_pretrained_model_needs_exactly_one_location():
    with pytest.raises(ValueError, match="exactly one of path= and url="):
        PretrainedModel("m", "tiny")
    with pytest.raises(ValueError, match="exactly one of path= and url="):
        PretrainedModel("m", "tiny", path=".", url="https://example.org/w")


def test_registry_iteration_and_repr():
    registries = ifsrepr.plugins.load_registries(
        extra_plugins={"local": ReaderPlugin(FakeReader("zz-last"), FakeReader("aa-first"))}
    )
    readers = registries.readers
    names = readers.names()
    assert names == sorted(names)
    assert [reader.name for reader in readers] == names
    assert len(readers) == len(names)
    assert repr(readers).startswith(f"<Registry of {len(names)} readers:")
    assert np.all([name in repr(readers) for name in names])
