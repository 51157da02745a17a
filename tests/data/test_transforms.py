"""Transforms: the deterministic parts against torchvision.transforms.v2.functional (float64),
the random parts by their properties and their seeding."""

import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.data import transforms as T


def tv_functional():
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision.transforms.v2.functional as TF

    return TF


def image(seed, c=3, h=7, w=9):
    return np.random.default_rng(seed).random((c, h, w))


@given(st.integers(0, 1000), st.floats(0.0, 2.0))
def test_colour_adjustments_match_torchvision(seed, factor):
    TF = tv_functional()
    x = image(seed)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(T.adjust_brightness(x, factor),
                               TF.adjust_brightness(t, factor).numpy(), atol=1e-12)
    np.testing.assert_allclose(T.adjust_contrast(x, factor),
                               TF.adjust_contrast(t, factor).numpy(), atol=1e-12)
    np.testing.assert_allclose(T.adjust_saturation(x, factor),
                               TF.adjust_saturation(t, factor).numpy(), atol=1e-12)


@given(st.integers(0, 1000), st.integers(2, 12), st.integers(2, 12), st.data())
def test_resized_crop_matches_torchvision(seed, out_h, out_w, data):
    TF = tv_functional()
    x = image(seed, h=10, w=11)
    top, left = data.draw(st.integers(0, 8)), data.draw(st.integers(0, 9))
    height, width = data.draw(st.integers(1, 10 - top)), data.draw(st.integers(1, 11 - left))
    ours = T.resized_crop(x, top, left, height, width, (out_h, out_w))
    theirs = TF.resized_crop(torch.from_numpy(x), top, left, height, width, [out_h, out_w],
                             antialias=False).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_normalize_flip_pad_match_torchvision():
    TF = tv_functional()
    x = image(0)
    t = torch.from_numpy(x)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    np.testing.assert_allclose(T.Normalize(mean, std)(x), TF.normalize(t, mean, std).numpy())
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x),
                                  TF.horizontal_flip(t).numpy())
    for padding, mode in [(2, "constant"), ((1, 3), "reflect"), ((1, 2, 3, 0), "edge")]:
        crop = T.RandomCrop((x.shape[1], x.shape[2]), padding=padding, padding_mode=mode)
        padded = TF.pad(t, padding, padding_mode=mode).numpy()
        got = crop(x)                          # some window of the padded image
        windows = [padded[:, i:i + 7, j:j + 9] for i in range(padded.shape[1] - 6)
                   for j in range(padded.shape[2] - 8)]
        assert any(np.array_equal(got, win) for win in windows)


def test_to_tensor_like_torchvision():
    TF = tv_functional()
    hwc = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    ours = T.ToTensor()(hwc)
    theirs = TF.to_dtype(TF.to_image(hwc), torch.float32, scale=True).numpy()
    assert isinstance(ours, dn.Tensor) and ours.shape == (3, 5, 4)
    np.testing.assert_allclose(ours.data, theirs, rtol=1e-6)


def test_random_crop_positions_are_uniform_and_seeded():
    x = np.arange(6 * 6, dtype=float).reshape(1, 6, 6)
    crop = T.RandomCrop(4)
    dn.manual_seed(0)
    corners = [crop(x)[0, 0, 0] for _ in range(900)]
    values, counts = np.unique(corners, return_counts=True)
    assert len(values) == 9                     # 3 x 3 positions, each about 100 times
    assert counts.min() > 60
    dn.manual_seed(0)
    assert [crop(x)[0, 0, 0] for _ in range(900)] == corners


def test_flip_probability():
    x = image(1)
    flip = T.RandomHorizontalFlip(0.3, generator=np.random.default_rng(0))
    flipped = sum(not np.array_equal(flip(x), x) for _ in range(2000))
    assert 0.26 < flipped / 2000 < 0.34


def test_random_resized_crop_area_and_ratio():
    crop = T.RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0),
                               generator=np.random.default_rng(0))
    for _ in range(300):
        i, j, h, w = crop.get_params(40, 50)
        assert 0 <= i <= 40 - h and 0 <= j <= 50 - w
        assert 0.2 * 0.9 <= h * w / 2000 <= 0.6 * 1.1       # up to rounding of h and w
        assert 0.5 * 0.85 <= w / h <= 2.0 * 1.15
    assert crop(image(0, h=40, w=50)).shape == (3, 8, 8)
    # impossible scale: falls back to the central crop with the ratio clamped
    fallback = T.RandomResizedCrop(4, scale=(5.0, 6.0), generator=np.random.default_rng(0))
    assert fallback.get_params(10, 40) == (0, 13, 10, 13)


