"""Augmentations of training crops: each transform against what it must do, and seeded repeatability."""
import torch

from simsearch.training.augment import AugmentSettings, augment

NONE = AugmentSettings(flips=False, rotations=False, brightness=0.0, contrast=0.0, solarize=0.0, dropout=0.0)


def crops(count=16, height=24, width=24, seed=0):
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.2  # room to shift


def run(batch, settings, seed=1):
    return augment(batch, settings, torch.Generator().manual_seed(seed))


def test_shapes_ranges_and_the_input_untouched():
    batch = crops()
    before = batch.clone()
    out = run(batch, AugmentSettings(solarize=0.5, dropout=0.5))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(batch, before)
    assert torch.equal(run(batch, NONE), batch)  # everything off: the identity


def test_the_same_seed_gives_the_same_crops_another_seed_others():
    batch = crops()
    settings = AugmentSettings(solarize=0.5, dropout=0.5)
    assert torch.equal(run(batch, settings, seed=3), run(batch, settings, seed=3))
    assert not torch.equal(run(batch, settings, seed=3), run(batch, settings, seed=4))


def test_flips_and_rotations_only_move_pixels():
    batch = crops()
    out = run(batch, AugmentSettings(brightness=0.0, contrast=0.0, solarize=0.0, dropout=0.0))
    for sample, result in zip(batch, out):
        moved = [torch.rot90(flipped, k, dims=(1, 2)) for flipped in (sample, sample.flip(2)) for k in range(4)]
        assert any(torch.equal(result, candidate) for candidate in moved)
    wide = crops(height=16, width=24)  # not square: 180-degree turns only, the shape kept
    assert run(wide, replace_all(NONE, rotations=True)).shape == wide.shape
    turned = run(wide, replace_all(NONE, rotations=True))
    for sample, result in zip(wide, turned):
        assert torch.equal(result, sample) or torch.equal(result, torch.rot90(sample, 2, dims=(1, 2)))


def test_brightness_shifts_and_contrast_scales_each_crop_within_their_range():
    batch = crops()
    shifted = run(batch, replace_all(NONE, brightness=0.1))
    delta = (shifted - batch).flatten(1)
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-6)  # one shift per crop
    assert delta.abs().max() <= 0.1 + 1e-6 and delta[:, 0].std() > 0
    scaled = run(batch, replace_all(NONE, contrast=0.2))
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    centred, out = (batch - mean).flatten(1), (scaled - mean).flatten(1)
    factor = (out * centred).sum(1) / (centred**2).sum(1)  # least squares: one factor per crop
    assert torch.allclose(out, factor[:, None] * centred, atol=1e-5)
    assert ((factor >= 0.8 - 1e-4) & (factor <= 1.2 + 1e-4)).all() and factor.std() > 0


def test_solarize_inverts_the_bright_values_and_dropout_zeroes_rectangles():
    batch = crops()
    solarized = run(batch, replace_all(NONE, solarize=1.0))
    bright = batch > 0.5
    assert torch.allclose(solarized[bright], 1.0 - batch[bright]) and torch.equal(solarized[~bright], batch[~bright])
    dropped = run(batch, replace_all(NONE, dropout=1.0))
    for sample, result in zip(batch, dropped):
        zero = (result == 0).all(dim=0)
        assert zero.any() and zero.float().mean() <= 3 * (1 / 4) ** 2 + 1e-6  # 1-3 rectangles of up to a quarter side
        assert torch.equal(result[:, ~zero], sample[:, ~zero])


def test_clean_settings_keep_the_users_choices_but_not_solarize_or_dropout():
    settings = AugmentSettings(brightness=0.0, contrast=0.1, solarize=0.3, dropout=0.4)
    clean = settings.clean()
    assert (clean.brightness, clean.contrast, clean.solarize, clean.dropout) == (0.0, 0.1, 0.0, 0.0)
    assert clean.flips == settings.flips and clean.rotations == settings.rotations


def replace_all(settings, **changes):
    from dataclasses import replace

    return replace(settings, **changes)
