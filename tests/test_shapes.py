import numpy as np
import pytest
import torch

from hdisc.data import held_out_images, open_dataset
from hdisc.factors import ShapeNet, read_factors, validate_readers
from hdisc.presets import get_preset
from hdisc.shapes import CONTINUOUS, FACTORS, RANGES, SHAPES, Shapes, coverage, draw_factors, read_factors_csv


def test_generation_is_deterministic_and_a_slice_is_the_same_items():
    a, b = Shapes.generate(12, seed=3), Shapes.generate(12, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.factors, b.factors)
    tail = Shapes.generate(4, seed=3, start=8)
    assert torch.equal(tail.images, a.images[8:]) and torch.equal(tail.factors, a.factors[8:])
    assert not torch.equal(Shapes.generate(12, seed=4).images, a.images)


def test_factors_are_drawn_in_their_ranges_and_images_in_minus_one_one():
    data = Shapes.generate(400, seed=0)
    assert data.images.shape == (400, 3, 32, 32) and data.images.min() >= -1 and data.images.max() <= 1
    assert set(data.factors[:, 0].long().tolist()) == set(range(len(SHAPES)))
    for j, name in enumerate(FACTORS[1:], 1):
        low, high = RANGES[name]
        assert low <= data.factors[:, j].min() and data.factors[:, j].max() <= high, name


def test_every_shape_has_the_area_its_scale_says_and_stays_inside_the_image():
    for shape in SHAPES:
        for scale in RANGES["scale"]:
            alpha = coverage(shape, scale, 40.0, RANGES["x"][0], RANGES["y"][1])
            # Pillow fills the outline's sub-pixels too: up to 4% more at the smallest scale
            assert -0.01 < (alpha.sum() - scale**2) / scale**2 < 0.05, shape
            assert alpha[0].max() == 0 and alpha[-1].max() == 0 and alpha[:, 0].max() == 0, shape


def test_continuous_factors_overlap_in_pixels_between_neighbouring_values():
    f = draw_factors(0, 0)
    f2 = {**f, "x": f["x"] + 0.5}
    a = coverage(f["shape"], f["scale"], f["orientation"], f["x"], f["y"])
    b = coverage(f2["shape"], f2["scale"], f2["orientation"], f2["x"], f2["y"])
    assert (np.minimum(a, b).sum() / a.sum()) > 0.8


def test_the_closed_form_readers_recover_every_continuous_factor():
    data = Shapes.generate(600, seed=11)
    read = read_factors(data.images, data.factors[:, 0].long())
    for j, name in enumerate(FACTORS):
        if name in CONTINUOUS:
            truth, got = data.factors[:, j].double(), read[:, j].double()
            r2 = 1 - (got - truth).square().sum() / (truth - truth.mean()).square().sum()
            assert r2 >= 0.99, (name, r2)


def test_an_empty_image_reads_nan_but_its_background():
    grey = torch.full((1, 3, 32, 32), -0.5)
    read = read_factors(grey, torch.tensor([0]))
    assert torch.isnan(read[0, :-1]).all() and read[0, -1].item() == pytest.approx(0.25)


def test_the_committed_shape_reader_meets_its_bar_on_held_out_images():
    from hdisc.factors import load_shape_net

    record = validate_readers(load_shape_net(), n=400, seed=99)
    assert record["shape_accuracy"] >= 0.98
    assert min(record["r2"].values()) >= 0.95


def test_shapes32_is_a_dataset_like_any_other():
    preset = get_preset("shapes32", "smoke")
    assert preset.data.source == "shapes" and preset.unet.in_channels == 3
    assert get_preset("shapes32", "cpu").unet.h_shape == (128, 4, 4)
    train = open_dataset(preset.data)
    assert len(train) == 50_000 and train.targets.shape == (50_000, len(FACTORS))
    assert torch.equal(train[5], Shapes.generate(1, seed=0, start=5).images[0])
    test = held_out_images(preset.data, None, 3)
    assert torch.equal(test, Shapes.generate(3, seed=1).images)
    with pytest.raises(ValueError, match="shapes32 is generated; got data_dir='/x'"):
        open_dataset(preset.data, "/x")
    with pytest.raises(ValueError, match="unknown shapes32 split 'valid'"):
        open_dataset(preset.data, split="valid")


def test_export_round_trips_and_never_overwrites(tmp_path):
    data = Shapes.generate(5, seed=2)
    table = data.export(tmp_path / "out")
    names, factors = read_factors_csv(table)
    assert names == [f"{i:06d}.png" for i in range(5)] and torch.equal(factors, data.factors)
    folder = open_dataset(get_preset("afhq128", "smoke").data.__class__("folder", 32, 3), tmp_path / "out")
    back = torch.stack([folder[i] for i in range(5)])
    assert (back - data.images).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit PNGs
    before = table.read_bytes()
    with pytest.raises(FileExistsError, match="export into an empty folder"):
        Shapes.generate(2, seed=9).export(tmp_path / "out")
    assert table.read_bytes() == before


@pytest.mark.parametrize("bad", [dict(n=0), dict(n=2.5), dict(n=2, seed=-1), dict(n=2, start=True)])
def test_bad_generation_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="shapes32: .* is out of range"):
        Shapes.generate(**bad)


def test_shape_net_reads_logits_and_features():
    net = ShapeNet()
    x = torch.zeros(2, 3, 32, 32)
    assert net(x).shape == (2, len(SHAPES)) and net.features(x).shape == (2, 128)
    shape, conf = net.read(x)
    assert shape.shape == (2,) and ((conf > 0) & (conf <= 1)).all()


def test_sample_quality_tells_a_biased_sampler_from_the_data():
    from hdisc.factors import load_shape_net, shapes_quality

    net = load_shape_net()
    real = Shapes.generate(400, seed=1).images
    fair = shapes_quality(net, Shapes.generate(200, seed=5).images, real)
    squares = Shapes.generate(800, seed=6)
    only = squares.images[squares.factors[:, 0] == SHAPES.index("square")][:200]
    biased = shapes_quality(net, only, real)
    assert fair["samples"]["shape_tv"] < 0.1 and biased["samples"]["shape_tv"] > 0.6
    assert biased["samples"]["fd_shapenet"] > 3 * fair["samples"]["fd_shapenet"]
    assert set(fair["samples"]["factor_distance"]) == set(CONTINUOUS) and fair["real"]["empty"] == 0
