import numpy as np
import pytest

from simsearch import ConfigError, DatasetError, Normalization, compute_statistics, resolve_channels
from simsearch.io.preprocess import channel_correlation


def test_normalization_matches_hand_computation():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 4096, (20, 30, 2)).astype(np.uint16) for _ in range(7)]
    stats = compute_statistics(iter(images))
    lows = np.array([[np.percentile(im[..., c], 5) for c in range(2)] for im in images])
    highs = np.array([[np.percentile(im[..., c], 95) for c in range(2)] for im in images])
    expected_low = [np.percentile(lows[:, c], 0.5) for c in range(2)]
    expected_high = [np.percentile(highs[:, c], 99.5) for c in range(2)]
    np.testing.assert_allclose(stats.normalization.low, expected_low)
    np.testing.assert_allclose(stats.normalization.high, expected_high)
    np.testing.assert_allclose(stats.image_lows, lows)

    out = stats.normalization.apply(images[0])
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    manual = np.clip((images[0][..., 1] - expected_low[1]) / (expected_high[1] - expected_low[1]), 0, 1)
    np.testing.assert_allclose(out[..., 1], manual, rtol=1e-5, atol=1e-6)


def test_constant_channel_does_not_divide_by_zero():
    norm = Normalization((5.0,), (5.0,))
    out = norm.apply(np.full((4, 4, 1), 5, np.uint8))
    assert np.all(out == 0)


def test_normalization_round_trip_and_fingerprint():
    norm = Normalization((1.5, 2.0), (100.0, 200.0))
    again = Normalization.from_dict(norm.to_dict())
    assert again == norm and again.fingerprint() == norm.fingerprint()
    assert Normalization((1.5, 2.0), (100.0, 201.0)).fingerprint() != norm.fingerprint()
    with pytest.raises(ConfigError, match="normalization"):
        Normalization.from_dict({"low": [1]})


def test_channel_correlation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 50))
    image = np.stack([a, 2 * a + 1, -a, np.full_like(a, 3.0)], axis=-1)
    corr = channel_correlation(image)
    np.testing.assert_allclose(corr[0, 1], 1.0, atol=1e-9)
    np.testing.assert_allclose(corr[0, 2], -1.0, atol=1e-9)
    assert corr[0, 3] == 0 and corr[3, 3] == 1  # constant channel: no NaN


def test_resolve_channels_validates():
    assert resolve_channels(1) == (0,)
    assert resolve_channels(3) == (0, 1, 2)
    assert resolve_channels(5) == (0, 1, 2)
    assert resolve_channels(5, [4, 1]) == (4, 1)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_channels(3, [3])
    with pytest.raises(ConfigError, match="1 to 3"):
        resolve_channels(5, [0, 1, 2, 3])
    with pytest.raises(ConfigError, match="repeats"):
        resolve_channels(3, [1, 1])


def test_statistics_of_nothing_is_a_clear_error():
    with pytest.raises(DatasetError, match="no readable image"):
        compute_statistics(iter([]))


@pytest.mark.parametrize("dtype, top", [(np.uint8, 256), (np.uint16, 65536), (np.uint16, 40)])
def test_counted_percentiles_equal_numpys(monkeypatch, dtype, top):
    """8- and 16-bit percentiles come from value counts in blocks: the same numbers as np.percentile."""
    import simsearch.io.preprocess as preprocess

    monkeypatch.setattr(preprocess, "_HISTOGRAM_ROWS", 1000)  # many blocks, the last one short
    rng = np.random.default_rng(3)
    for shape in [(77, 91, 3), (1, 1, 1), (40, 50, 2)]:
        image = (rng.gamma(2.0, top / 8, size=shape) % top).astype(dtype)
        for low, high in [(5.0, 95.0), (0.5, 99.5), (0.0, 100.0), (33.3, 66.7)]:
            got = preprocess.image_percentiles(image, low=low, high=high)
            flat = image.reshape(-1, shape[-1])
            np.testing.assert_allclose(got[0], np.percentile(flat, low, axis=0), rtol=0, atol=1e-9)
            np.testing.assert_allclose(got[1], np.percentile(flat, high, axis=0), rtol=0, atol=1e-9)


def test_parse_channels_reads_what_people_type_and_names_the_parameter(capsys):
    from simsearch import ConfigError, parse_channels
    from simsearch.cli.main import main

    assert parse_channels("0,2,1") == [0, 2, 1] and parse_channels("0 2, 1") == [0, 2, 1] and parse_channels(" 3 ") == [3]
    assert parse_channels("") is None and parse_channels(None) is None and parse_channels(" , ") is None
    with pytest.raises(ConfigError, match=r"channels: '0 x' is not a list of channel numbers"):
        parse_channels("0,x")
    with pytest.raises(SystemExit):
        main(["embed", "somewhere", "--channels", "0,x"])
    assert "channels: '0 x' is not a list of channel numbers" in capsys.readouterr().err


