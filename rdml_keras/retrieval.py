"""Person re-identification evaluation: mAP and CMC under the Market-1501 protocol,
the peers' embeddings, and a callback that reports both during training.

`evaluate` ranks a gallery by distance to every query and scores the ranking,
in NumPy, as the standard re-identification evaluations do (the Market-1501
Matlab code the DML paper used, torchreid's `eval_market1501`):

- gallery entries of the query's identity *and* camera are ignored (the same
  person seen by the same camera is too easy a match), as are junk images
  (identity -1); distractors (identity 0, Market-1501's `0000`) stay in the
  ranking and count as wrong matches;
- a query with no valid gallery match is left out of every figure, and
  counted (`num_skipped`);
- CMC(k) (`rank{k}`) is the fraction of queries with a correct match among
  the first k kept entries; AP is the mean of the precision at each correct
  match, and mAP its mean over the queries.

Ties in distance keep gallery order (a stable sort), as Matlab's `sort` does
in the Market-1501 evaluation code. The distance matrix is computed and ranked
in chunks of queries: memory grows with `chunk_size × num_gallery`, not with
the number of queries (Market-1501's full 3,368 × 19,732 matrix is never held).

Example:

>>> import numpy as np
>>> gallery = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.06]])
>>> result = evaluate(np.array([[1.0, 0.05]]), [7], [1], gallery, [7, 3, 7], [2, 2, 1])
>>> result["rank1"], result["mAP"], result["num_queries"]
(0.0, 0.5, 1)

The gallery entry of identity 7 from camera 1 (the query's camera) is ignored;
the nearest kept entry is identity 3, so rank-1 misses and the one correct match
comes second (AP = 1/2).

A peer's embedding is its pre-logits features, the input of its last `Dense`
layer by default (`embedding_model`); the cohort's is the concatenation of the
peers' (`extract_features`), as the official DML evaluation (`eval_models.py`)
concatenates the peers' `PreLogits`. `RetrievalEvaluation` adds per-peer and
cohort mAP and rank-k to the epoch logs.
"""

import math

import keras
import numpy as np

from rdml_keras import checks
from rdml_keras.peer_outputs import _output_layer

METRICS = ("euclidean", "cosine")
AVERAGE_PRECISIONS = ("hits", "trapezoid")
JUNK = -1  # Market-1501 / DukeMTMC-reID: junk images, ignored in the ranking
DISTRACTOR = 0  # `0000`: distractors, kept in the ranking as wrong matches