def test_color_jitter_and_noise_stay_in_range_and_are_seeded():
    x = image(2)
    jitter = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)
    noise = T.GaussianNoise(sigma=0.2)
    dn.manual_seed(3)
    a = [jitter(x), noise(x)]
    dn.manual_seed(3)
    b = [jitter(x), noise(x)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
        assert u.min() >= 0 and u.max() <= 1 and not np.array_equal(u, x)
    residual = T.GaussianNoise(sigma=0.05, clip=False,
                               generator=np.random.default_rng(0))(np.zeros((3, 60, 60)))
    assert abs(residual.std() - 0.05) < 0.003 and abs(residual.mean()) < 0.003
    assert np.array_equal(T.ColorJitter()(x), x)


def test_pca_lighting_follows_alexnet():
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.5, 0.2], [0.0, 0.8, 0.3], [0.0, 0.0, 0.4]])
    images = np.einsum("nphw,pc->nchw", rng.standard_normal((20, 3, 6, 6)), mixing)
    lighting = T.PCALighting.fit(images, alphastd=0.1, generator=np.random.default_rng(1))
    pixels = images.transpose(0, 2, 3, 1).reshape(-1, 3)
    cov = np.cov(pixels, rowvar=False)
    # eigen-decomposition of the RGB covariance, largest first
    np.testing.assert_allclose(lighting.eigvec @ np.diag(lighting.eigval) @ lighting.eigvec.T,
                               cov, atol=1e-12)
    assert np.all(np.diff(lighting.eigval) <= 0)
    # one shift per image, the same for every pixel, along P (alpha * lambda)
    x = images[0]
    out = lighting(x)
    delta = (out - x).reshape(3, -1)
    np.testing.assert_allclose(delta, delta[:, :1].repeat(delta.shape[1], axis=1), atol=1e-12)
    alpha = np.linalg.solve(lighting.eigvec, delta[:, 0]) / lighting.eigval
    np.testing.assert_allclose(lighting.shift(alpha), delta[:, 0], atol=1e-12)
    # over many images the shifts have covariance P diag((0.1 lambda)^2) P^T
    shifts = np.stack([(lighting(x) - x)[:, 0, 0] for _ in range(4000)])
    expected = lighting.eigvec @ np.diag((0.1 * lighting.eigval) ** 2) @ lighting.eigvec.T
    np.testing.assert_allclose(np.cov(shifts, rowvar=False), expected,
                               atol=0.1 * np.abs(expected).max())


def test_compose_and_tensor_round_trip():
    pipeline = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(),
                          T.Normalize([0.5] * 3, [0.25] * 3)])
    out = pipeline(dn.from_numpy(image(0, h=6, w=6)))
    assert isinstance(out, dn.Tensor) and out.shape == (3, 6, 6)
    assert "RandomCrop" in repr(pipeline)


@pytest.mark.parametrize("call, match", [
    (lambda: T.Normalize([0.5], [0.0]), "std"),
    (lambda: T.RandomCrop(20)(image(0)), "larger"),
    (lambda: T.RandomHorizontalFlip(1.5), "probability"),
    (lambda: T.Normalize([0.1, 0.2], [1, 1])(image(0)), "per channel"),
    (lambda: T.ColorJitter(brightness=-1), "non negative"),
    (lambda: T.PCALighting(0.1, [1, 2], np.eye(3)), "eigval"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def random_transforms():
    lighting = T.PCALighting(0.1, [0.3, 0.1, 0.02], np.linalg.qr(
        np.random.default_rng(0).standard_normal((3, 3)))[0])
    return {"RandomCrop": T.RandomCrop(5, padding=2), "RandomHorizontalFlip":
            T.RandomHorizontalFlip(), "RandomResizedCrop": T.RandomResizedCrop(4),
            "ColorJitter": T.ColorJitter(0.4, 0.4, 0.4), "GaussianNoise": T.GaussianNoise(),
            "PCALighting": lighting}


@pytest.mark.parametrize("name", list(random_transforms()))
def test_every_random_transform_draws_from_the_seeded_generator(name):
    transform = random_transforms()[name]
    x = image(4, h=8, w=8)

    def draws(seed):
        dn.manual_seed(seed)
        return np.stack([np.asarray(transform(x)) for _ in range(12)])

    first = draws(0)
    np.testing.assert_array_equal(first, draws(0))          # the same seed: the same draws
    assert not np.array_equal(first, draws(1))               # another seed: others
    assert len({a.tobytes() for a in first}) > 1             # a new draw per call
    # given a generator of its own, the transform leaves deepnotes.random alone
    transform.generator = np.random.default_rng(7)
    dn.manual_seed(0)
    state = dn.random.get_rng_state()
    transform(x)
    assert dn.random.get_rng_state() == state


class Augmented(dn.data.Dataset):
    """The same image every time, through a random crop + flip + noise pipeline."""

    def __init__(self):
        self.pipeline = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(),
                                   T.GaussianNoise(sigma=0.05)])
        self.x = image(5, h=6, w=6)

    def __getitem__(self, index):
        return self.pipeline(self.x)

    def __len__(self):
        return 16


def test_workers_apply_different_reproducible_augmentations():
    def epoch(seed, workers):
        dn.manual_seed(seed)
        loader = dn.data.DataLoader(Augmented(), batch_size=2, num_workers=workers, timeout=60)
        return np.concatenate([b.data for b in loader])       # (16, 3, 6, 6)

    a, b = epoch(0, 2), epoch(0, 2)
    np.testing.assert_array_equal(a, b)
    # batch k comes from worker k % 2: no augmentation of worker 0 repeats in worker 1
    worker0 = {s.tobytes() for k in range(0, 8, 2) for s in a[2 * k:2 * k + 2]}
    worker1 = {s.tobytes() for k in range(1, 8, 2) for s in a[2 * k:2 * k + 2]}
    assert len(worker0) == len(worker1) == 8 and not worker0 & worker1
    assert not np.array_equal(a, epoch(1, 2))
