"""Tests of `ifsrepr.dataset` and ``ifsrepr extract``: survey files in, one HDF5 dataset out."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import ifsrepr
from ifsrepr.cli import main
from ifsrepr.dataset import (
    DatasetError,
    SettingsMismatchError,
    SurveyDataset,
    consolidate,
    extract_survey,
    load_failures,
    load_metadata,
    read_attrs,
    resolve_inputs,
    writer,
)
from ifsrepr.preprocess import Preprocessor

SIZE = 16  # small model grid: the tests are about the machinery, not the pixels


# -- input files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maps_template() -> fits.HDUList:
    """The real MAPS file cut to the HDUs the reader needs (fast to write and read)."""
    names = ("EMLINE_GFLUX", "EMLINE_GFLUX_IVAR", "EMLINE_GFLUX_MASK")
    with fits.open(ifsrepr.datasets.get_path("manga-7815-3702-maps")) as hdus:
        return fits.HDUList([hdus[0].copy()] + [hdus[name].copy() for name in names])


@pytest.fixture
def write_maps(maps_template):
    """``write_maps(directory, plateifu, scale=1, reff=...)`` writes a MAPS-layout file."""

    def write(directory: Path, plateifu: str, *, scale: float = 1.0, reff: float | None = 3.5):
        hdus = fits.HDUList([hdu.copy() for hdu in maps_template])
        hdus[0].header["PLATEIFU"] = plateifu
        if reff is None:
            del hdus[0].header["REFF"]
        else:
            hdus[0].header["REFF"] = reff
        hdus[1].data = hdus[1].data * scale
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"manga-{plateifu}-MAPS-HYB10-GAU-MILESHC.fits"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdus.writeto(path, overwrite=True)
        return path

    return write


@pytest.fixture
def survey_files(tmp_path, write_maps):
    """Four galaxies, a truncated file, and a catalogue lying next to them."""
    directory = tmp_path / "in"
    paths = [
        write_maps(directory, f"9000-{1901 + i}", scale=1 + 0.5 * i, reff=2.5 + i) for i in range(4)
    ]
    truncated = directory / "manga-9000-9999-MAPS-HYB10-GAU-MILESHC.fits"
    truncated.write_bytes(paths[0].read_bytes()[:30000])
    catalog = Table({"plateifu": ["9000-1901"], "nsa_z": [0.031], "nsa_elpetro_th50_r": [5.0]})
    catalog.write(directory / "drpall-like.fits")
    return {"dir": directory, "galaxies": paths, "truncated": truncated}


def run_cli(*args: str) -> int:
    return main(["extract", *map(str, args), "--size", str(SIZE), "--no-progress"])


def dataset_content(path: Path) -> dict:
    """Everything a dataset holds, except where the parts happen to be."""
    with h5py.File(path, "r") as index:
        arrays = {name: index[name][()] for name in writer.ARRAYS}
    meta = load_metadata(path)
    meta.remove_columns(["part", "part_row"])
    attrs = read_attrs(path)
    return {
        "arrays": arrays,
        "meta": meta,
        "failures": load_failures(path),
        "preprocessor": attrs["preprocessor"],
        "settings": attrs["settings"],
    }


def assert_same_content(a: Path, b: Path) -> None:
    first, second = dataset_content(a), dataset_content(b)
    for name in writer.ARRAYS:
        np.testing.assert_array_equal(first["arrays"][name], second["arrays"][name])
    assert first["meta"].colnames == second["meta"].colnames
    for column in first["meta"].colnames:
        np.testing.assert_array_equal(first["meta"][column], second["meta"][column])
    assert list(first["failures"]["source"]) == list(second["failures"]["source"])
    assert first["preprocessor"] == second["preprocessor"]
    assert first["settings"] == second["settings"]


# -- writing and reading -------------------------------------------------------------------


def test_extract_writes_dataset_with_metadata_failures_and_fitted_normalisation(
    tmp_path, survey_files, capsys
):
    output = tmp_path / "survey.h5"
    assert run_cli(survey_files["dir"], "-o", output) == 1  # one input failed
    err = capsys.readouterr().err
    assert "failed: " in err and "truncated" in err and "1 input(s) failed" in err

    meta = load_metadata(output)
    assert list(meta["plateifu"]) == ["9000-1901", "9000-1902", "9000-1903", "9000-1904"]
    assert list(meta["kind"]) == ["linestack"] * 4
    assert list(meta["reader"]) == ["manga-maps"] * 4
    np.testing.assert_allclose(meta["reff"], [2.5, 3.5, 4.5, 5.5])
    assert set(meta["reff_origin"]) == {"file"}
    # The DAP's SCINPVEL gives a redshift for MAPS files when no catalogue does.
    assert np.all(meta["redshift"] > 0.02) and set(meta["redshift_origin"]) == {"file"}
    assert set(meta["status"]) == {"partial"}  # DR15 MAPS lack 4 of manga19
    assert meta["missing_lines"][0] == "ArIII-7137,ArIII-7753,HeI-7067,NI-5199"
    assert meta["n_good"].shape == (4, 19)
    assert [Path(s) for s in meta["source"]] == [p.resolve() for p in survey_files["galaxies"]]

    failures = load_failures(output)
    assert list(failures["source"]) == [str(survey_files["truncated"].resolve())]
    assert "truncated" in failures["reason"][0]
    skipped = load_failures(output, skipped=True)  # the catalogue next to the maps
    assert [Path(s).name for s in skipped["source"]] == ["drpall-like.fits"]

    attrs = read_attrs(output)
    assert attrs["format"] == "ifsrepr-survey" and attrs["format_version"] == 1
    assert attrs["complete"] is True
    assert attrs["settings"]["extraction"] == {"method": "window", "options": {}}
    assert attrs["settings"]["preprocessing"]["size"] == SIZE
    assert attrs["lines"] == list(ifsrepr.lines.MANGA19)
    with h5py.File(output, "r") as index:
        assert index["flux"].shape == (4, 19, SIZE, SIZE)
        assert index["flux"].is_virtual
        assert index["flux"].dtype == np.float32 and index["mask"].dtype == np.uint8

    # The stored maps are the regridded stacks, in the dataset's unit...
    data = SurveyDataset(output)
    pre = Preprocessor(size=SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pre.regrid(ifsrepr.read(survey_files["galaxies"][2]))
    stack = data.stack(2)
    assert stack.unit == expected.unit
    np.testing.assert_array_equal(stack.mask, expected.mask)
    np.testing.assert_allclose(stack.flux, expected.flux, rtol=1e-6)
    assert stack.wcs.to_header() == expected.wcs.to_header()
    assert stack.meta["plateifu"] == "9000-1903"
    # ... and the normalisation was fitted on all of them (as fit() on the stacks would).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 4 lines DR15 MAPS lack
        stacks = [ifsrepr.read(p) for p in survey_files["galaxies"]]
        reference = Preprocessor(size=SIZE).fit(stacks)
    np.testing.assert_allclose(data.preprocessor.scales_, reference.scales_, rtol=1e-12)
    x, w, index = data[2]
    assert index == 2 and x.shape == (19, SIZE, SIZE) and x.dtype == w.dtype
    x_ref, w_ref = reference.transform(expected)
    np.testing.assert_allclose(x.numpy(), x_ref, rtol=1e-5, atol=1e-6)


def test_rerun_skips_finished_galaxies(tmp_path, survey_files, write_maps):
    output = tmp_path / "survey.h5"
    options = {"preprocessor": Preprocessor(size=SIZE), "progress": False}
    first = extract_survey([survey_files["dir"]], output, **options)
    assert (first.n_processed, first.n_galaxies, len(first.failures)) == (4, 4, 1)
    parts = sorted(p.name for p in writer.list_parts(writer.parts_dir_for(output)))

    again = extract_survey([survey_files["dir"]], output, retry_failed=False, **options)
    assert (again.n_processed, again.n_already_done, again.n_galaxies) == (0, 6, 4)
    assert sorted(p.name for p in writer.list_parts(writer.parts_dir_for(output))) == parts

    # A new file, and the broken one repaired: only those two are processed.
    write_maps(survey_files["dir"], "9000-1950")
    shutil.copy(survey_files["galaxies"][0], survey_files["truncated"])
    third = extract_survey([survey_files["dir"]], output, **options)
    assert (third.n_processed, third.n_galaxies, len(third.failures)) == (2, 6, 0)
    assert third.ok


def test_kill_at_any_point_then_resume_gives_the_same_dataset(tmp_path, write_maps):
    directory = tmp_path / "in"
    for i in range(12):
        write_maps(directory, f"9100-{1901 + i}", scale=1 + 0.1 * i)
    killed, clean = tmp_path / "killed.h5", tmp_path / "clean.h5"
    command = [
        sys.executable,
        "-c",
        "import sys; from ifsrepr.cli import main; sys.exit(main(sys.argv[1:]))",
        "extract",
        str(directory),
        "-o",
        str(killed),
        "--size",
        str(SIZE),
        "--batch-size",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    parts_dir = writer.parts_dir_for(killed)
    deadline = time.monotonic() + 60
    while len(writer.list_parts(parts_dir)) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the run never wrote a part"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    n_parts = len(writer.list_parts(parts_dir))
    assert 2 <= n_parts < 12, "the kill did not land mid-run"

    # The killed run left a readable (incomplete) dataset.
    meta = load_metadata(killed)
    assert len(meta) <= n_parts
    assert read_attrs(killed)["complete"] is False
    with pytest.raises(DatasetError, match="no fitted normalisation"):
        SurveyDataset(killed)

    # Rerunning finishes it, skipping what was done, with the content of a clean run.
    assert main(command[3:]) == 0
    assert len(writer.list_parts(parts_dir)) == 12  # finished parts were not redone
    assert run_cli(directory, "-o", clean, "--batch-size", "5") == 0
    assert_same_content(killed, clean)


def test_settings_mismatch_is_refused_with_the_difference(tmp_path, survey_files, capsys):
    output = tmp_path / "survey.h5"
    extract_survey(
        [survey_files["galaxies"][0]], output, preprocessor=Preprocessor(size=SIZE), progress=False
    )
    with pytest.raises(SettingsMismatchError) as info:
        extract_survey(
            [survey_files["galaxies"][0]],
            output,
            preprocessor=Preprocessor(size=SIZE, grid="native"),
            method="gaussian",
            progress=False,
        )
    assert info.value.differences == [
        "extraction.method: 'window' in the dataset, 'gaussian' in this run",
        "preprocessing.grid: 'reff' in the dataset, 'native' in this run",
    ]
    assert main(["extract", str(survey_files["galaxies"][0]), "-o", str(output), "--size", "8"])
    err = capsys.readouterr().err
    assert "written with different settings" in err
    assert "preprocessing.size: 16 in the dataset, 8 in this run" in err

    # Parts written with other settings are refused too, even without an index.
    output.unlink()
    with pytest.raises(SettingsMismatchError, match="part-000000"):
        extract_survey(
            [survey_files["galaxies"][0]],
            output,
            preprocessor=Preprocessor(size=SIZE, n_reff=3.0),
            progress=False,
        )


def test_failures_are_recorded_and_set_the_exit_code(tmp_path, survey_files, write_maps, capsys):
    no_reff = write_maps(tmp_path / "other", "9000-1960", reff=None)
    missing = tmp_path / "other" / "manga-9000-1961-MAPS-HYB10-GAU-MILESHC.fits"
    output = tmp_path / "survey.h5"
    assert run_cli(survey_files["galaxies"][0], no_reff, missing, "-o", output) == 1
    reasons = dict(zip(*load_failures(output).columns.values(), strict=True))
    assert "effective radius" in reasons[str(no_reff)]
    assert "no such file" in reasons[str(missing)]
    assert len(load_metadata(output)) == 1
    capsys.readouterr()
    # A catalogue supplies the missing effective radius, the missing file
    # appears: the rerun retries both and succeeds.
    catalog = tmp_path / "drpall.ecsv"
    Table({"plateifu": ["9000-1960"], "nsa_z": [0.02], "nsa_elpetro_th50_r": [4.0]}).write(catalog)
    write_maps(tmp_path / "other", "9000-1961")
    args = (survey_files["galaxies"][0], no_reff, missing, "-o", output, "--catalog", catalog)
    assert run_cli(*args) == 0
    meta = load_metadata(output)
    assert list(meta["plateifu"]) == ["9000-1901", "9000-1960", "9000-1961"]
    assert list(meta["reff_origin"]) == ["file", "catalog", "file"]
    assert len(load_failures(output)) == 0


def test_catalogue_gives_redshift_and_reff_by_plateifu(tmp_path, survey_files):
    catalog = tmp_path / "drpall.fits"
    Table(
        {
            "PLATEIFU": ["9000-1902", "9000-1903"],
            "NSA_Z": [0.0251, -9999.0],
            "NSA_ELPETRO_TH50_R": [7.5, 6.0],
        }
    ).write(catalog)
    output = tmp_path / "survey.h5"
    extract_survey(
        survey_files["galaxies"],
        output,
        catalog=catalog,
        preprocessor=Preprocessor(size=SIZE),
        progress=False,
    )
    meta = load_metadata(output)
    by_name = {row["plateifu"]: row for row in meta}
    assert by_name["9000-1902"]["redshift"] == pytest.approx(0.0251)
    assert by_name["9000-1902"]["redshift_origin"] == "catalog"
    assert by_name["9000-1902"]["reff"] == 7.5 and by_name["9000-1902"]["reff_origin"] == "catalog"
    # DRPall's -9999 means unknown: the file's own value is used.
    assert by_name["9000-1903"]["redshift_origin"] == "file"
    assert by_name["9000-1903"]["reff_origin"] == "catalog"
    assert by_name["9000-1901"]["reff_origin"] == "file"
    assert read_attrs(output)["catalog"] == str(catalog.resolve())


def test_cubes_are_extracted_with_the_catalogue_redshift(tmp_path):
    import cube_fixtures

    directory = tmp_path / "cubes"
    directory.mkdir()
    for i, plateifu in enumerate(["8485-1901", "8485-1902"]):
        cube_fixtures.write_manga_cube(
            directory / f"manga-{plateifu}-LOGCUBE.fits", n=10, plateifu=plateifu, seed=i
        )
    catalog = tmp_path / "drpall.fits"
    Table({"plateifu": ["8485-1901"], "nsa_z": [0.0407447], "nsa_elpetro_th50_r": [3.0]}).write(
        catalog
    )
    output = tmp_path / "cubes.h5"
    summary = extract_survey(
        [directory],
        output,
        catalog=catalog,
        preprocessor=Preprocessor(size=SIZE),
        progress=False,
    )
    assert summary.n_galaxies == 1
    [row] = load_metadata(output)
    assert (row["kind"], row["reader"], row["redshift_origin"]) == ("cube", "manga-cube", "catalog")
    assert row["redshift"] == pytest.approx(0.0407447)
    [failure] = load_failures(output)
    assert failure["source"].endswith("manga-8485-1902-LOGCUBE.fits")
    assert "no redshift" in failure["reason"] and "catalogue" in failure["reason"]
    x, w, _ = SurveyDataset(output)[0]
    assert (w[12] > 0).any()  # H-alpha measured


def mock_survey_dataset(tmp_path):
    """Two mock galaxies (cubes and MAPS files) through ``ifsrepr extract``, checked."""
    from ifsrepr import mock

    directory = tmp_path / "mock"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = mock.make_survey(directory, 2, seed=3, products=["cube", "maps"], fibres=(19,))
    [catalog] = directory.glob("drpall*.fits")
    output = tmp_path / "mock.h5"
    assert run_cli(directory, "--catalog", catalog, "-o", output) == 0
    meta = load_metadata(output)
    assert sorted(meta["kind"]) == ["cube", "cube", "linestack", "linestack"]
    assert set(meta["redshift_origin"]) == {"catalog"} and set(meta["reff_origin"]) == {"catalog"}
    for row in truth:
        rows = meta[meta["plateifu"] == row["plateifu"]]
        assert len(rows) == 2  # the cube and the MAPS file of the galaxy
        np.testing.assert_allclose(rows["redshift"], row["z"], rtol=1e-6)
        np.testing.assert_allclose(rows["reff"], row["reff"], rtol=1e-5)
    data = SurveyDataset(output)
    halpha = data.preprocessor.line_names.index("Ha-6564")
    assert all((data[i][1][halpha] > 0).any() for i in range(len(data)))
    return directory, catalog, output


def test_mock_survey_cubes_and_maps_end_to_end(tmp_path):
    mock_survey_dataset(tmp_path)


def test_cubes_read_in_part_give_the_same_dataset(tmp_path, monkeypatch):
    """With the catalogue's redshift known before reading, a gzipped cube keeps only
    the channels the lines need; the dataset is the same as from whole cubes."""
    from ifsrepr.dataset import worker

    directory, catalog, output = mock_survey_dataset(tmp_path)
    hints = []
    real_hint = worker._wavelength_hint

    def record(*args):
        hints.append(real_hint(*args))
        return hints[-1]

    monkeypatch.setattr(worker, "_wavelength_hint", record)
    partial = tmp_path / "again.h5"
    assert run_cli(directory, "--catalog", catalog, "-o", partial) == 0
    assert sum(hint is not None for hint in hints) == 4  # two cubes, two MAPS files
    monkeypatch.setattr(worker, "_wavelength_hint", lambda *args: None)
    whole = tmp_path / "whole.h5"
    assert run_cli(directory, "--catalog", catalog, "-o", whole) == 0
    assert_same_content(partial, whole)
    assert_same_content(partial, output)


# -- inputs ---------------------------------------------------------------------------


def test_inputs_from_directories_globs_and_tables(tmp_path, survey_files):
    galaxies = [str(p.resolve()) for p in survey_files["galaxies"]]
    from_dir = resolve_inputs([survey_files["dir"]])
    assert all(item.discovered for item in from_dir)
    assert {item.path for item in from_dir} >= set(galaxies)
    from_glob = resolve_inputs([str(survey_files["dir"] / "manga-9000-190*-MAPS-*.fits")])
    assert [item.path for item in from_glob] == galaxies
    table = tmp_path / "inputs.ecsv"
    Table({"path": ["in/" + Path(g).name for g in galaxies[:2]], "redshift": [0.1, 0.2]}).write(
        table
    )
    from_table = resolve_inputs([table, galaxies[0]])  # duplicates are dropped
    assert [item.path for item in from_table] == galaxies[:2]
    assert from_table[1].overrides == {"redshift": 0.2}
    assert not from_table[0].discovered
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# a comment\n{galaxies[3]}\n")
    assert [item.path for item in resolve_inputs([listing])] == [galaxies[3]]
    with pytest.raises(ifsrepr.FileFormatError, match="no file matches"):
        resolve_inputs([str(tmp_path / "nothing-*.fits")])
    # The catalogue and the output are never inputs.
    excluded = resolve_inputs([survey_files["dir"]], exclude=[galaxies[0]])
    assert galaxies[0] not in {item.path for item in excluded}


def test_broken_files_found_in_a_directory_fail_foreign_ones_are_skipped(tmp_path, write_maps):
    directory = tmp_path / "in"
    write_maps(directory, "9000-1901")
    (directory / "manga-9000-1902-MAPS-HYB10-GAU-MILESHC.fits").write_text("not FITS at all")
    Table({"plateifu": ["9000-1901"]}).write(directory / "notes.fits")
    output = tmp_path / "survey.h5"
    summary = extract_survey([directory], output, preprocessor=Preprocessor(size=SIZE))
    assert summary.n_galaxies == 1
    assert [Path(s).name for s in summary.failures["source"]] == [
        "manga-9000-1902-MAPS-HYB10-GAU-MILESHC.fits"
    ]
    assert "no reader recognises" in summary.failures["reason"][0]
    assert [Path(s).name for s in summary.skipped["source"]] == ["notes.fits"]


# -- execution -----------------------------------------------------------------------------


def test_jobs_2_gives_the_same_dataset_as_one_process(tmp_path, survey_files):
    serial, parallel = tmp_path / "serial.h5", tmp_path / "parallel.h5"
    assert run_cli(survey_files["dir"], "-o", serial, "--batch-size", "2") == 1
    assert run_cli(survey_files["dir"], "-o", parallel, "--batch-size", "1", "--jobs", "2") == 1
    assert_same_content(serial, parallel)


def test_dask_local_cluster_gives_the_same_dataset(tmp_path, survey_files):
    distributed = pytest.importorskip("distributed")
    serial, on_dask = tmp_path / "serial.h5", tmp_path / "dask.h5"
    assert run_cli(survey_files["dir"], "-o", serial) == 1
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        code = run_cli(
            survey_files["dir"], "-o", on_dask, "--batch-size", "2",
            "--scheduler", cluster.scheduler_address,
        )  # fmt: skip
    assert code == 1
    assert_same_content(serial, on_dask)


def test_a_second_writer_is_refused(tmp_path, survey_files):
    output = tmp_path / "survey.h5"
    with writer.dataset_lock(writer.parts_dir_for(output)):
        with pytest.raises(DatasetError, match="another `ifsrepr extract` is writing"):
            extract_survey([survey_files["galaxies"][0]], output, progress=False)


def test_output_that_is_not_a_dataset_is_refused(tmp_path, survey_files):
    output = tmp_path / "other.h5"
    with h5py.File(output, "w") as other:
        other["x"] = 1
    with pytest.raises(DatasetError, match="not an ifsrepr survey dataset"):
        extract_survey([survey_files["galaxies"][0]], output, progress=False)


# -- the files on disk ---------------------------------------------------------------------


def test_dataset_moves_with_its_parts_and_consolidates(tmp_path, survey_files, monkeypatch):
    output = tmp_path / "a" / "survey.h5"
    extract_survey(
        survey_files["galaxies"], output, preprocessor=Preprocessor(size=SIZE), progress=False
    )
    reference = dataset_content(output)["arrays"]["flux"]
    moved = tmp_path / "b" / "survey.h5"
    moved.parent.mkdir()
    shutil.move(output, moved)
    shutil.move(writer.parts_dir_for(output), writer.parts_dir_for(moved))
    monkeypatch.chdir(tmp_path)  # relative VDS sources resolve against the index's directory
    np.testing.assert_array_equal(dataset_content(moved)["arrays"]["flux"], reference)

    single = consolidate(moved, tmp_path / "single.h5")
    shutil.rmtree(writer.parts_dir_for(moved))
    with pytest.raises(DatasetError, match="part file.*missing"):
        load_metadata(moved)
    with h5py.File(single, "r") as handle:
        assert not handle["flux"].is_virtual
    np.testing.assert_array_equal(dataset_content(single)["arrays"]["flux"], reference)
    assert len(SurveyDataset(single)) == 4
    with pytest.raises(DatasetError, match="consolidated"):
        extract_survey(survey_files["galaxies"], single, progress=False)


def test_cli_consolidate_option(tmp_path, survey_files):
    output, single = tmp_path / "survey.h5", tmp_path / "single.h5"
    assert run_cli(*survey_files["galaxies"], "-o", output, "--consolidate", single) == 0
    assert read_attrs(single)["consolidated"] is True


# -- the torch dataset ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):
    """128 galaxies in 16 parts, written directly (no reading of survey files)."""
    output = tmp_path_factory.mktemp("synthetic") / "survey.h5"
    pre = Preprocessor(size=32)
    shape = (19, 32, 32)
    parts_dir = writer.parts_dir_for(output)
    parts_dir.mkdir()
    summaries = []
    y, x = np.mgrid[:32, :32]
    for p in range(16):
        records = []
        for k in range(8):
            n = 8 * p + k
            flux = np.broadcast_to(np.exp(-((x - 16) ** 2 + (y - 16) ** 2) / 50.0) * (1 + n), shape)
            records.append(
                writer.GalaxyRecord(
                    flux.astype(np.float32),
                    np.ones(shape, np.float32),
                    np.zeros(shape, bool),
                    {"plateifu": f"1-{n:04d}", "source": f"/data/{n}.fits", "grid": "{}"},
                )
            )
        path = parts_dir / writer.part_name(p, "t")
        writer.write_part(path, records, settings="{}")
        summaries.append(writer.read_part_summary(path))
    pre.partial_fit_arrays(
        np.ones((1, *shape)), np.zeros((1, *shape), bool), "1e-17 erg/(s cm2 arcsec2)"
    )
    settings = {"preprocessing": pre.params_dict()}
    writer.write_index(
        output,
        summaries,
        shape=shape,
        attrs={
            "settings": json.dumps(settings),
            "preprocessor": json.dumps(pre.to_dict()),
            "unit": "1e-17 erg / (s cm2 arcsec2)",
            "complete": True,
        },
    )
    return output


def test_survey_dataset_reads_one_galaxy_at_a_time(synthetic_dataset):
    data = SurveyDataset(synthetic_dataset, indices=np.arange(10, 128))
    assert len(data) == 118
    x, w, index = data[0]
    assert index == 10
    scale = data.preprocessor.scales_[0]  # fitted on ones: 1 to the histogram's 0.25 %
    assert scale == pytest.approx(1.0, rel=0.003)
    assert float(x[0, 16, 16]) == pytest.approx(np.arcsinh(11.0 / scale), rel=1e-6)
    total = 128 * 19 * 32 * 32 * (4 + 4 + 1)
    tracemalloc.start()
    try:
        for i in range(len(data)):
            x, w, index = data[i]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One galaxy (and its float64 temporaries) at a time, never the array.
    assert peak < total / 10
    assert index == 127
    assert float(x[0, 16, 16]) == pytest.approx(np.arcsinh(128.0 / scale), rel=1e-6)
    with pytest.raises(IndexError):
        data[118]


def test_survey_dataset_with_dataloader_workers(synthetic_dataset):
    import torch
    from torch.utils.data import DataLoader

    data = SurveyDataset(synthetic_dataset)
    data[0]  # a handle open in this process must not leak into the workers
    loader = DataLoader(data, batch_size=16, num_workers=2, multiprocessing_context="forkserver")
    seen = []
    for x, w, index in loader:
        assert x.shape == (len(index), 19, 32, 32) and w.dtype == torch.float32
        seen.extend(index.tolist())
    assert sorted(seen) == list(range(128))


def test_survey_dataset_checks_its_preprocessor(synthetic_dataset):
    with pytest.raises(DatasetError, match="size"):
        SurveyDataset(synthetic_dataset, preprocessor=Preprocessor(size=64))
    with pytest.raises(DatasetError, match="indices"):
        SurveyDataset(synthetic_dataset, indices=[0, 500])
    scaled = Preprocessor(size=32, normalisation="none")
    x, w, _ = SurveyDataset(synthetic_dataset, preprocessor=scaled)[3]
    assert float(x[0, 16, 16]) == pytest.approx(4.0)