def evaluate(
    query_features,
    query_ids,
    query_cameras,
    gallery_features,
    gallery_ids,
    gallery_cameras,
    metric="euclidean",
    ranks=(1, 5, 10),
    chunk_size=128,
    average_precision="hits",
):
    """mAP and CMC of ranking `gallery` for each query, Market-1501 protocol.

    Args:
        query_features: `(num_queries, dim)` features.
        query_ids: `(num_queries,)` integer identities.
        query_cameras: `(num_queries,)` integer camera ids.
        gallery_features: `(num_gallery, dim)` features.
        gallery_ids: `(num_gallery,)` integer identities; -1 marks junk
            (ignored), 0 distractors (wrong matches).
        gallery_cameras: `(num_gallery,)` integer camera ids.
        metric: `"euclidean"` (squared Euclidean distance, which ranks as the
            Euclidean one does) or `"cosine"` (1 − cosine similarity; a zero
            feature vector is at distance 1 from everything).
        ranks: the CMC ranks k >= 1 to report as `rank{k}`. CMC is
            cumulative: a k beyond the gallery size counts every evaluated
            query as found.
        chunk_size: queries ranked at once; memory grows as
            `chunk_size × num_gallery`.
        average_precision: `"hits"` (the mean of the precision at each
            correct match: torchreid, fast-reid) or `"trapezoid"` (the
            Market-1501 Matlab code's `compute_AP.m`, which the DML paper's
            figures come from: the mean over correct matches of the average
            of the precision just before and at the match).

    Returns:
        A dict with `mAP` and `rank{k}` for each k (fractions in [0, 1], over
        the evaluated queries), `num_queries` (the number evaluated) and
        `num_skipped` (queries without a valid gallery match).

    Raises:
        ValueError: on inconsistent shapes or lengths, non-integer ids or
            cameras, non-finite features, an unknown metric or a bad rank,
            before any work; and when no query has a valid gallery match.

    Example:

    ```python
    result = evaluate(query_x, query_ids, query_cams, gallery_x, gallery_ids, gallery_cams)
    print(f"mAP {result['mAP']:.1%}, rank-1 {result['rank1']:.1%}")
    ```
    """
    query = _features("query_features", query_features)
    gallery = _features("gallery_features", gallery_features)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"`query_features` and `gallery_features` must have the same feature size; "
            f"received {query.shape[1]} and {gallery.shape[1]}."
        )
    query_ids = _labels("query_ids", query_ids, len(query), "query_features")
    query_cameras = _labels("query_cameras", query_cameras, len(query), "query_features")
    gallery_ids = _labels("gallery_ids", gallery_ids, len(gallery), "gallery_features")
    gallery_cameras = _labels("gallery_cameras", gallery_cameras, len(gallery), "gallery_features")
    checks.one_of("metric", metric, METRICS)
    checks.one_of("average_precision", average_precision, AVERAGE_PRECISIONS)
    ranks = _ranks(ranks)
    chunk_size = checks.integer("chunk_size", chunk_size, minimum=1)

    if metric == "cosine":
        query, gallery = _unit_rows(query), _unit_rows(gallery)
    gallery_sq_norms = np.sum(gallery**2, axis=1)
    # Per-query APs, summed once at the end: the same sum whatever the chunks.
    aps, hit_counts = [], np.zeros(len(ranks), np.int64)
    for start in range(0, len(query), chunk_size):
        block = query[start : start + chunk_size]
        if metric == "cosine":
            distances = 1.0 - block @ gallery.T
        else:  # squared: ||q||² + ||g||² − 2 q·g
            distances = np.sum(block**2, axis=1)[:, None] + gallery_sq_norms
            distances -= 2.0 * block @ gallery.T
        ap, first_hit = _score_chunk(
            distances,
            query_ids[start : start + chunk_size],
            query_cameras[start : start + chunk_size],
            gallery_ids,
            gallery_cameras,
            average_precision,
        )
        aps.append(ap)
        hit_counts += np.sum(first_hit[:, None] <= np.asarray(ranks)[None, :], axis=0)
    aps = np.concatenate(aps)
    evaluated = len(aps)
    skipped = len(query) - evaluated
    if evaluated == 0:
        raise ValueError(
            f"No query has a valid gallery match (all {len(query)} skipped): every "
            f"gallery entry of a query's identity is junk (id {JUNK}) or from the "
            f"query's own camera. Check that the gallery holds the queries' identities."
        )
    result = {"mAP": float(np.mean(aps))}
    result.update({f"rank{k}": int(n) / evaluated for k, n in zip(ranks, hit_counts)})
    result.update(num_queries=evaluated, num_skipped=skipped)
    return result


def _score_chunk(distances, query_ids, query_cameras, gallery_ids, gallery_cameras, mode):
    """(AP, rank of the first correct match) of each query with a valid match.

    Every array is `(queries, gallery)` in ranked order. Ignored entries stay
    in place but are not counted: `position` is an entry's 1-based rank among
    the kept entries, `found` the number of correct matches up to it.
    """
    order = np.argsort(distances, axis=1, kind="stable")
    ids, cameras = gallery_ids[order], gallery_cameras[order]
    same_id = ids == query_ids[:, None]
    kept = (ids != JUNK) & ~(same_id & (cameras == query_cameras[:, None]))
    hits = same_id & kept
    del order, ids, cameras, same_id
    position = np.cumsum(kept, axis=1, dtype=np.int32)
    found = np.cumsum(hits, axis=1, dtype=np.int32)
    num_hits = found[:, -1]
    valid = num_hits > 0
    hits, position, found, num_hits = hits[valid], position[valid], found[valid], num_hits[valid]
    # At a hit, position >= found >= 1, so the divisions are safe there.
    precision = np.where(hits, found / np.maximum(position, 1), 0.0)
    if mode == "trapezoid":
        # The precision at the kept entry just before the hit; 1 at rank 1.
        before = np.where(position > 1, (found - 1) / np.maximum(position - 1, 1), 1.0)
        precision = np.where(hits, (before + precision) / 2.0, 0.0)
    ap = np.sum(precision, axis=1) / num_hits
    first_hit = position[np.arange(len(hits)), np.argmax(hits, axis=1)]
    return ap, first_hit


def _unit_rows(features):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def _features(name, value):
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        checks.fail(name, f"array of shape {array.shape}", "a non-empty 2-D array (examples, dim)")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        checks.fail(name, f"array of dtype {array.dtype}", "a real-valued array")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        row = int(np.argwhere(~np.isfinite(array))[0, 0])
        checks.fail(name, f"array with a non-finite value in row {row}", "finite")
    return array


