"""The interpretability evaluation on synthetic strokes whose attributes are known."""

import numpy as np
import pytest
import torch

from hdisc.interpret import (
    MEASURES,
    disentanglement,
    evaluate,
    morphometry,
    name_floor,
    named_beyond,
    passing_first,
    passing_interval,
    realism,
)

S = 4.0
SVALS = torch.linspace(-S, S, 9)


def stroke(thickness: float = 3.0, shear: float = 0.0, height: int = 20) -> torch.Tensor:
    """A straight, anti-aliased stroke [1, 32, 32] in [-1, 1]: ``thickness`` pixels wide,
    its top moved ``shear`` pixels right per row above the centre."""
    rows = torch.arange(32.0)[:, None]
    cols = torch.arange(32.0)[None, :]
    top = 16 - height // 2
    centre = 16 + shear * (16 - rows)
    ink = (thickness / 2 + 0.5 - (cols - centre).abs()).clamp(0, 1) * ((rows >= top) & (rows < top + height))
    return (ink * 2 - 1)[None]


def sweeps_of(edit) -> torch.Tensor:
    """[1, N=3, 9, 1, 32, 32]: ``edit(base, s)`` on three base strokes at the 9 strengths."""
    bases = [dict(thickness=3.0, shear=0.0), dict(thickness=4.0, shear=0.1), dict(thickness=3.0, shear=-0.1)]
    return torch.stack([torch.stack([edit(b, float(s)) for s in SVALS]) for b in bases])[None]


def thicker(b, s):
    return stroke(b["thickness"] + 0.5 * s, b["shear"])


def slanted(b, s):
    return stroke(b["thickness"], b["shear"] + 0.08 * s)


def mirrored(b, s):
    return slanted(b, -s)


def jumps(b, s):  # nothing until full strength, then another shape
    return stroke(b["thickness"], b["shear"]) if abs(s) < S else stroke(20.0, 0.0, height=24)


def same_class(x):
    return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()


def class_by_ink(x):  # class 1 once more than a quarter of the image is ink
    return torch.nn.functional.one_hot(((x > 0).float().mean((1, 2, 3)) > 0.25).long(), 10).float()


def test_morphometry_reads_thickness_and_slant():
    m = morphometry(torch.stack([stroke(2), stroke(6), stroke(3, 0.3), stroke(3, -0.3)]))
    col = {name: i for i, name in enumerate(MEASURES)}
    assert m[1, col["thickness"]] > m[0, col["thickness"]] + 2
    assert m[2, col["slant"]] > 0.2 > -0.2 > m[3, col["slant"]]
    assert abs(m[0, col["slant"]]) < 0.05 and m[0, col["height"]] == 20
    assert np.isnan(morphometry(-torch.ones(1, 1, 32, 32))).all()  # no ink, no measures


@pytest.mark.parametrize(("edit", "name"), [(thicker, "thickness+"), (slanted, "slant+"), (mirrored, "slant-")])
def test_a_known_edit_is_named_signed_and_smooth(edit, name):
    row = evaluate(sweeps_of(edit), SVALS, same_class, S)["directions"][0]
    assert row["attribute"] == name
    assert abs(row["attribute_rho"]) > 0.9
    assert row["signed"] and row["sign_cos"] < -0.5
    assert row["smooth"] and row["passes"]


def test_a_jump_to_another_shape_is_not_smooth_and_loses_the_class():
    result = evaluate(torch.cat([sweeps_of(thicker), sweeps_of(jumps)]), SVALS, class_by_ink, S)
    keep, jump = result["directions"]
    assert keep["keep_half"] == 1.0 and keep["passes"]
    assert not jump["smooth"] and jump["jump"] > 0.9
    assert jump["keep_full"] < 1.0 and not jump["passes"]
    assert result["summary"]["interpretable_fraction"] == 0.5 and result["summary"]["interpretable"] == [0]
    assert result["summary"]["interpretable_interval"] == [0.5, 0.5]  # clear on every noise: no spread


