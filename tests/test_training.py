"""Training: exact resume, checkpoint fallback, metrics, the galaxy split, torchrun with gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import TINY, galaxy_variants

import ifsrepr
from ifsrepr.dataset import extract_survey
from ifsrepr.encoder import IFSEncoder
from ifsrepr.training import split_by_galaxy

pytestmark = pytest.mark.filterwarnings("ignore::ifsrepr.preprocess.MissingLinesWarning")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A 10-galaxy survey dataset written by ``extract_survey`` from line-stack files."""
    root = tmp_path_factory.mktemp("survey")
    maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    paths = []
    for stack in galaxy_variants(maps, 10, seed=3):
        path = root / f"{stack.name}.fits"
        stack.write(path)
        paths.append(path)
    output = root / "survey.h5"
    extract_survey(paths, output, preprocessor=_grid(), progress=False)
    return output


def _grid():
    from ifsrepr.preprocess import Preprocessor

    return Preprocessor("manga19", grid="reff", size=16, n_reff=2.0)


def _encoder():
    return IFSEncoder("convlstm", device="cpu", **TINY)


def _state(encoder):
    return {k: v.clone() for k, v in encoder.network_.state_dict().items()}


def test_resume_continues_exactly(survey, tmp_path):
    straight = _encoder().fit(survey, epochs=4, batch_size=3, seed=5, patience=10,
                              output_dir=tmp_path / "a", progress=False)  # fmt: skip
    # The same run, stopped after two epochs and resumed.
    _encoder().fit(survey, epochs=2, batch_size=3, seed=5, patience=10,
                   output_dir=tmp_path / "b", progress=False)  # fmt: skip
    resumed = _encoder().fit(survey, epochs=4, batch_size=3, seed=5, patience=10,
                             output_dir=tmp_path / "b", resume=True, progress=False)  # fmt: skip
    for name, value in _state(straight).items():
        torch.testing.assert_close(_state(resumed)[name], value, rtol=0, atol=0)
    assert [r["train_loss"] for r in resumed.history_] == [
        r["train_loss"] for r in straight.history_
    ]
    with open(tmp_path / "b" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "validation_loss", "galaxies_per_second"} <= set(rows[0])
    # Only the two newest checkpoints are kept, and the model is saved.
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*.pt")) == [
        "checkpoint-epoch0002.pt",
        "checkpoint-epoch0003.pt",
    ]
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_corrupt_checkpoint_falls_back_to_the_previous_one(survey, tmp_path):
    _encoder().fit(survey, epochs=3, batch_size=3, seed=1, output_dir=tmp_path, progress=False)
    newest = tmp_path / "checkpoint-epoch0002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a crash mid-copy, a full disk...
    with pytest.warns(RuntimeWarning, match="checkpoint-epoch0002.pt.*unreadable"):
        resumed = _encoder().fit(survey, epochs=3, batch_size=3, seed=1, output_dir=tmp_path,
                                 resume=True, progress=False)  # fmt: skip
    # It restarted after epoch 2 (the last good checkpoint) and redid epoch 3.
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3]


def test_resume_needs_an_output_directory(survey):
    with pytest.raises(ifsrepr.IFSReprError, match="output directory"):
        _encoder().fit(survey, epochs=1, resume=True, progress=False)


def test_early_stopping(survey, tmp_path):
    # A learning rate this small cannot improve the validation loss for long.
    encoder = _encoder().fit(survey, epochs=30, batch_size=5, learning_rate=1e-9, patience=2,
                             progress=False)  # fmt: skip
    assert len(encoder.history_) < 30


def test_split_keeps_each_galaxy_on_one_side():
    groups = ["1-1", "1-1", "1-2", "1-3", "1-3", "1-4", "1-5", "1-6"]
    train, validation = split_by_galaxy(len(groups), 0.3, seed=2, groups=groups)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(len(groups)))
    assert not {groups[i] for i in train} & {groups[i] for i in validation}
    again = split_by_galaxy(len(groups), 0.3, seed=2, groups=groups)
    assert np.array_equal(again[0], train)


@pytest.mark.slow
def test_torchrun_two_processes_on_gloo(survey, tmp_path):
    """Data-parallel training as a user launches it: torchrun, 2 CPU processes."""
    output = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "ifsrepr", "train", str(survey), "-o", str(output), "--epochs", "2",
        "--batch-size", "2", "--quiet", "--device", "cpu",
        "--option", "hidden_channels=4", "--option", "frontend_channels=[4, 4]",
        "--option", "latent_dim=8",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    config = (output / "config.json").read_text()
    assert '"world_size": 2' in config
    with open(output / "metrics.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 2
    model = IFSEncoder.from_pretrained(output, device="cpu")
    assert model.network_.latent_dim == 8
    assert Path(output / "checkpoint-epoch0001.pt").is_file()
    # One report, from the first process, not one per process.
    assert result.stdout.count("model written to") == 1
    assert result.stderr.count("trained 2 epochs") == 1


def test_fresh_run_into_an_old_runs_directory_is_refused(survey, tmp_path):
    _encoder().fit(survey, epochs=1, batch_size=5, output_dir=tmp_path, progress=False)
    with pytest.raises(ifsrepr.IFSReprError, match="earlier run"):
        _encoder().fit(survey, epochs=1, batch_size=5, output_dir=tmp_path, progress=False)
