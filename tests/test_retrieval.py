"""`rdml_keras.retrieval`: `evaluate` against two standard re-identification
evaluations, transcribed below, and small cases worked out by hand; the peers'
embeddings against their layers computed in NumPy; the callback's logs against
`evaluate` on those embeddings (the Keras tests on every backend)."""

import tracemalloc

import keras
import numpy as np
import pytest
from autodiff import to_numpy
from scipy.spatial.distance import cdist

from rdml_keras import MutualLearner
from rdml_keras.models import build_peer
from rdml_keras.retrieval import RetrievalEvaluation
from rdml_keras.retrieval import embedding_model
from rdml_keras.retrieval import evaluate
from rdml_keras.retrieval import extract_features

# ------------------------------------------------------------ references


def torchreid_eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Transcribed from KaiyangZhou/deep-person-reid, torchreid/metrics/rank.py,
    `eval_market1501`, commit f8cd150fdf77e8d9e1ed143b7f308c2c609ded50 (only the
    small-gallery print is left out). Its AP is the mean of the precision at
    each hit. Its dataset loader drops junk images (pid -1) before this runs
    (torchreid/data/datasets/image/market1501.py), so callers pass a gallery
    without them. Its `np.argsort` is not stable: use it on data without ties.
    """
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc = []
    all_AP = []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid = q_pids[q_idx]
        q_camid = q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_valid_q += 1.0
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        AP = tmp_cmc.sum() / num_rel
        all_AP.append(AP)
    assert num_valid_q > 0, "Error: all query identities do not appear in gallery"
    all_cmc = np.asarray(all_cmc).astype(np.float32)
    all_cmc = all_cmc.sum(0) / num_valid_q
    mAP = np.mean(all_AP)
    return all_cmc, mAP, int(num_valid_q)


def matlab_compute_ap(good_image, junk_image, index):
    """Transcribed from zhunzhong07/person-re-ranking, evaluation/utils/compute_AP.m,
    commit ca27f37dd88b27ee1f9dbc5668a9d0f45989ca71 (the Market-1501 evaluation the
    DML paper used), with 0-based indices. AP by the trapezoidal rule."""
    cmc = np.zeros(len(index))
    ngood = len(good_image)
    old_recall = 0.0
    old_precision = 1.0
    ap = 0.0
    intersect_size = 0
    j = 0
    good_now = 0
    njunk = 0
    for n in range(len(index)):
        flag = 0
        if index[n] in good_image:
            cmc[n - njunk :] = 1
            flag = 1
            good_now = good_now + 1
        if index[n] in junk_image:
            njunk = njunk + 1
            continue
        if flag == 1:
            intersect_size = intersect_size + 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap = ap + (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall = recall
        old_precision = precision
        j = j + 1
        if good_now == ngood:
            return ap, cmc
    return ap, cmc


def matlab_evaluation(dist, label_gallery, label_query, cam_gallery, cam_query):
    """evaluation/utils/evaluation.m of the same commit, per query (dist is
    gallery × query there; here query × gallery). Matlab's `sort` is stable,
    hence `kind="stable"`. evaluation.m averages over every query, scoring one
    without a good image 0; the protocol here skips such queries instead, so
    they are left out (and counted)."""
    junk0 = set(np.flatnonzero(label_gallery == -1))
    aps, cmcs = [], []
    for k in range(dist.shape[0]):
        pos = np.flatnonzero(label_gallery == label_query[k])
        good_image = set(pos[cam_gallery[pos] != cam_query[k]])
        junk_image = junk0 | set(pos[cam_gallery[pos] == cam_query[k]])
        if not good_image:
            continue
        index = np.argsort(dist[k], kind="stable")
        ap, cmc = matlab_compute_ap(good_image, junk_image, index)
        aps.append(ap)
        cmcs.append(cmc)
    return np.mean(cmcs, axis=0), float(np.mean(aps)), len(aps)


# ------------------------------------------------------------ data


def reid_data(seed, num_query=40, num_gallery=300, dim=8, ids=12, cameras=3):
    """Few identities and cameras, so that same-camera matches, junk (-1),
    distractors (0) and queries without a valid match all occur."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids + 1, dim))
    g_ids = rng.integers(0, ids + 1, num_gallery)
    g_ids[rng.random(num_gallery) < 0.1] = -1
    g_cams = rng.integers(1, cameras + 1, num_gallery)
    q_ids = rng.integers(1, ids + 1, num_query)
    q_cams = rng.integers(1, cameras + 1, num_query)
    # Identity `ids` appears in the gallery only under camera 1, and queries
    # of it come from camera 1: no valid match.
    g_cams[g_ids == ids] = 1
    q_cams[q_ids == ids] = 1
    g_x = centres[np.maximum(g_ids, 0)] + rng.normal(size=(num_gallery, dim))
    q_x = centres[q_ids] + rng.normal(size=(num_query, dim))
    return q_x, q_ids, q_cams, g_x, g_ids, g_cams


