"""Similarity search in latent space: which galaxies look like this one.

`LatentIndex` answers exact k-nearest-neighbour queries (Euclidean distance
between latent vectors) over millions of galaxies in milliseconds, on a CPU,
with nothing beyond NumPy.

How: the index is built once by projecting every latent vector on the
leading principal components of the set (``n_components``, 16 by default).
An orthogonal projection never lengthens a vector, so the distance between
two projections is a *lower bound* on the distance between the latents. A
query first computes the cheap projected distance to every stored galaxy
(``n * n_components`` multiply-adds, a few milliseconds for a million),
then the exact distance for only the few hundred best candidates, and stops
as soon as the k-th exact distance found is smaller than the lower bound of
every candidate not yet checked. The answer is therefore exact, not
approximate; the pruning only decides how much work it takes. It is most
effective when the latents have most of their variance in a few directions,
as learned representations do; when it cannot certify the answer from a
sixteenth of the set, the query falls back to a plain scan (one
matrix-vector product over all latents, then exact distances for a
shortlist), so a query never costs much more than brute force.

`similar` is the user-facing function: the query is a plate-IFU of the
encoding, a latent vector, or a `~ifsrepr.LineStack` (encoded with the
encoder, which must be the one that made the encoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from ..exceptions import IFSReprError
from ..linestack import LineStack
from .encoding import Encoding, ModelMismatchError, describe_model, model_identity

__all__ = ["LatentIndex", "similar"]


class LatentIndex:
    """An exact k-nearest-neighbour index of latent vectors.

    Parameters
    ----------
    latents : array
        ``(n, d)`` latent vectors.
    ids : sequence of str, optional
        A label per vector (uids or plate-IFUs) for `query_ids`.
    n_components : int
        Dimension of the projection used to prune candidates (at most ``d``).
    max_fit : int
        Vectors used to find the principal directions (a random subset
        above this; the bound stays exact whatever directions are used).
    random_state : int
        Seed of that subset.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.scoring import LatentIndex
    >>> latents = np.random.default_rng(0).normal(size=(1000, 32))
    >>> index = LatentIndex(latents)
    >>> distances, rows = index.query(latents[:2], k=3)
    >>> rows[:, 0].tolist()  # every vector is its own nearest neighbour
    [0, 1]
    """

    def __init__(
        self,
        latents: np.ndarray,
        ids: Sequence[str] | None = None,
        *,
        n_components: int = 16,
        max_fit: int = 20000,
        random_state: int = 0,
    ) -> None:
        data = np.ascontiguousarray(latents, dtype=np.float32)
        if data.ndim != 2 or len(data) == 0:
            raise ValueError(f"latents must be a non-empty (n, d) array, got {data.shape}")
        if not np.isfinite(data).all():
            raise ValueError("latents must be finite")
        if n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}")
        self.latents = data
        self.ids = None if ids is None else np.asarray(ids, dtype=str)
        if self.ids is not None and len(self.ids) != len(data):
            raise ValueError(f"{len(self.ids)} ids for {len(data)} latents")
        n, d = data.shape
        self.mean_ = data.mean(axis=0, dtype=np.float64).astype(np.float32)
        rng = np.random.default_rng(random_state)
        sample = data if n <= max_fit else data[rng.choice(n, max_fit, replace=False)]
        centred = (sample - self.mean_).astype(np.float64)
        # Rows of vt are orthonormal, which is all the lower bound needs.
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        self.components_ = np.ascontiguousarray(vt[: min(n_components, d)], dtype=np.float32)
        self.projected_ = (data - self.mean_) @ self.components_.T
        self.projected_norms_ = np.einsum("ij,ij->i", self.projected_, self.projected_)
        self.norms_ = np.einsum("ij,ij->i", data, data)

    def __len__(self) -> int:
        return len(self.latents)

    def __repr__(self) -> str:
        return (
            f"<LatentIndex of {len(self)} vectors, d={self.latents.shape[1]}, "
            f"pruning in {len(self.components_)} dimensions>"
        )

    def query(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        exclude: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query, nearest first.

        Parameters
        ----------
        vectors : array
            ``(d,)`` or ``(m, d)`` query vectors.
        k : int
            Neighbours per query (at most the number stored).
        exclude : sequence of int, optional
            One stored row per query to leave out (the query galaxy itself),
            or -1 for none.

        Returns
        -------
        distances, rows : numpy.ndarray
            ``(m, k)`` Euclidean distances (float64) and row numbers.
        """
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.latents.shape[1]:
            raise ValueError(
                f"query vectors must have {self.latents.shape[1]} values, got shape "
                f"{np.shape(vectors)}"
            )
        skip = np.full(len(queries), -1) if exclude is None else np.asarray(exclude).reshape(-1)
        if len(skip) != len(queries):
            raise ValueError(f"exclude has {len(skip)} entries for {len(queries)} queries")
        available = len(self) - int(np.any(skip >= 0))
        if not 1 <= k <= available:
            raise ValueError(f"k must be between 1 and {available}, got {k}")
        out_d = np.empty((len(queries), k))
        out_i = np.empty((len(queries), k), dtype=np.int64)
        for j, (query, excluded) in enumerate(zip(queries, skip, strict=True)):
            out_d[j], out_i[j] = self._query_one(query, k, int(excluded))
        return out_d, out_i

    def _query_one(self, query: np.ndarray, k: int, exclude: int) -> tuple[np.ndarray, np.ndarray]:
        projected = (query - self.mean_) @ self.components_.T
        # Squared lower bounds ||P q - P x||^2 by the expansion. Float32
        # round-off in it is at most ~1e-6 of ||Pq||^2 + ||Px||^2; taking off
        # a hundred times that keeps the bound a bound, so rounding can never
        # prune a true neighbour (it only costs a few extra exact distances).
        q_norm = float(projected @ projected)
        bound = self.projected_norms_ - 2.0 * (self.projected_ @ projected) + q_norm
        bound -= 1e-4 * (self.projected_norms_ + q_norm)
        np.maximum(bound, 0.0, out=bound)
        if exclude >= 0:
            bound[exclude] = np.inf
        n = len(bound)
        n_candidates = max(4 * k, 256)
        # Past a sixteenth of the set, checking candidates costs more than a
        # plain scan (latents without a few dominant directions get there).
        while n_candidates < n // 16:
            order = np.argpartition(bound, n_candidates)
            candidates = order[:n_candidates]
            next_bound = float(bound[order[n_candidates]])
            distances, best = self._exact(query, candidates, k)
            # Every row outside the candidates is at least next_bound away.
            if distances[-1] ** 2 <= next_bound:
                return distances, best
            n_candidates *= 8
        # The scan: squared distances by the expansion (one matrix-vector
        # product), then the exact ones for a generous shortlist, which
        # absorbs the expansion's round-off.
        approximate = self.norms_ - 2.0 * (self.latents @ query) + float(query @ query)
        if exclude >= 0:
            approximate[exclude] = np.inf
        shortlist = min(n, max(4 * k, 256))
        candidates = np.argpartition(approximate, shortlist - 1)[:shortlist]
        candidates = candidates[np.isfinite(approximate[candidates])]
        return self._exact(query, candidates, k)

    def _exact(
        self, query: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest of ``candidates`` by exact distance: (distances, rows)."""
        difference = self.latents[candidates] - query
        exact = np.einsum("ij,ij->i", difference, difference, dtype=np.float64)
        best = np.argsort(exact, kind="stable")[:k]
        return np.sqrt(exact[best]), candidates[best]

    def query_ids(self, ids: Sequence[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of stored vectors given by label, each excluding itself."""
        if self.ids is None:
            raise ValueError("this index was built without ids")
        rows = []
        for key in ids:
            matches = np.flatnonzero(self.ids == key)
            if len(matches) != 1:
                raise KeyError(f"{key}: {len(matches)} stored vectors carry this id")
            rows.append(int(matches[0]))
        return self.query(self.latents[rows], k, exclude=rows)

    @classmethod
    def from_encoding(cls, encoding: Encoding, **kwargs: Any) -> LatentIndex:
        """An index of an encoding's latents, labelled by its uids."""
        index = cls(encoding.latents, encoding.uid, **kwargs)
        index.encoding = encoding
        return index


def similar(
    encoding_or_index: Encoding | LatentIndex,
    query: str | np.ndarray | LineStack,
    k: int = 10,
    *,
    encoder: Any = None,
) -> Table:
    """The ``k`` galaxies nearest to a query in latent space.

    Parameters
    ----------
    encoding_or_index : Encoding or LatentIndex
        The galaxies to search (an index built by `LatentIndex.from_encoding`
        is reused; an `Encoding` is indexed on the spot).
    query : str, array or LineStack
        A plate-IFU (or uid) of the encoding (the galaxy itself is left out of
        the answer), a latent vector, or a line stack to encode with
        ``encoder``.
    k : int
        How many neighbours.
    encoder : IFSEncoder, optional
        Needed for a `~ifsrepr.LineStack` query; it must be the model that
        made the encoding.

    Returns
    -------
    astropy.table.Table
        ``rank`` (1 = nearest), ``plateifu``, ``uid``, ``distance``,
        ``source`` and ``redshift``, nearest first. ``meta['query']`` names
        the query.

    Raises
    ------
    KeyError
        For a plate-IFU that is not in the encoding (or not encoded).
    ModelMismatchError
        When ``encoder`` is not the model that made the encoding.

    Examples
    --------
    An encoding of 30 galaxies made up for the example, in which the second
    and third lie right next to the first in latent space:

    >>> import numpy as np
    >>> from ifsrepr.scoring import Encoding, similar
    >>> latents = np.random.default_rng(0).normal(size=(30, 8))
    >>> latents[1], latents[2] = latents[0] + 0.01, latents[0] - 0.02
    >>> encoding = Encoding(
    ...     plateifu=[f"9000-{12701 + i}" for i in range(30)], latents=latents,
    ...     error=np.ones(30), line_errors=np.ones((30, 1)), n_good=np.full(30, 1024),
    ...     line_names=["Ha-6564"], model_name="demo", model_sha256="0" * 64)
    >>> neighbours = similar(encoding, "9000-12701", k=3)
    >>> neighbours["rank"].tolist(), neighbours["plateifu"][:2].tolist()
    ([1, 2, 3], ['9000-12702', '9000-12703'])
    >>> neighbours.meta["query"]
    '9000-12701'
    """
    if isinstance(encoding_or_index, LatentIndex):
        index = encoding_or_index
        encoding = getattr(index, "encoding", None)
    elif isinstance(encoding_or_index, Encoding):
        encoding = encoding_or_index
        index = LatentIndex.from_encoding(encoding)
    else:
        raise TypeError("similar() searches an Encoding or a LatentIndex")

    exclude = -1
    if isinstance(query, str):
        if encoding is None:
            raise IFSReprError("a plate-IFU query needs an index built from an Encoding")
        exclude = encoding.index_of(query)
        vector = encoding.latents[exclude]
        label = str(encoding.uid[exclude])
    elif isinstance(query, LineStack):
        if encoder is None:
            raise IFSReprError("a LineStack query needs the encoder (encoder=...)")
        if encoding is not None:
            name, sha256 = model_identity(encoder)
            if sha256 != encoding.model_sha256:
                raise ModelMismatchError(
                    f"the query is encoded by {describe_model(name, sha256)} but the galaxies "
                    f"searched were encoded by "
                    f"{describe_model(encoding.model_name, encoding.model_sha256)}"
                )
        vector = encoder.encode([query])[0]
        label = query.name
    else:
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        label = "a latent vector"
    distances, rows = index.query(vector, k, exclude=[exclude])
    rows, distances = rows[0], distances[0]
    table = Table()
    table["rank"] = np.arange(1, len(rows) + 1)
    if encoding is not None:
        table["plateifu"] = encoding.plateifu[rows]
        table["uid"] = encoding.uid[rows]
    elif index.ids is not None:
        table["uid"] = index.ids[rows]
    table["row"] = rows
    table["distance"] = distances
    table["distance"].format = ".4g"
    if encoding is not None:
        table["source"] = encoding.galaxy_source[rows]
        table["redshift"] = encoding.redshift[rows]
        table["redshift"].format = ".5f"
    table.meta["query"] = label
    return table