def _labels(name, value, length, features_name):
    array = np.asarray(value)
    if array.ndim != 1 or len(array) != length:
        checks.fail(
            name,
            f"array of shape {array.shape}",
            f"a 1-D array with one entry per row of `{features_name}` ({length})",
        )
    if not np.issubdtype(array.dtype, np.integer):
        checks.fail(name, f"array of dtype {array.dtype}", "an integer array")
    return array.astype(np.int64)


def _ranks(ranks):
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__iter__"):
        checks.fail("ranks", ranks, "a sequence of integers >= 1")
    ranks = tuple(ranks)
    bad = [k for k in ranks if not checks.is_integer(k) or k < 1]
    if not ranks or bad or len(set(ranks)) != len(ranks):
        checks.fail("ranks", ranks, "a non-empty sequence of distinct integers >= 1")
    return tuple(int(k) for k in ranks)


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


def embedding_model(peer, layer=None):
    """A model from `peer`'s inputs to its embedding, sharing `peer`'s weights.

    Args:
        peer: a Sequential or Functional `keras.Model` that outputs logits.
        layer: None for the pre-logits features, the input of the `Dense`
            layer that produces the logits; or a layer (or its name) of
            `peer` whose output is the embedding.

    Example:

    >>> import keras
    >>> peer = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
    ...                          keras.layers.Dense(2, name="logits")])
    >>> embedding_model(peer).output_shape
    (None, 3)
    """
    if not isinstance(peer, keras.Model):
        checks.fail("peer", peer, "a keras.Model")
    if layer is None:
        head = _output_layer(peer)
        if not isinstance(head, keras.layers.Dense):
            found = "no layer graph (a subclassed model)" if head is None else repr(head.name)
            raise ValueError(
                f"Cannot find the pre-logits features of model {peer.name!r}: its output "
                f"is produced by {found}, not by a Dense layer. Pass `layer=` (a layer "
                f"of the model, or its name) whose output is the embedding."
            )
        features = head.input
    else:
        if isinstance(layer, str):
            names = [candidate.name for candidate in peer.layers]
            if layer not in names:
                checks.fail("layer", layer, f"the name of a layer of model {peer.name!r}: {names}")
            layer = peer.get_layer(layer)
        elif not any(layer is candidate for candidate in peer.layers):
            checks.fail("layer", layer, f"a layer of model {peer.name!r}, or its name")
        features = layer.output
    return keras.Model(peer.inputs, features, name=f"{peer.name}_embedding")


def extract_features(peers, x, normalize=True, layer=None, batch_size=None):
    """Each peer's embedding of `x`, and the cohort's concatenation.

    Args:
        peers: a `MutualLearner` (its peers), a list of peers, or one model.
        x: inputs, as `keras.Model.predict` takes them (arrays, a dataset).
        normalize: L2-normalise each peer's features; the cohort's is then
            the concatenation divided by √K, also of unit length, so every
            peer weighs the same. `False` gives the raw features and their
            raw concatenation (the official DML `eval_models.py`).
        layer: as in `embedding_model`, for every peer.
        batch_size: passed to `predict`.

    Returns:
        `(per_peer, cohort)`: a list of K float32 arrays `(examples, dim_k)`
        and one `(examples, Σ dim_k)`.

    Example:

    ```python
    (peer0, peer1), cohort = extract_features(learner, query_images)
    ```
    """
    models = [embedding_model(peer, layer) for peer in _peer_list(peers)]
    return _embed(models, x, _flag("normalize", normalize), batch_size)


def _embed(models, x, normalize, batch_size):
    per_peer = []
    for model in models:
        features = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)
        features = features.reshape(len(features), -1)
        per_peer.append(_unit_rows(features).astype(np.float32) if normalize else features)
    cohort = np.concatenate(per_peer, axis=1)
    if normalize:
        cohort /= np.float32(math.sqrt(len(per_peer)))
    return per_peer, cohort


def _peer_list(peers):
    if isinstance(peers, keras.Model):
        return list(getattr(peers, "peers", [peers]))
    if (
        isinstance(peers, (list, tuple))
        and peers
        and all(isinstance(p, keras.Model) for p in peers)
    ):
        return list(peers)
    checks.fail("peers", peers, "a MutualLearner, a keras.Model or a non-empty list of them")


def _flag(name, value):
    if not isinstance(value, bool):
        checks.fail(name, value, "True or False")
    return value


# --------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------


