"""The ``ifsrepr`` command line."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import astropy.constants as const
import astropy.units as u
import pytest
from astropy.io import fits

import ifsrepr
from ifsrepr.cli import main, subcommand_names
from ifsrepr.plugins import BLOCK_VARIABLE

pytestmark = pytest.mark.usefixtures("fresh_plugins")

DONOTUSE = 1 << 30


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ifsrepr {ifsrepr.__version__}"
    assert ifsrepr.__version__ != "0.0.0+unknown"  # the installed version, not the fallback


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ifsrepr")
    names = subcommand_names()
    assert {"info", "plugins"} <= set(names)
    for name in names:
        assert f"    {name}" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: ifsrepr" in capsys.readouterr().out


def test_plugins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    version = importlib.metadata.version("ifsrepr")
    [row] = [line for line in out.splitlines() if line.strip().startswith("manga-maps ")]
    assert row.split() == ["manga-maps", "plugin", "manga-maps", "(ifsrepr", f"{version})"]
    for section in ("readers:", "line extractors:", "architectures:", "pretrained models:"):
        assert section in out


def test_plugins_lists_the_third_party_plugin(capsys, example_survey):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    version = importlib.metadata.version("ifsrepr-example-survey")
    [row] = [line for line in out.splitlines() if line.strip().startswith("example-survey ")]
    assert row.split() == [
        "example-survey",
        "plugin",
        "example-survey",
        "(ifsrepr-example-survey",
        f"{version})",
    ]


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {
        "readers",
        "line extractors",
        "architectures",
        "pretrained models",
        "blocked",
    }
    readers = {row["name"]: row for row in listing["readers"]}
    assert readers["manga-maps"] == {
        "name": "manga-maps",
        "plugin": "manga-maps",
        "package": f"ifsrepr {importlib.metadata.version('ifsrepr')}",
    }
    assert sorted(readers) == ifsrepr.plugins.get_readers().names()
    assert listing["blocked"] == []


def test_plugins_json_third_party(capsys, example_survey):
    assert main(["plugins", "--json"]) == 0
    readers = {row["name"]: row for row in json.loads(capsys.readouterr().out)["readers"]}
    version = importlib.metadata.version("ifsrepr-example-survey")
    assert readers["example-survey"]["package"] == f"ifsrepr-example-survey {version}"
    assert readers["example-survey"]["plugin"] == "example-survey"


def test_plugins_shows_blocked(capsys, monkeypatch):
    monkeypatch.setenv(BLOCK_VARIABLE, "manga-maps")
    ifsrepr.plugins.reset()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "blocked: manga-maps" in out
    assert "plugin manga-maps " not in out
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["blocked"] == ["manga-maps"]
    assert "manga-maps" not in {row["name"] for row in listing["readers"]}


def test_info_sample_prints_the_line_table(capsys, maps_path):
    assert main(["info", "--sample", "manga-7815-3702-maps"]) == 0
    out = capsys.readouterr().out
    assert "reader: manga-maps" in out
    assert f"file: {maps_path}" in out
    with fits.open(maps_path) as hdus:
        header = hdus["EMLINE_GFLUX"].header
        bits = hdus["EMLINE_GFLUX_MASK"].data
        scinpvel = hdus[0].header["SCINPVEL"]
    names = [str(header[f"C{i:02d}"]).strip() for i in range(1, header["NAXIS3"] + 1)]
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.split() and line.split()[0] in names
    }
    assert set(rows) == set(names)
    # Rows come in wavelength order, and n_good counts the spaxels without DONOTUSE.
    printed = [
        line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in names
    ]
    waves = [float(rows[name][1]) for name in printed]
    assert waves == sorted(waves)
    for k, name in enumerate(names):
        assert int(rows[name][2]) == int(((bits[k] & DONOTUSE) == 0).sum()), name
    assert f"redshift: {scinpvel / const.c.to_value(u.km / u.s):.5f}" in out


def test_info_on_a_bad_file(capsys, tmp_path, maps_path):
    bad = tmp_path / "cut-MAPS.fits.gz"
    data = maps_path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert main(["info", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"ifsrepr info: error: {bad}: ")
    assert "truncated" in captured.err.replace(str(bad), "")
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_info_on_a_missing_file(capsys, tmp_path):
    assert main(["info", str(tmp_path / "absent.fits")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_info_with_an_unknown_reader(capsys, maps_path):
    assert main(["info", str(maps_path), "--reader", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown reader 'nope'" in err
    assert "manga-maps" in err


def test_info_needs_a_source(capsys):
    with pytest.raises(SystemExit) as info:
        main(["info"])
    assert info.value.code == 2
    assert "one of the arguments path --sample is required" in capsys.readouterr().err


def console_script() -> str:
    beside = Path(sys.executable).with_name("ifsrepr")
    found = str(beside) if beside.exists() else shutil.which("ifsrepr")
    if found is None:
        pytest.skip("the ifsrepr console script is not installed")
    return found


def test_console_script_end_to_end(tmp_path):
    script = console_script()
    listing = subprocess.run(
        [script, "plugins", "--json"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    readers = {row["name"] for row in json.loads(listing.stdout)["readers"]}
    assert "manga-maps" in readers

    bad = tmp_path / "not-fits.txt"
    bad.write_text("plain text\n")
    failed = subprocess.run([script, "info", str(bad)], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip() == (
        f"ifsrepr info: error: {bad}: no reader recognises this file (not a FITS file); "
        f"tried: {', '.join(sorted(readers))}. Pass reader=NAME to force one."
    )
