"""Fréchet distances with any feature network, the Inception path, and MOS aggregation."""

import json

import numpy as np
import pytest
import torch

from hdisc.metrics import fd, frechet_distance, inception_features, mos


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    # diagonal: sum (sqrt(a) - sqrt(b))^2 + |mu|^2 = (1-2)^2 + (2-1)^2 + 1
    assert frechet_distance(np.zeros(2), s1, np.array([1.0, 0.0]), s2) == pytest.approx(3.0, abs=1e-9)


def test_fd_is_zero_for_the_same_images_and_positive_otherwise():
    x = torch.randn(200, 1, 4, 4)
    flat = torch.nn.Flatten()
    assert fd(flat, x, x) == pytest.approx(0.0, abs=1e-6)
    assert fd(flat, x, x + 1) == pytest.approx(16.0, rel=1e-6)


class _FakeInception(torch.nn.Module):
    """Stands in for inception-2015-12-05.pt: same call, 2048-d features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.shape[1] == 3 and x.min() >= 0 and x.max() <= 255
        return x.float().mean((2, 3)).repeat(1, 683)[:, :2048]


def test_inception_features_load_a_torchscript_file(tmp_path):
    path = tmp_path / "inception.pt"
    torch.jit.script(_FakeInception()).save(str(path))
    feats = inception_features(path)(torch.zeros(2, 1, 8, 8))
    assert feats.shape == (2, 2048) and torch.allclose(feats, torch.full_like(feats, 128.0))


def test_missing_inception_weights_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="inception-2015-12-05.pt"):
        inception_features(tmp_path / "nope.pt")


def test_mos_averages_every_mark_and_reports_none_without_files(tmp_path):
    assert mos([]) is None
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"assessor": "a", "marks": {"0": 1, "1": 0}}))
    b.write_text(json.dumps({"assessor": "b", "marks": {"0": 1, "1": 1}}))
    score = mos([a, b])
    assert score["mos"] == 0.75 and score["per_direction"] == {"0": 1.0, "1": 0.5} and score["assessors"] == ["a", "b"]


def test_mos_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"assessor": "a", "marks": {"0": 2}}))
    with pytest.raises(ValueError, match="0 or 1"):
        mos([bad])
    bad.write_text(json.dumps({"marks": {}}))
    with pytest.raises(ValueError, match="not a MOS annotation file"):
        mos([bad])
