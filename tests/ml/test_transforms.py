import numpy as np
import pytest
import torch

from ml.config import AugmentConfig, DataConfig
from ml.models.base import ModelConfig
from ml.transforms import BatchAugment, Preprocess, compute_mean_std, resolve_data_config


def _cfg(**kw):
    return DataConfig(**{"input_size": 32, "in_chans": 1, **kw})


def test_resize_shorter_side_then_center_crop_keeps_the_middle():
    image = np.zeros((100, 200), dtype=np.float32)
    image[:, 50:150] = 1.0  # a bright central square region 100x100
    out = Preprocess(_cfg(input_size=50)).resize(image)
    assert out.shape == (1, 50, 50)
    assert out[0, :, 2:-2].min() > 0.99  # the crop sees only the central bright part (edges antialiased)


def test_squash_keeps_the_whole_field_of_view():
    image = np.zeros((100, 200), dtype=np.float32)
    image[:, 50:150] = 1.0
    out = Preprocess(_cfg(input_size=50, resize_mode="squash")).resize(image)
    assert out.shape == (1, 50, 50)
    assert out[0, :, :5].max() < 0.05 and out[0, :, 20:30].min() > 0.95


def test_crop_pct_zooms_in():
    image = np.zeros((64, 64), dtype=np.float32)
    image[16:48, 16:48] = 1.0
    full = Preprocess(_cfg(input_size=32)).resize(image)
    cropped = Preprocess(_cfg(input_size=32, crop_pct=0.6)).resize(image)
    assert cropped.mean() > full.mean() + 0.2


@pytest.mark.parametrize(
    ("normalization", "chans", "lo", "hi"),
    [("minus_one_one", 1, -1.0, 1.0), ("imagenet", 3, -0.485 / 0.229, (1 - 0.485) / 0.229)],
)
def test_normalisation_maps_black_and_white(normalization, chans, lo, hi):
    cfg = resolve_data_config(ModelConfig(name="m", input_size=8, in_chans=chans, normalization=normalization))
    pre = Preprocess(cfg)
    x = pre(np.stack([np.zeros(8), np.ones(8)] * 4).astype(np.float32))
    assert x.shape == (chans, 8, 8)
    assert x[0].min().item() == pytest.approx(lo, abs=1e-5)
    assert x[0].max().item() == pytest.approx(hi, abs=1e-5)


def test_dataset_statistics_normalise_to_zero_mean_unit_std():
    rng = np.random.default_rng(0)
    images = [rng.uniform(0.2, 0.6, size=(16, 16)).astype(np.float32) for _ in range(20)]
    base = resolve_data_config(ModelConfig(name="m", input_size=16))
    mean, std = compute_mean_std(images, Preprocess(base))
    assert mean == pytest.approx(0.4, abs=0.01)
    cfg = resolve_data_config(ModelConfig(name="m", input_size=16), normalization="dataset", mean=(mean,), std=(std,))
    x = Preprocess(cfg).batch(images)
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(x.std()) == pytest.approx(1.0, abs=1e-2)


def test_dataset_normalisation_without_statistics_is_refused():
    with pytest.raises(ValueError, match="mean and std"):
        _cfg(normalization="dataset")


def test_sixteen_bit_style_input_is_not_rescaled():
    """Preprocess takes [0, 1] floats as given: bit depth is the reader's job."""
    image = np.full((8, 8), 0.5, dtype=np.float32)
    assert float(Preprocess(_cfg(input_size=8)).resize(image).mean()) == pytest.approx(0.5)


def _batch():
    rng = np.random.default_rng(1)
    return torch.from_numpy(rng.uniform(0, 1, size=(4, 1, 32, 32)).astype(np.float32))