# ------------------------------------------------------------ against the references


@pytest.mark.parametrize(
    "metric, scipy_metric", [("euclidean", "sqeuclidean"), ("cosine", "cosine")]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torchreid_on_random_data(seed, metric, scipy_metric):
    q_x, q_ids, q_cams, g_x, g_ids, g_cams = reid_data(seed)
    result = evaluate(q_x, q_ids, q_cams, g_x, g_ids, g_cams, metric=metric, ranks=(1, 5, 10))
    kept = g_ids != -1  # torchreid's loader drops junk
    cmc, mean_ap, valid = torchreid_eval_market1501(
        cdist(q_x, g_x[kept], scipy_metric), q_ids, g_ids[kept], q_cams, g_cams[kept], 50
    )
    assert result["num_queries"] == valid
    assert result["num_skipped"] == len(q_ids) - valid
    assert result["num_skipped"] > 0  # the data has queries without a valid match
    np.testing.assert_allclose(result["mAP"], mean_ap, rtol=1e-12)
    for k in (1, 5, 10):
        np.testing.assert_allclose(result[f"rank{k}"], cmc[k - 1], rtol=1e-6)
    assert 0.05 < result["rank1"] < 0.95  # neither trivial nor hopeless


@pytest.mark.parametrize("seed", [0, 3])
def test_trapezoid_matches_the_market1501_matlab_code(seed):
    q_x, q_ids, q_cams, g_x, g_ids, g_cams = reid_data(seed)
    result = evaluate(
        q_x, q_ids, q_cams, g_x, g_ids, g_cams, ranks=(1, 3, 20), average_precision="trapezoid"
    )
    cmc, mean_ap, valid = matlab_evaluation(
        cdist(q_x, g_x, "sqeuclidean"), g_ids, q_ids, g_cams, q_cams
    )
    assert result["num_queries"] == valid
    np.testing.assert_allclose(result["mAP"], mean_ap, rtol=1e-12)
    for k in (1, 3, 20):
        np.testing.assert_allclose(result[f"rank{k}"], cmc[k - 1], rtol=1e-12)
    hits = evaluate(q_x, q_ids, q_cams, g_x, g_ids, g_cams)
    assert hits["mAP"] != result["mAP"]  # the two APs do differ
    assert hits["rank1"] == result["rank1"]  # CMC does not depend on the AP


def test_ties_keep_gallery_order_as_the_matlab_code():
    """Gallery entries at the same distance rank in gallery order (stable sort)."""
    rng = np.random.default_rng(5)
    g_x = np.repeat(rng.normal(size=(30, 4)), 3, axis=0)  # every point three times
    g_ids = rng.integers(1, 6, len(g_x))
    g_cams = rng.integers(1, 4, len(g_x))
    q_x = g_x[rng.integers(0, len(g_x), 25)] + 0.0  # queries on gallery points: exact ties
    q_ids = rng.integers(1, 6, len(q_x))
    q_cams = rng.integers(1, 4, len(q_x))
    result = evaluate(q_x, q_ids, q_cams, g_x, g_ids, g_cams, average_precision="trapezoid")
    distances = cdist(q_x, g_x, "sqeuclidean")
    assert len(np.unique(distances)) < distances.size / 2  # many ties
    cmc, mean_ap, valid = matlab_evaluation(distances, g_ids, q_ids, g_cams, q_cams)
    assert result["num_queries"] == valid
    np.testing.assert_allclose(result["mAP"], mean_ap, rtol=1e-12)
    np.testing.assert_allclose(result["rank1"], cmc[0], rtol=1e-12)


def test_a_tie_is_won_by_the_earlier_gallery_entry():
    x = np.zeros((1, 2))
    point = np.array([[1.0, 1.0], [1.0, 1.0]])
    wrong_first = evaluate(x, [1], [1], point, [2, 1], [2, 2])
    right_first = evaluate(x, [1], [1], point, [1, 2], [2, 2])
    assert (wrong_first["rank1"], wrong_first["mAP"]) == (0.0, 0.5)
    assert (right_first["rank1"], right_first["mAP"]) == (1.0, 1.0)


# ------------------------------------------------------------ the protocol by hand


def line(*positions):
    """Features on a line: the gallery ranks in the order of `positions`."""
    return np.asarray(positions, float)[:, None]


def test_hand_computed_average_precisions():
    # Ranked: hit, miss, hit, miss (two correct matches, at ranks 1 and 3).
    g_x, g_ids, g_cams = line(1, 2, 3, 4), [5, 6, 5, 7], [2, 2, 2, 2]
    hits = evaluate(line(0), [5], [1], g_x, g_ids, g_cams, ranks=(1, 2, 3))
    assert hits["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert (hits["rank1"], hits["rank2"], hits["rank3"]) == (1.0, 1.0, 1.0)
    # Trapezoid: hit 1 at rank 1: (1 + 1)/2; hit 2 at rank 3: (1/2 + 2/3)/2.
    trapezoid = evaluate(line(0), [5], [1], g_x, g_ids, g_cams, average_precision="trapezoid")
    assert trapezoid["mAP"] == pytest.approx((1.0 + (1 / 2 + 2 / 3) / 2) / 2)


def test_same_identity_and_camera_is_ignored_other_cameras_and_identities_are_not():
    # Nearest first: same id & same camera (ignored), other id & same camera
    # (a wrong match), same id & other camera (the hit, at kept rank 2).
    g_x, g_ids, g_cams = line(1, 2, 3), [5, 6, 5], [1, 1, 2]
    result = evaluate(line(0), [5], [1], g_x, g_ids, g_cams, ranks=(1, 2))
    assert (result["rank1"], result["rank2"], result["mAP"]) == (0.0, 1.0, 0.5)
    # From a third camera both entries of identity 5 count: ranks 1 and 3.
    other = evaluate(line(0), [5], [3], g_x, g_ids, g_cams, ranks=(1, 2))
    assert (other["rank1"], other["mAP"]) == (1.0, pytest.approx((1 + 2 / 3) / 2))


def test_junk_is_ignored_and_distractors_count_as_wrong():
    g_x = line(1, 2, 3)
    junk = evaluate(line(0), [5], [1], g_x, [-1, 5, 6], [2, 2, 2])
    assert (junk["rank1"], junk["mAP"]) == (1.0, 1.0)
    distractor = evaluate(line(0), [5], [1], g_x, [0, 5, 6], [2, 2, 2])
    assert (distractor["rank1"], distractor["mAP"]) == (0.0, 0.5)


def test_a_query_without_a_valid_match_is_skipped_and_counted():
    g_x, g_ids, g_cams = line(1, 2, 3), [5, 6, 7], [1, 2, 2]
    # Query 0 (id 5, camera 1): its only gallery entry is from camera 1.
    # Query 1 (id 9): not in the gallery. Query 2 (id 6): a hit at rank 2.
    result = evaluate(line(0, 0, 0), [5, 9, 6], [1, 1, 1], g_x, g_ids, g_cams, ranks=(1, 2))
    assert (result["num_queries"], result["num_skipped"]) == (1, 2)
    assert (result["rank1"], result["rank2"], result["mAP"]) == (0.0, 1.0, 0.5)


def test_no_valid_match_at_all_is_an_error():
    with pytest.raises(ValueError, match=r"No query has a valid gallery match \(all 2 skipped\)"):
        evaluate(line(0, 1), [5, 6], [1, 1], line(1, 2), [5, -1], [1, 2])


def test_ranks_beyond_the_gallery_count_every_evaluated_query():
    result = evaluate(line(0), [5], [1], line(1, 2), [6, 5], [2, 2], ranks=(1, 10))
    assert (result["rank1"], result["rank10"]) == (0.0, 1.0)


def test_cosine_ranks_by_angle_not_length():
    g_x = np.array([[10.0, 0.0], [0.1, 0.1]])  # far but aligned, near but at 45°
    q_x = np.array([[1.0, 0.0]])
    assert evaluate(q_x, [1], [1], g_x, [1, 2], [2, 2], metric="cosine")["rank1"] == 1.0
    assert evaluate(q_x, [1], [1], g_x, [1, 2], [2, 2], metric="euclidean")["rank1"] == 0.0


# ------------------------------------------------------------ chunks and memory


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_chunked_equals_unchunked(metric):
    data = reid_data(7, num_query=37)
    whole = evaluate(*data, metric=metric, chunk_size=1000)
    for chunk_size in (1, 5, 36):
        assert evaluate(*data, metric=metric, chunk_size=chunk_size) == whole


def test_memory_is_bounded_by_the_chunk_not_the_query_count():
    """1,000 × 4,000 distances are 32 MB in float64; chunks of 20 queries
    must peak far below that (features themselves: about 1 MB)."""
    q_x, q_ids, q_cams, g_x, g_ids, g_cams = reid_data(8, num_query=1000, num_gallery=4000)
    tracemalloc.start()
    try:
        evaluate(q_x, q_ids, q_cams, g_x, g_ids, g_cams, chunk_size=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"


# ------------------------------------------------------------ bad input


def good_args():
    return dict(
        query_features=np.zeros((2, 3)),
        query_ids=[1, 2],
        query_cameras=[1, 1],
        gallery_features=np.ones((4, 3)),
        gallery_ids=[1, 2, 1, 2],
        gallery_cameras=[2, 2, 2, 2],
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"query_features": np.zeros(3)}, r"`query_features` must be a non-empty 2-D array"),
        ({"gallery_features": np.ones((4, 2))}, r"same feature size; received 3 and 2"),
        ({"gallery_features": np.ones((0, 3))}, r"`gallery_features` must be a non-empty"),
        (
            {"query_features": np.array([[0, 0, 0], [0, np.nan, 0]])},
            r"`query_features` must be finite; received .*non-finite value in row 1",
        ),
        ({"query_features": np.array([["a", "b", "c"]] * 2)}, r"must be a real-valued array"),
        ({"query_ids": [1, 2, 3]}, r"`query_ids` must be a 1-D array with one entry per row of"),
        ({"gallery_cameras": [1, 2]}, r"`gallery_cameras` must be a 1-D array .*\(4\)"),
        ({"gallery_ids": [1.0, 2.0, 1.0, 2.0]}, r"`gallery_ids` must be an integer array"),
        ({"metric": "manhattan"}, r"`metric` must be one of 'euclidean', 'cosine'"),
        ({"ranks": (1, 0)}, r"`ranks` must be a non-empty sequence of distinct integers >= 1"),
        ({"ranks": ()}, r"`ranks` must be"),
        ({"ranks": (1, 1)}, r"`ranks` must be"),
        ({"ranks": 5}, r"`ranks` must be a sequence of integers"),
        ({"chunk_size": 0}, r"`chunk_size` must be an integer >= 1"),
        ({"average_precision": "area"}, r"`average_precision` must be one of 'hits', 'trapezoid'"),
    ],
)
def test_bad_input_is_named(change, message):
    with pytest.raises(ValueError, match=message):
        evaluate(**{**good_args(), **change})