def test_low_and_span_is_the_one_mapping_of_values_to_the_unit_range():
    norm = Normalization((1.0, 5.0, 2.0), (3.0, 5.0, 10.0))
    low, span = norm.low_and_span([2, 1])
    assert low.tolist() == [2.0, 5.0] and span.tolist() == [8.0, 1.0]  # a constant channel keeps span 1
    image = np.array([[[2.0, 5.0, 6.0]]], np.float32)
    np.testing.assert_allclose(norm.apply(image), [[[0.5, 0.0, 0.5]]])


def test_per_image_normalization_undoes_each_image_s_exposure():
    """Per image, an image recorded at a fifth of the gain with an offset gives the same patch
    vectors as the original (each is mapped by its own percentiles); over the dataset it does not.
    `auto` chooses per image only where the images' own ranges are a small part of the common one."""
    from simsearch import DenseEmbedder, PatchGeometry, load_backbone
    from simsearch.io.preprocess import choose_normalization

    rng = np.random.default_rng(0)
    bright = np.zeros((96, 128, 1), np.float64)
    yy, xx = np.mgrid[:96, :128]
    for y, x in ((30, 40), (60, 90), (70, 30)):
        bright[..., 0] += 30000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 60.0)
    bright = np.clip(bright + 2000 + rng.normal(0, 300, bright.shape), 0, 65535)
    dim = np.round(bright / 5 + 7000).astype(np.uint16)
    bright = np.round(bright).astype(np.uint16)
    backbone = load_backbone("efficientnet-lite0")
    stats = compute_statistics([bright, dim])
    vectors = {}
    for mode in ("dataset", "image"):
        normalization = choose_normalization(stats, mode)
        assert normalization.per_image == (mode == "image") and normalization.low == stats.normalization.low
        embedder = DenseEmbedder(backbone, normalization, PatchGeometry.for_patch(32), channels=(0,), device="cpu")
        vectors[mode] = [embedder.embed(image).vectors for image in (bright, dim)]
    cosine = lambda a, b: float(np.mean(np.sum(a * b, axis=-1)))  # noqa: E731 (unit vectors)
    assert cosine(*vectors["image"]) > 0.99 > 0.9 > cosine(*vectors["dataset"]), (cosine(*vectors["image"]), cosine(*vectors["dataset"]))
    darker = [np.round(bright.astype(np.float64) / gain + offset).astype(np.uint16) for gain, offset in ((8, 20000), (6, 40000))]
    assert choose_normalization(compute_statistics([bright, dim, *darker]), "auto").per_image  # one range squeezes most images
    assert not choose_normalization(compute_statistics([bright, bright[::-1]]), "auto").per_image
    with pytest.raises(ConfigError, match="normalization: 'per-image' is not one of auto, dataset, image"):
        choose_normalization(stats, "per-image")


def test_an_image_s_own_range_is_counted_once_while_it_lives():
    """Every pyramid level and crop of one image read shares its percentiles: the same array
    gives the same range object, an equal copy the same values (counted again), and the entry
    goes with the array."""
    from simsearch.io.preprocess import _IMAGE_RANGES, image_percentiles

    image = np.random.default_rng(3).integers(0, 4096, (64, 80, 2)).astype(np.uint16)
    per_image = Normalization(low=(0.0, 0.0), high=(65535.0, 65535.0), per_image=True)
    first = per_image.for_image(image)
    assert per_image.for_image(image) is first
    assert Normalization(low=(1.0, 1.0), high=(9.0, 9.0), per_image=True).for_image(image) is first  # the image's range only
    copy = image.copy()
    again = per_image.for_image(copy)
    assert again is not first and again == first
    lows, highs = image_percentiles(image)
    assert first.low == tuple(lows) and first.high == tuple(highs)
    held = len(_IMAGE_RANGES)
    del image, copy
    assert len(_IMAGE_RANGES) == held - 2


def test_a_per_image_normalization_is_kept_with_the_project_and_older_ones_read_as_before():
    per_image = Normalization((1.0,), (9.0,), per_image=True)
    assert Normalization.from_dict(per_image.to_dict()) == per_image
    assert Normalization.from_dict({"low": [1.0], "high": [9.0]}) == Normalization((1.0,), (9.0,))  # an older project
    assert Normalization((1.0,), (9.0,)).to_dict() == {"low": [1.0], "high": [9.0]}  # its cache keys unchanged
    assert per_image.fingerprint() != Normalization((1.0,), (9.0,)).fingerprint()
    assert per_image.describe().startswith("per image") and Normalization((1.0,), (9.0,)).describe() == "ch0: [1, 9]"