def test_augment_is_reproducible_for_a_seed_and_varies_across_seeds():
    aug = BatchAugment(AugmentConfig())
    batch = _batch()
    a = aug(batch, torch.Generator().manual_seed(3))
    b = aug(batch, torch.Generator().manual_seed(3))
    c = aug(batch, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == batch.shape and a.min() >= 0 and a.max() <= 1


def test_disabled_augment_is_identity_and_zero_ranges_change_little():
    batch = _batch()
    assert torch.equal(BatchAugment(AugmentConfig(enabled=False))(batch), batch)
    still = AugmentConfig(rotation=0, translate=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    out = BatchAugment(still)(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(out, batch, atol=1e-5)


def test_rotation_moves_content():
    batch = torch.zeros(1, 1, 32, 32)
    batch[..., 14:18, 2:30] = 1.0  # a horizontal bar
    cfg = AugmentConfig(rotation=45, translate=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    outs = [BatchAugment(cfg)(batch, torch.Generator().manual_seed(s)) for s in range(5)]
    assert any(float((o - batch).abs().sum()) > 5 for o in outs)


def test_bad_augment_ranges_are_refused():
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(0.9, 0.5))


def _resize_in_one_interpolation(image: np.ndarray, size: int) -> torch.Tensor:
    """The resize as a single antialiased interpolation of the whole image, then the centre crop."""
    h, w = image.shape
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=(new_h, new_w),
                                        mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp(0, 1)


@pytest.mark.parametrize(("shape", "size"), [((1024, 1024), 28), ((2500, 2048), 224), ((8, 2048), 28)])
def test_radiograph_shapes_resize_in_one_interpolation(shape, size):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = Preprocess(_cfg(input_size=size)).resize(image)
    assert torch.equal(out, _resize_in_one_interpolation(image, size))


def test_an_extreme_strip_keeps_only_the_square_the_crop_keeps():
    """A 1 x 65,535 strip at 224 px would resize to 224 x 14.7M floats (13 GB) before the crop: the centre
    square (here the centre pixel) is resized instead."""
    strip = np.linspace(0, 1, 65535, dtype=np.float32)[None, :]
    out = Preprocess(_cfg(input_size=224)).resize(strip)
    assert out.shape == (1, 224, 224)
    assert torch.allclose(out, torch.full_like(out, float(strip[0, 32767])))
    assert torch.equal(Preprocess(_cfg(input_size=224)).resize(strip.T.copy()), out)


def test_a_tall_strip_squashed_is_resized_long_axis_first(monkeypatch):
    from ml import transforms

    strip = np.linspace(0, 1, 4000, dtype=np.float32)[:, None].repeat(3, axis=1)  # 4000 x 3
    pre = Preprocess(_cfg(input_size=32, resize_mode="squash"))
    direct = pre.resize(strip)
    monkeypatch.setattr(transforms, "MAX_RESIZED_PIXELS", 1000)  # as for a 60M x 1 strip
    transposed = pre.resize(strip)
    assert torch.allclose(transposed, direct, atol=1e-6)
    assert torch.all(transposed[0, 1:, 0] > transposed[0, :-1, 0])  # still dark at the top, bright below


def test_gamma_bends_intensities_per_image_and_keeps_order_and_range():
    batch = torch.linspace(0, 1, 32 * 32).view(1, 1, 32, 32).repeat(4, 1, 1, 1)
    still = {"rotation": 0, "translate": 0, "scale": (1, 1), "ratio": (1, 1), "brightness": 0, "contrast": 0}
    out = BatchAugment(AugmentConfig(**still, gamma=(0.5, 2.0)))(batch, torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1
    flat = out.flatten(1)
    assert (flat.diff(dim=1) >= -1e-6).all()  # monotone: gamma never reorders intensities
    mids = out[:, 0, 16, 16]
    assert mids.max() - mids.min() > 0.05  # each image gets its own gamma
    # off by default: the random sequence (and so every older recipe's training) is unchanged
    plain = BatchAugment(AugmentConfig())(batch, torch.Generator().manual_seed(5))
    explicit = BatchAugment(AugmentConfig(gamma=(1.0, 1.0)))(batch, torch.Generator().manual_seed(5))
    assert torch.equal(plain, explicit)
    with pytest.raises(ValueError, match="gamma"):
        AugmentConfig(gamma=(1.5, 1.0))
