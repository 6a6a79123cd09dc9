"""Transforms on NCHW batches: values, randomness, fitted state."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.data import DataError
from minidl.data.transforms import (
    Compose,
    GlobalContrastNormalization,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ZCAWhitening,
)


def images(n=64, c=3, h=5, w=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)) * np.arange(1, c + 1)[:, None, None]
    return (x + np.arange(c)[:, None, None] * 3).astype(np.float32)


@pytest.mark.parametrize("transform", [
    Normalize([0.5, 0.2, 0.1], [2.0, 3.0, 4.0]), RandomCrop(4, padding=2),
    RandomHorizontalFlip(), GlobalContrastNormalization(), ZCAWhitening().fit(images()),
])
def test_float32_in_float32_out(transform):
    out = transform(images(8), rng=np.random.default_rng(0))
    assert out.dtype == np.float32 and out.ndim == 4


# --- Normalize --------------------------------------------------------------------

def test_normalize_fit_gives_zero_mean_unit_std():
    x = images(200)
    out = Normalize().fit(x)(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-5)


def test_normalize_given_statistics():
    x = images(4)
    out = Normalize(mean=[1, 2, 3], std=[2, 4, 8])(x)
    np.testing.assert_allclose(out[:, 2], (x[:, 2] - 3) / 8, rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: Normalize([0, 0, 0], [1, 1, 1])(np.zeros((2, 1, 4, 4), np.float32)),
     r"Normalize: batch must have shape \(N, 3, H, W\) to match mean and std, got \(2, 1, 4, 4\)"),
    (lambda: Normalize([0], [1])(np.zeros((4, 4), np.float32)),
     r"Normalize: batch must have shape \(N, C, H, W\), got \(4, 4\)"),
    (lambda: Normalize()(np.zeros((1, 1, 2, 2))), r"Normalize: no mean and std"),
    (lambda: Normalize(mean=[0.5]), r"Normalize: pass both mean and std"),
    (lambda: Normalize([0, 0], [1, 0]), r"Normalize: std must be positive in every channel"),
    (lambda: Normalize([0, 0], [1]), r"Normalize: mean has 2 channels, std 1"),
    (lambda: Normalize().fit(np.zeros((3, 4))),
     r"Normalize\.fit: images: batch must have shape \(N, C, H, W\), got \(3, 4\)"),
])
def test_normalize_errors(call, message):
    with pytest.raises(DataError, match=message):
        call()


# --- RandomCrop -------------------------------------------------------------------

def crop_offsets(padded, crop):
    """Every (top, left) at which `crop` sits in `padded` (C, H, W), by plain loops."""
    _, h, w = crop.shape
    return [(i, j) for i in range(padded.shape[1] - h + 1) for j in range(padded.shape[2] - w + 1)
            if np.array_equal(padded[:, i:i + h, j:j + w], crop)]


@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       padding=st.integers(0, 3), data=st.data())
def test_random_crop_outputs_are_crops_of_the_padded_input(n, c, h, w, padding, data):
    size = (data.draw(st.integers(1, h + 2 * padding)), data.draw(st.integers(1, w + 2 * padding)))
    x = np.random.default_rng(0).random((n, c, h, w)).astype(np.float32) + 1  # never 0
    out = RandomCrop(size, padding)(x, rng=np.random.default_rng(data.draw(st.integers(0, 99))))
    assert out.shape == (n, c) + size
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for k in range(n):
        assert crop_offsets(padded[k], out[k]), f"sample {k} is not a crop"


def test_random_crop_uses_every_offset_and_is_seeded():
    x = np.tile(np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4), (400, 1, 1, 1))
    crop = RandomCrop(4, padding=1)
    out = crop(x, rng=np.random.default_rng(1))
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    offsets = {crop_offsets(padded, o)[0] for o in out}
    assert offsets == {(i, j) for i in range(3) for j in range(3)}
    np.testing.assert_array_equal(out, crop(x, rng=np.random.default_rng(1)))


def test_random_crop_too_large():
    with pytest.raises(DataError, match=r"RandomCrop: batch must have shape \(N, C, H, W\) with "
                                        r"H, W >= \(6, 6\) for size \(8, 8\) and padding 1, "
                                        r"got \(2, 1, 5, 5\)"):
        RandomCrop(8, padding=1)(np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(DataError, match=r"RandomCrop: size must be positive"):
        RandomCrop(0)


# --- RandomHorizontalFlip ---------------------------------------------------------

def test_flip():
    x = images(300, h=2, w=3)
    mirrored = x[..., ::-1]
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), mirrored)
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    out = RandomHorizontalFlip(0.5)(x, rng=np.random.default_rng(0))
    flipped = np.all(out == mirrored, axis=(1, 2, 3))
    assert np.all(flipped | np.all(out == x, axis=(1, 2, 3)))
    assert 100 < flipped.sum() < 200


# --- GlobalContrastNormalization --------------------------------------------------

def test_gcn_mean_zero_norm_scale():
    x = images(10)
    out = GlobalContrastNormalization(scale=55.0)(x).reshape(10, -1)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 55.0, rtol=1e-5)


def test_gcn_use_std_and_sqrt_bias():
    x = images(10)
    out = GlobalContrastNormalization(scale=2.0, use_std=True)(x).reshape(10, -1)
    np.testing.assert_allclose(out.std(axis=1, ddof=1), 2.0, rtol=1e-5)
    biased = GlobalContrastNormalization(scale=1.0, sqrt_bias=10.0)(x).reshape(10, -1)
    centred = x.reshape(10, -1) - x.reshape(10, -1).mean(axis=1, keepdims=True)
    expected = centred / np.sqrt(10.0 + (centred ** 2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(biased, expected, rtol=1e-5, atol=1e-7)


def test_gcn_flat_image_stays_finite():
    x = np.full((2, 1, 3, 3), 0.7, np.float32)
    out = GlobalContrastNormalization()(x)
    assert np.all(np.isfinite(out)) and np.allclose(out, 0)


# --- ZCAWhitening -----------------------------------------------------------------

def test_zca_whitens_full_rank_training_data():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(18, 18))
    x = (rng.normal(size=(5000, 18)) @ mixing + 3).astype(np.float32).reshape(-1, 2, 3, 3)
    zca = ZCAWhitening(eps=1e-10).fit(x)
    out = zca(x).reshape(len(x), -1).astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(np.cov(out, rowvar=False, bias=True), np.eye(18), atol=2e-3)
    np.testing.assert_allclose(zca.W, zca.W.T, atol=1e-4)  # zero-phase: W is symmetric


def test_zca_with_fewer_images_than_features_equals_the_covariance_formula():
    x = np.random.default_rng(3).random((40, 3, 5, 5)).astype(np.float32)
    zca = ZCAWhitening(eps=0.05).fit(x)                  # 40 images < 75 features
    centred = x.reshape(40, -1).astype(np.float64)
    centred -= centred.mean(axis=0)
    s, u = np.linalg.eigh(centred.T @ centred / 40)
    expected = (u / np.sqrt(np.maximum(s, 0) + 0.05)) @ u.T
    np.testing.assert_allclose(zca.W, expected, rtol=1e-4, atol=1e-4)


def test_zca_eps_shrinks_small_directions():
    x = images(500)
    tiny = ZCAWhitening(eps=1e-6).fit(x)(x).reshape(500, -1)
    damped = ZCAWhitening(eps=10.0).fit(x)(x).reshape(500, -1)
    assert damped.var(axis=0).max() < 0.5 < tiny.var(axis=0).min()


def test_zca_errors():
    with pytest.raises(DataError, match=r"ZCAWhitening: not fitted; call fit"):
        ZCAWhitening()(images(2))
    zca = ZCAWhitening().fit(images(20))
    with pytest.raises(DataError, match=r"ZCAWhitening: batch must have shape \(N, C, H, W\) "
                                        r"with C\*H\*W = 90 as in fit, got \(2, 3, 4, 4\)"):
        zca(np.zeros((2, 3, 4, 4), np.float32))


# --- Compose and state_dict -------------------------------------------------------

def test_compose_fit_skips_augmentation_and_feeds_each_fit():
    x = images(100)
    pipeline = Compose([GlobalContrastNormalization(), RandomCrop(3), Normalize(), ZCAWhitening()])
    pipeline.fit(x)
    gcn = GlobalContrastNormalization()(x)
    expected = Normalize().fit(gcn)
    np.testing.assert_allclose(pipeline.transforms[2].mean, expected.mean, atol=1e-5)
    np.testing.assert_allclose(pipeline.transforms[2].std, expected.std, rtol=1e-5)
    assert pipeline.transforms[3].mean.size == 3 * 5 * 6  # fitted before any crop


def test_compose_passes_rng():
    x = images(50)
    pipeline = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
    a = pipeline(x, rng=np.random.default_rng(3))
    b = pipeline(x, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, pipeline(x, rng=np.random.default_rng(4)))


def test_state_dict_round_trip():
    x = images(80)
    fitted = Compose([Normalize(), RandomHorizontalFlip(), ZCAWhitening(eps=0.1)]).fit(x)
    state = fitted.state_dict()
    assert sorted(state) == ["0", "2"]
    fresh = Compose([Normalize(), RandomHorizontalFlip(), ZCAWhitening(eps=0.1)])
    fresh.load_state_dict(state)
    test = images(7, seed=1)
    np.testing.assert_array_equal(fresh(test, rng=np.random.default_rng(0)),
                                  fitted(test, rng=np.random.default_rng(0)))


def test_load_state_dict_errors():
    with pytest.raises(DataError, match=r"Compose\.load_state_dict: state has entries \['0'\], "
                                        r"this pipeline expects \['1'\]"):
        Compose([RandomCrop(2), Normalize()]).load_state_dict({"0": {}})
    with pytest.raises(DataError, match=r"ZCAWhitening\.load_state_dict: state has no \['W'\]"):
        ZCAWhitening().load_state_dict({"mean": np.zeros(3)})
