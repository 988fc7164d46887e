"""Tests of similarity search: `LatentIndex`, `similar` and ``ifsrepr similar``."""

from __future__ import annotations

import numpy as np
import pytest

import ifsrepr
from ifsrepr.cli import main
from ifsrepr.scoring import (
    DuplicatePlateIFUWarning,
    Encoding,
    LatentIndex,
    ModelMismatchError,
    encode_dataset,
    similar,
)
from ifsrepr.scoring._testing import fit_tiny_encoder, make_tiny_survey


def brute_force(data, query, k, exclude=-1):
    distances = np.sqrt(((data.astype(np.float64) - query) ** 2).sum(axis=1))
    if exclude >= 0:
        distances[exclude] = np.inf
    order = np.argsort(distances, kind="stable")[:k]
    return distances[order], order


def clustered(n, d, rng):
    centres = rng.normal(scale=3.0, size=(8, 5))
    low = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 5))
    return (low @ rng.normal(size=(5, d)) + 0.05 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("kind", ["clustered", "noise"])
def test_queries_are_exact(kind):
    rng = np.random.default_rng(0)
    n, d = 20000, 32
    data = clustered(n, d, rng) if kind == "clustered" else rng.normal(size=(n, d))
    index = LatentIndex(data, n_components=8)
    for row in rng.choice(n, 15, replace=False):
        for k in (1, 10):
            distances, rows = index.query(data[row], k, exclude=[row])
            expected_d, expected_rows = brute_force(data, data[row], k, exclude=row)
            np.testing.assert_allclose(distances[0], expected_d, rtol=1e-5)
            assert set(rows[0]) == set(expected_rows)
    # A new vector, and several queries at once.
    queries = rng.normal(size=(3, d)).astype(np.float32)
    distances, rows = index.query(queries, 5)
    for query, got in zip(queries, rows, strict=True):
        assert set(got) == set(brute_force(data, query, 5)[1])


def test_query_checks_its_arguments():
    data = np.random.default_rng(1).normal(size=(50, 4))
    index = LatentIndex(data)
    assert len(index.components_) == 4  # never more directions than dimensions
    distances, rows = index.query(data[7], 50)
    assert rows[0, 0] == 7 and distances[0, 0] == 0
    with pytest.raises(ValueError, match="k must be between 1 and 49"):
        index.query(data[7], 50, exclude=[7])
    with pytest.raises(ValueError, match="must have 4 values"):
        index.query(np.zeros(3), 2)
    with pytest.raises(ValueError, match="finite"):
        LatentIndex(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="ids"):
        LatentIndex(data, ids=["a"])


def test_query_by_ids():
    data = np.random.default_rng(2).normal(size=(100, 6))
    index = LatentIndex(data, ids=[f"g{i}" for i in range(100)])
    _, rows = index.query_ids(["g3", "g50"], k=4)
    assert 3 not in rows[0] and 50 not in rows[1]
    assert set(rows[0]) == set(brute_force(data, data[3], 4, exclude=3)[1])
    with pytest.raises(KeyError, match="nope"):
        index.query_ids(["nope"])


# -- galaxies --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_tiny_survey(tmp_path_factory.mktemp("similar"), duplicate=True, broken=True)


@pytest.fixture(scope="module")
def encoder(survey):
    return fit_tiny_encoder(survey["dataset"])


@pytest.fixture(scope="module")
def encoding(survey, encoder):
    with pytest.warns(DuplicatePlateIFUWarning):
        return encode_dataset(encoder, survey["dataset"], progress=False)


def test_similar_by_plateifu_leaves_the_galaxy_out(encoding):
    unique = [p for p in encoding.plateifu if list(encoding.plateifu).count(p) == 1]
    query = unique[0]
    table = similar(encoding, query, k=5)
    assert len(table) == 5 and list(table["rank"]) == [1, 2, 3, 4, 5]
    assert query not in table["plateifu"]
    row = encoding.index_of(query)
    expected_d, expected_rows = brute_force(encoding.latents, encoding.latents[row], 5, row)
    np.testing.assert_allclose(table["distance"], expected_d, rtol=1e-5)
    assert list(table["plateifu"]) == list(encoding.plateifu[expected_rows])
    assert table.meta["query"] == query
    assert {"uid", "distance", "source", "redshift"} <= set(table.colnames)
    # The same through a prebuilt index, and by latent vector (then the galaxy is its own nearest).
    index = LatentIndex.from_encoding(encoding)
    assert list(similar(index, query, k=5)["uid"]) == list(table["uid"])
    by_vector = similar(index, encoding.latents[row], k=1)
    assert by_vector["uid"][0] == query and by_vector["distance"][0] == 0


def test_similar_by_line_stack_needs_the_same_model(encoding, encoder, survey):
    stack = ifsrepr.read(survey["files"][5])
    table = similar(encoding, stack, k=3, encoder=encoder)
    # The stack is one of the encoded galaxies: it finds itself first.
    assert table["plateifu"][0] == stack.meta["plateifu"]
    assert table["distance"][0] == pytest.approx(0, abs=1e-3)
    other = fit_tiny_encoder(survey["dataset"], n_components=4)
    with pytest.raises(ModelMismatchError, match="unsaved pca model"):
        similar(encoding, stack, k=3, encoder=other)


def test_repeated_and_missing_plateifus(encoding):
    repeated = [p for p in set(encoding.plateifu) if list(encoding.plateifu).count(p) == 2][0]
    with pytest.raises(KeyError, match=f"{repeated}#2"):
        similar(encoding, repeated, k=3)
    assert len(similar(encoding, f"{repeated}#2", k=3)) == 3
    with pytest.raises(KeyError, match="was not encoded"):
        similar(encoding, "9999-1901", k=3)
    with pytest.raises(KeyError, match="is not in"):
        similar(encoding, "1-2", k=3)


def test_similar_command(encoding, tmp_path, capsys):
    path = encoding.save(tmp_path / "encoded.h5")
    query = encoding.uid[2]
    assert main(["similar", str(query), "--encoding", str(path), "-k", "4",
                 "-o", str(tmp_path / "near.ecsv")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"4 galaxies nearest to {query}" in out
    expected = similar(Encoding.load(path), str(query), k=4)
    for uid in expected["uid"]:
        assert uid in out
    assert (tmp_path / "near.ecsv").is_file()
    assert main(["similar", "1-2", "--encoding", str(path)]) == 1
    assert "1-2 is not in" in capsys.readouterr().err
    assert main(["similar", "9999-1901", "--encoding", str(path)]) == 1
    assert "was not encoded" in capsys.readouterr().err
