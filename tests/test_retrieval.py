"""`rdml_keras.retrieval.evaluate` against two standard re-identification evaluations,
transcribed below, and against small cases worked out by hand."""

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from rdml_keras.retrieval import evaluate

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