# ------------------------------------------------------------ embeddings and the callback

FEATURES, HIDDEN, CLASSES = 6, 5, 4


def mlp_peer(seed, name=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="tanh", name="hidden"),
            keras.layers.Dropout(0.5),  # inactive in predict
            keras.layers.Dense(CLASSES, name="logits"),
        ],
        name=name,
    )


def penultimate_numpy(peer, x):
    """tanh(x W + b) of the hidden layer, from the weights."""
    kernel, bias = peer.get_layer("hidden").get_weights()
    return np.tanh(np.float64(x) @ kernel + bias)


def split_data(seed, examples, identities=6, cameras=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, FEATURES)).astype("float32")
    return x, rng.integers(1, identities + 1, examples), rng.integers(1, cameras + 1, examples)


@pytest.mark.backends
def test_embedding_is_the_input_of_the_last_dense_layer():
    peer = mlp_peer(0)
    x, _, _ = split_data(0, 10)
    features = to_numpy(embedding_model(peer).predict(x, verbose=0))
    np.testing.assert_allclose(features, penultimate_numpy(peer, x), rtol=1e-5, atol=1e-6)
    # A Functional peer of the package: its logits are the head applied to them.
    cnn = build_peer("small_cnn", (8, 8, 1), CLASSES)
    images = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype("float32")
    kernel, bias = cnn.layers[-1].get_weights()
    embedded = to_numpy(embedding_model(cnn).predict(images, verbose=0))
    np.testing.assert_allclose(
        embedded @ kernel + bias, to_numpy(cnn.predict(images, verbose=0)), rtol=1e-4, atol=1e-5
    )
    assert embedded.shape[1] == kernel.shape[0] != CLASSES


