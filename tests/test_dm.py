"""The DM value: network, configuration and schedule in one place (hdisc.dm)."""

import pytest
import torch

from hdisc.backbone import build_unet, capture_h, fingerprint, load_dm, perturb_zero_params, save_unet
from hdisc.dm import DM
from hdisc.schedule import DEFAULT, Schedule, ddim_steps


def test_a_dm_answers_with_its_network_and_reads_through_to_it(smoke, unet):
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([999, 10])
    with torch.no_grad():
        assert torch.equal(unet(x, t), unet.net(x, t))  # an eps DM passes the output through
    assert unet.middle_block is unet.net.middle_block and unet.in_channels == 1 and unet.image_size == 32
    assert unet.config == smoke.unet and unet.schedule == DEFAULT
    with torch.no_grad(), capture_h(unet) as hs:  # h-space hooks attach to the network through it
        unet(x, t)
    assert hs[0].shape == (2, *smoke.unet.h_shape)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        unet.nothing_here  # noqa: B018


def test_a_dm_builds_its_chains_from_its_own_schedule(smoke):
    cosine = Schedule(kind="cosine")
    dm = DM(build_unet(smoke.unet), smoke.unet, cosine)
    assert torch.equal(dm.steps(10).abar, ddim_steps(10, cosine).abar)
    short = DM(dm.net, smoke.unet, Schedule(T=100))
    assert short.steps(10).t.tolist()[0] == 99
    with pytest.raises(ValueError, match=r"t_stop=400 shifts none of the M=10 steps .*\(T=100"):
        short.edit_steps(10, 400)
    with pytest.raises(ValueError, match=r"M=200 must be between 1 and T=100"):
        short.steps(200)


def test_a_saved_dm_loads_as_the_same_value_with_the_same_fingerprint(tmp_path, smoke, unet):
    cosine = Schedule(kind="cosine")
    save_unet(unet.net, smoke.unet, tmp_path / "dm.pt", cosine)
    loaded = load_dm(tmp_path / "dm.pt")
    assert isinstance(loaded, DM) and loaded.config == smoke.unet and loaded.schedule == cosine
    assert fingerprint(loaded.net) == fingerprint(unet.net)  # what direction files record of their DM
    with pytest.raises(TypeError, match=r"save_unet\(dm.net, dm.config, path, dm.schedule\)"):
        save_unet(unet, smoke.unet, tmp_path / "wrong.pt")
    assert not (tmp_path / "wrong.pt").exists()


def test_a_dm_moves_with_its_schedule_tensors(smoke):
    v = Schedule(kind="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction="v")
    dm = DM(perturb_zero_params(build_unet(smoke.unet), 0.05), smoke.unet, v).to(torch.float32)
    assert dm.abar.dtype == torch.float32 and "abar" not in dm.state_dict()  # not saved with the weights
    assert set(dm.state_dict()) == {f"net.{k}" for k in dm.net.state_dict()}  # the weights, and nothing else
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([999, 3])
    with torch.no_grad():  # the schedule's abar, where the conversion reads it
        want = v.alphas_cumprod().float()[t].view(-1, 1, 1, 1)
        assert torch.allclose(dm(x, t), want.sqrt() * dm.net(x, t) + (1 - want).sqrt() * x, atol=1e-6)
