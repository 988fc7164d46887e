"""Emission lines, the DAP line table and the named line sets."""

from __future__ import annotations

import re
from importlib import resources

import astropy.units as u
import numpy as np
import pytest

from ifsrepr import DataModelError, EmissionLine, FileFormatError, UnknownNameError
from ifsrepr.lines import (
    MANGA19,
    _parse_dap_par,
    dap_line_table,
    find_line,
    get_line_set,
    line_set_names,
    resolve_lines,
)

BLEND_LIMIT = 2.5  # Angstrom: lines closer than this to a tied partner are blends (lines.py)


def par_rows():
    """The active rows of elpmpl11.par, parsed here independently of ifsrepr.lines."""
    text = (resources.files("ifsrepr") / "data" / "elpmpl11.par").read_text()
    rows = []
    for row in text.splitlines():
        if not row.startswith("DAPEML"):
            continue
        head, tie = row.split("{", 1)[0].split(), row.split("{")[1].split("}")[0].split()
        _, index, species, wave = head[:4]
        rows.append(
            {"index": int(index), "name": f"{species}-{int(float(wave))}",
             "wave": float(wave), "tie": tie}
        )  # fmt: skip
    return rows


def tied_flux_lines(rows):
    """Lines whose flux the DAP ties at a fixed ratio (tie column like '=0.35')."""
    return {row["name"] for row in rows if re.fullmatch(r"=0\.\d+", row["tie"][1])}


def blended_lines(rows):
    """Lines kinematically tied to a partner less than BLEND_LIMIT Angstrom away."""
    by_index = {row["index"]: row for row in rows}
    blends = set()
    for row in rows:
        partner = row["tie"][0]
        if partner == "None" or re.fullmatch(r"=0\.\d+", row["tie"][1]):
            continue
        if abs(by_index[int(partner)]["wave"] - row["wave"]) < BLEND_LIMIT:
            blends.add(row["name"])
    return blends


def test_dap_table_matches_the_par_file():
    rows = par_rows()
    table = dap_line_table()
    assert len(rows) == len(table) == 35
    assert [line.name for line in table] == [row["name"] for row in rows]
    for line, row in zip(table, rows, strict=True):
        assert line.rest_wavelength.to_value(u.AA) == row["wave"]
        assert line.rest_wavelength.unit == u.AA
        assert line.blueside[0] < line.blueside[1] <= line.redside[0] < line.redside[1]


def test_dap_table_is_in_wavelength_order():
    waves = [line.rest_wavelength.value for line in dap_line_table()]
    assert np.all(np.diff(waves) > 0)
    assert len({line.name for line in dap_line_table()}) == 35


def test_manga35_is_the_table():
    assert get_line_set("manga35") == dap_line_table()


def test_manga19():
    manga19 = get_line_set("manga19")
    assert len(manga19) == 19
    assert [line.name for line in manga19] == list(MANGA19)
    waves = np.array([line.rest_wavelength.to_value(u.AA) for line in manga19])
    assert np.all(np.diff(waves) > 0)
    assert waves.min() >= 3800 and waves.max() <= 8000
    assert all(line in dap_line_table() for line in manga19)


def test_manga19_excludes_flux_tied_lines():
    rows = par_rows()
    tied = tied_flux_lines(rows)
    # Sanity of the derivation: the doublet partners the DAP ties by atomic physics.
    assert {"OIII-4960", "NII-6549", "OI-6365", "NeIII-3968"} <= tied
    assert not tied & set(MANGA19)


def test_manga19_is_the_range_minus_tied_and_blended_lines():
    rows = par_rows()
    in_range = {row["name"] for row in rows if 3800 <= row["wave"] <= 8000}
    blends = blended_lines(rows)
    assert blends == {"HeI-3889", "NI-5201"}
    assert set(MANGA19) == in_range - tied_flux_lines(rows) - blends


def test_line_set_names_and_unknown_set():
    assert line_set_names() == ["manga19", "manga35"]
    with pytest.raises(UnknownNameError) as info:
        get_line_set("manga20")
    message = str(info.value)
    assert "'manga20'" in message
    for name in line_set_names():
        assert name in message


def test_user_lists_keep_their_order():
    chosen = resolve_lines(["SII-6732", "Hb-4862", "Ha-6564"])
    assert [line.name for line in chosen] == ["SII-6732", "Hb-4862", "Ha-6564"]
    assert chosen[1] == find_line("Hb-4862")
    assert chosen[1].blueside == find_line("Hb-4862").blueside


def test_user_lists_accept_emission_lines():
    custom = EmissionLine("FeX-6376", 6376.29 * u.AA)
    chosen = resolve_lines(["Ha-6564", custom])
    assert chosen[1] is custom


def test_a_set_name_resolves_to_the_set():
    assert resolve_lines("manga19") == get_line_set("manga19")


def test_unknown_line_name_lists_the_table():
    with pytest.raises(UnknownNameError) as info:
        resolve_lines(["Ha-6564", "Ha-6563"])
    message = str(info.value)
    assert "'Ha-6563'" in message
    for line in dap_line_table():
        assert line.name in message


def test_duplicates_are_refused():
    with pytest.raises(DataModelError, match="'Ha-6564' appears more than once"):
        resolve_lines(["Ha-6564", "Hb-4862", "Ha-6564"])


def test_find_line():
    assert find_line("OIII-5008").rest_wavelength == 5008.240 * u.AA
    assert find_line("oiii-5008") is None  # exact names only


def test_emission_line_validation():
    line = EmissionLine("Ha-6564", 656.4608 * u.nm)
    assert line.rest_wavelength.unit == u.AA
    assert line.rest_wavelength.value == pytest.approx(6564.608)
    assert line.species == "Ha"
    assert EmissionLine("X-1", 1234.5).rest_wavelength == 1234.5 * u.AA
    with pytest.raises(DataModelError, match="non-empty name"):
        EmissionLine("  ", 5000 * u.AA)
    with pytest.raises(DataModelError, match="not a wavelength"):
        EmissionLine("X-1", 5 * u.s)
    with pytest.raises(DataModelError, match="one positive value"):
        EmissionLine("X-1", -5 * u.AA)
    with pytest.raises(DataModelError, match="one positive value"):
        EmissionLine("X-1", [1, 2] * u.AA)


def test_side_bands_do_not_affect_equality():
    table_line = find_line("Ha-6564")
    bare = EmissionLine("Ha-6564", table_line.rest_wavelength)
    assert bare == table_line
    assert bare.blueside is None and table_line.blueside is not None


def test_malformed_par_row_is_reported():
    text = "DAPEML  1  Ha  6564.608  vac  f  { None None None None }  { 1 2 }\n"
    with pytest.raises(FileFormatError, match="mine.par, line 1: cannot parse DAPEML row"):
        _parse_dap_par(text, "mine.par")
    # Disabled rows and comments are skipped.
    assert _parse_dap_par("#DAPEML  1  Ha  6564.608  vac  f\n# comment\n", "x.par") == []