@pytest.mark.backends
def test_a_named_layer_gives_its_output():
    peer = mlp_peer(1)
    x, _, _ = split_data(1, 7)
    for layer in ("hidden", peer.get_layer("hidden")):
        np.testing.assert_allclose(
            to_numpy(embedding_model(peer, layer).predict(x, verbose=0)),
            penultimate_numpy(peer, x),
            rtol=1e-5,
            atol=1e-6,
        )


def test_embedding_refusals_name_the_problem():
    no_head = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.ReLU()])
    with pytest.raises(ValueError, match=r"its output is produced by 're_lu.*not by a Dense layer"):
        embedding_model(no_head)
    with pytest.raises(ValueError, match=r"`layer` must be the name of a layer of model"):
        embedding_model(mlp_peer(0), "nope")
    with pytest.raises(ValueError, match=r"`layer` must be a layer of model"):
        embedding_model(mlp_peer(0), keras.layers.Dense(2))


@pytest.mark.backends
def test_extract_features_normalises_each_peer_and_concatenates():
    peers = [mlp_peer(0), mlp_peer(1)]
    x, _, _ = split_data(2, 9)
    expected = [penultimate_numpy(peer, x) for peer in peers]
    (raw0, raw1), raw_cohort = extract_features(peers, x, normalize=False)
    np.testing.assert_allclose(raw_cohort, np.concatenate(expected, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw1, expected[1], rtol=1e-5, atol=1e-6)
    learner = MutualLearner(peers)
    (unit0, unit1), cohort = extract_features(learner, x)
    unit = [e / np.linalg.norm(e, axis=1, keepdims=True) for e in expected]
    np.testing.assert_allclose(unit0, unit[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cohort, np.concatenate(unit, 1) / np.sqrt(2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1.0, rtol=1e-5)


def unit(features):
    return features / np.linalg.norm(features, axis=1, keepdims=True)


class _CheckEvaluation(keras.callbacks.Callback):
    """Listed after RetrievalEvaluation: records which keys each epoch's logs
    hold and recomputes their values with `evaluate` on embeddings computed
    in NumPy from the peers' current weights."""

    def __init__(self, query, gallery, ranks):
        super().__init__()
        self.query, self.gallery, self.ranks, self.seen = query, gallery, ranks, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append({k for k in logs if "_mAP" in k or "_rank" in k})
        if not self.seen[-1]:
            return
        q = [unit(penultimate_numpy(peer, self.query[0])) for peer in self.model.peers]
        g = [unit(penultimate_numpy(peer, self.gallery[0])) for peer in self.model.peers]
        named = [("peer0", q[0], g[0]), ("peer1", q[1], g[1])]
        named.append(("cohort", np.concatenate(q, 1), np.concatenate(g, 1)))
        for name, q_x, g_x in named:
            want = evaluate(q_x, *self.query[1:], g_x, *self.gallery[1:], ranks=self.ranks)
            for key in ["mAP"] + [f"rank{k}" for k in self.ranks]:
                np.testing.assert_allclose(logs[f"{name}_{key}"], want[key], rtol=1e-6)


@pytest.mark.backends
def test_the_callback_logs_per_peer_and_cohort_retrieval_into_history():
    x, y = split_data(3, 32)[0], split_data(3, 32)[1] % CLASSES
    query, gallery = split_data(4, 12), split_data(5, 40)
    learner = MutualLearner([mlp_peer(0), mlp_peer(1)])
    learner.compile(optimizer=keras.optimizers.Adam(0.05))
    check = _CheckEvaluation(query, gallery, ranks=(1, 5))
    callbacks = [RetrievalEvaluation(query, gallery, ranks=(1, 5), every=2), check]
    history = learner.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
    names, values = ("peer0", "peer1", "cohort"), ("mAP", "rank1", "rank5")
    keys = {f"{name}_{key}" for name in names for key in values}
    assert check.seen == [set(), keys]  # evaluated at epoch 2, not 1
    for key in keys:
        assert len(history.history[key]) == 1
        assert 0.0 <= history.history[key][0] <= 1.0


def test_the_callback_logs_reach_a_tensorboard_listed_after_it(tmp_path):
    # The event files are read with TensorFlow, which the core-only install
    # (.ci/core_install) does not have.
    tf = pytest.importorskip("tensorflow")

    x, y = split_data(6, 16)[0], split_data(6, 16)[1] % CLASSES
    learner = MutualLearner([mlp_peer(0), mlp_peer(1)])
    learner.compile(optimizer="adam")
    callbacks = [
        RetrievalEvaluation(split_data(7, 8), split_data(8, 20)),
        keras.callbacks.TensorBoard(str(tmp_path)),
    ]
    learner.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
    tags = set()
    for events in tmp_path.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_peer0_mAP", "epoch_peer1_rank1", "epoch_cohort_mAP"} <= tags


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"query": (np.zeros((3, FEATURES)), [1, 2])},
            r"`query` must be a tuple \(x, ids, cameras\)",
        ),
        (
            {"gallery": (np.zeros((3, FEATURES)), [1, 2], [1, 1])},
            r"`gallery ids` must be a 1-D array with one entry per row of `gallery x` \(3\)",
        ),
        ({"every": 0}, r"`every` must be an integer >= 1"),
        ({"metric": "l1"}, r"`metric` must be one of"),
        ({"ranks": (0,)}, r"`ranks` must be"),
        ({"normalize": "yes"}, r"`normalize` must be True or False"),
    ],
)
def test_callback_arguments_are_checked_up_front(change, message):
    args = {"query": split_data(0, 4), "gallery": split_data(1, 6), **change}
    with pytest.raises(ValueError, match=message):
        RetrievalEvaluation(**args)