class RetrievalEvaluation(keras.callbacks.Callback):
    """Per-peer and cohort mAP and CMC on a query/gallery split, at epoch ends.

    Every `every` epochs it embeds the query and gallery images with each
    peer (`embedding_model`), ranks the gallery (`evaluate`) and adds to the
    epoch's logs `peer{k}_mAP`, `peer{k}_rank{r}` for each peer k and rank r,
    and `cohort_mAP`, `cohort_rank{r}` for the concatenated embedding (when
    there are two peers or more). Callbacks after it see the keys: `fit`'s
    History, and TensorBoard when it is listed after this callback. As with
    `validation_freq`, epochs that are not evaluated have no such keys.

    Args:
        query: `(x, ids, cameras)` of the query images; `x` as `predict`
            takes it.
        gallery: `(x, ids, cameras)` of the gallery images.
        every: evaluate every this many epochs (epochs `every`, `2·every`, …).
        metric: as in `evaluate`.
        ranks: the CMC ranks to log, as in `evaluate`.
        normalize: as in `extract_features`.
        layer: as in `embedding_model`.
        batch_size: passed to `predict`.
        chunk_size: as in `evaluate`.
        average_precision: as in `evaluate`.
        prefix: put before every key (e.g. `"val_"`, which TensorBoard then
            files under validation).

    Example:

    ```python
    callbacks = [
        RetrievalEvaluation(query=(q_x, q_ids, q_cams), gallery=(g_x, g_ids, g_cams)),
        keras.callbacks.TensorBoard("logs"),  # after it: it logs cohort_mAP, …
    ]
    history = learner.fit(train_ds, epochs=10, callbacks=callbacks)
    history.history["cohort_rank1"]
    ```
    """

    def __init__(
        self,
        query,
        gallery,
        every=1,
        metric="euclidean",
        ranks=(1,),
        normalize=True,
        layer=None,
        batch_size=None,
        chunk_size=128,
        average_precision="hits",
        prefix="",
    ):
        super().__init__()
        self.query = _split("query", query)
        self.gallery = _split("gallery", gallery)
        self.every = checks.integer("every", every, minimum=1)
        self.metric = checks.one_of("metric", metric, METRICS)
        self.ranks = _ranks(ranks)
        self.normalize = _flag("normalize", normalize)
        self.layer = layer
        self.batch_size = batch_size
        self.chunk_size = checks.integer("chunk_size", chunk_size, minimum=1)
        self.average_precision = checks.one_of(
            "average_precision", average_precision, AVERAGE_PRECISIONS
        )
        if not isinstance(prefix, str):
            checks.fail("prefix", prefix, "a string")
        self.prefix = prefix
        self._models = None

    def on_train_begin(self, logs=None):
        # Built once: each embedding model's predict function is traced once.
        self._models = [embedding_model(peer, self.layer) for peer in _peer_list(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if logs is not None:
            logs.update(self.results())

    def results(self):
        """The keys and values the callback adds to the logs, computed now."""
        if self._models is None:
            self.on_train_begin()
        query_x, query_ids, query_cameras = self.query
        gallery_x, gallery_ids, gallery_cameras = self.gallery
        query_peers, query_cohort = _embed(self._models, query_x, self.normalize, self.batch_size)
        gallery_peers, gallery_cohort = _embed(
            self._models, gallery_x, self.normalize, self.batch_size
        )
        pairs = [(f"peer{k}", q, g) for k, (q, g) in enumerate(zip(query_peers, gallery_peers))]
        if len(self._models) > 1:
            pairs.append(("cohort", query_cohort, gallery_cohort))
        values = {}
        for name, query_features, gallery_features in pairs:
            result = evaluate(
                query_features,
                query_ids,
                query_cameras,
                gallery_features,
                gallery_ids,
                gallery_cameras,
                metric=self.metric,
                ranks=self.ranks,
                chunk_size=self.chunk_size,
                average_precision=self.average_precision,
            )
            for key in ["mAP"] + [f"rank{k}" for k in self.ranks]:
                values[f"{self.prefix}{name}_{key}"] = result[key]
        return values


def _split(name, split):
    """`(x, ids, cameras)` with ids and cameras checked against each other (and x)."""
    if not isinstance(split, (tuple, list)) or len(split) != 3:
        checks.fail(name, split, "a tuple (x, ids, cameras)")
    x, ids, cameras = split
    ids = np.asarray(ids)
    length = len(ids) if ids.ndim == 1 else -1
    if hasattr(x, "shape") and hasattr(x, "__len__"):
        length = len(x)
    ids = _labels(f"{name} ids", ids, length, f"{name} x")
    cameras = _labels(f"{name} cameras", cameras, length, f"{name} x")
    return x, ids, cameras