def test_the_passing_interval_is_wide_only_for_a_direction_on_the_threshold():
    K, N = 4, 10
    sign, jump = -np.ones((K, N)), np.full((K, N), 0.2)
    keep = np.ones((K, N))
    keep[1] = 0.0  # fails on every noise
    assert passing_interval(keep, sign, jump, 0.8) == [0.75, 0.75]
    keep[2, :2] = 0.0  # keeps the class on 8 of 10 noises: exactly on the 0.8 threshold
    lo, hi = passing_interval(keep, sign, jump, 0.8)
    assert lo == 0.5 and hi == 0.75
    sign[3, :6] = 0.5  # the sign test fails on average
    assert passing_interval(keep, sign, jump, 0.8)[1] <= 0.75
    assert passing_interval(keep, sign, jump, 0.8)[0] == 0.25  # now directions 2 and 3 can both fail


def test_an_unsigned_edit_fails_the_sign_test():
    row = evaluate(sweeps_of(lambda b, s: thicker(b, abs(s))), SVALS, same_class, S)["directions"][0]
    assert not row["signed"] and row["sign_cos"] > 0.9 and not row["passes"]


def test_disentanglement_is_one_for_a_permutation_and_low_when_everything_moves_everything():
    assert disentanglement(np.eye(6))["disentanglement"] == pytest.approx(1.0)
    assert disentanglement(np.eye(6))["completeness"] == pytest.approx(1.0)
    assert disentanglement(np.ones((6, 6)))["disentanglement"] == pytest.approx(0.0, abs=1e-6)


def test_strengths_must_be_symmetric():
    with pytest.raises(ValueError, match="symmetric about 0"):
        evaluate(sweeps_of(thicker), SVALS + 1, same_class, S)


def test_realism_is_one_when_edits_look_like_the_raw_samples():
    torch.manual_seed(0)
    raw = torch.randn(200, 1, 4, 4)
    real = torch.randn(200, 1, 4, 4)
    far = torch.randn(200, 1, 4, 4) + 3

    def features(x):
        return x.flatten(1)

    def logits(x):
        return x.flatten(1)[:, :10]

    same = realism(logits, features, raw, raw, real)
    worse = realism(logits, features, raw, far, real)
    assert same["fd_ratio"] == pytest.approx(1.0) and worse["fd_ratio"] > 5


def test_directions_that_pass_lead_and_each_group_keeps_its_order():
    rows = [{"k": k, "passes": k in (1, 4)} for k in range(5)]
    assert passing_first([3, 4, 0, 1, 2], rows) == [4, 1, 3, 0, 2]
    assert passing_first([3, 4, 0, 1, 2], rows, named=[1]) == [1, 4, 3, 0, 2]  # named beyond random lead


def test_a_name_counts_only_beyond_the_null_and_only_for_a_direction_that_passes():
    record = evaluate(torch.cat([sweeps_of(thicker), sweeps_of(slanted)]), SVALS, same_class, S)
    s = record["summary"]
    assert s["top_rho"] == [round(r["attribute_rho"], 4) for r in record["directions"]]
    assert s["attributes"] == ["thickness+", "slant+"]  # a probe's record keeps its names
    assert named_beyond(s, 0.5) == [0, 1] and named_beyond(s, 1.0) == []  # rank correlations reach 1 at most
    # the floor is a quantile of |rho| over the null's directions, whatever their sign
    assert name_floor([0.1, -0.8, 0.3, -0.2, 0.0]) == pytest.approx(np.quantile([0.1, 0.8, 0.3, 0.2, 0.0], 0.95))
    assert name_floor([0.1, -0.8, 0.3], q=1.0) == pytest.approx(0.8)
    # direction 1 is named but fails, direction 2 passes without a name beyond the floor
    assert named_beyond({"interpretable": [0, 2], "top_rho": [-0.9, 0.95, 0.4]}, 0.5) == [0]
