"""The explorer and the MOS widget, driven through their ipywidgets state (no browser)."""

import json

import numpy as np
import pytest
import torch

from hdisc.direction_set import DirectionSet
from hdisc.widgets import Explorer, MosAnnotator


def test_explorer_updates_the_image_when_a_control_moves(smoke, unet, dirs):
    real = torch.rand(2, 1, 32, 32) * 2 - 1
    ex = Explorer(unet, dirs, order=[2, 0, 1, 3], real=real, invert_steps=4)
    assert ex.direction.value == 2 and ex.strength.min == -smoke.discovery.S
    first = bytes(ex.image.value)
    assert first.startswith(b"\x89PNG")
    ex.strength.value = smoke.discovery.S
    assert bytes(ex.image.value) != first
    left, right = ex.render()
    assert not torch.allclose(left, right)
    ex.source.value = "real image"
    ex.index.value = 1
    assert 1 in ex._inverted and ex.image.value != first


def test_explorer_switches_the_source_of_directions(smoke, unet, discovery):
    from hdisc.baselines import random_directions
    from hdisc.direction_set import FixedDirections

    learned = DirectionSet.of(discovery.shift, smoke.discovery, unet)
    rand = learned.with_shift(FixedDirections(random_directions(3, (64, 16, 16)), rel=0.5), 3, ("R0", "R1", "R2"))
    ex = Explorer(unet, learned, order=[2, 0, 1, 3], sources={"random": rand})
    ex.strength.value = smoke.discovery.S
    learned = bytes(ex.image.value)
    ex.source_menu.value = "random"
    assert [label for label, _ in ex.direction.options] == ["R0", "R1", "R2"] and ex.direction.value == 0
    assert bytes(ex.image.value) != learned and "random direction R0" in ex.caption.value
    ex.direction.value = 2
    assert "R2" in ex.caption.value
    ex.source_menu.value = "learned"
    assert ex.direction.value == 2 and bytes(ex.image.value) == learned


def test_explorer_at_zero_strength_shows_the_original_twice(unet, dirs):
    left, right = Explorer(unet, dirs).render()
    assert torch.equal(left, right)


def _panels():
    return {k: np.full((8, 8, 1), 40 * k, np.uint8) for k in range(3)}


def test_mos_widget_saves_every_mark_and_resumes(tmp_path):
    w = MosAnnotator(_panels(), tmp_path, "alice", model_id="m")
    w.yes.click()
    w.no.click()
    assert json.loads((tmp_path / "alice.json").read_text())["marks"] == {"0": 1, "1": 0}
    again = MosAnnotator(_panels(), tmp_path, "alice", model_id="m")
    assert again.position == 2
    again.yes.click()
    assert json.loads((tmp_path / "alice.json").read_text())["marks"] == {"0": 1, "1": 0, "2": 1}
    assert "All 3" in again.label.value


def test_mos_widget_rejects_bad_names_and_other_models(tmp_path):
    with pytest.raises(ValueError, match="assessor name"):
        MosAnnotator(_panels(), tmp_path, "../evil")
    MosAnnotator(_panels(), tmp_path, "bob", model_id="m").yes.click()
    with pytest.raises(ValueError, match="marks for model 'm'"):
        MosAnnotator(_panels(), tmp_path, "bob", model_id="other")


def test_explore_ranks_the_directions_and_starts_from_real_images_by_dataset_or_folder(tmp_path, trained):
    from PIL import Image

    from hdisc import explore

    ex = explore(trained["directions"], dm=trained["dm_checkpoint"], real="mnist32", n_real=3, invert_steps=2)
    assert ex.real.shape == (3, 1, 32, 32) and not ex.index.disabled and "real image" in ex.source.options
    assert sorted(k for _, k in ex.direction.options) == list(range(4))  # every direction, ranked
    ex.source.value = "real image"
    assert ex.image.value  # the inverted digit, edited
    for i in range(2):
        Image.fromarray(np.full((40, 40), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    folder = explore(trained["directions"], dm=trained["dm_checkpoint"], real=tmp_path, n_real=2, n_rank=0)
    assert folder.real.shape == (2, 1, 32, 32) and [k for _, k in folder.direction.options] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=f"asked for 8 real images but {tmp_path} has 2"):
        explore(trained["directions"], dm=trained["dm_checkpoint"], real=tmp_path, n_rank=0)
