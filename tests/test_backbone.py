import dataclasses

import pytest
import torch

from hdisc.backbone import build_encoder, build_unet, capture_h, load_dm, save_unet
from hdisc.files import atomic_save
from hdisc.presets import DATASETS, get_preset


@pytest.mark.parametrize("dataset", DATASETS)
def test_paper_presets_build_and_have_their_h_shape(dataset):
    cfg = get_preset(dataset, "paper").unet
    unet = build_unet(cfg).eval()
    x = torch.randn(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    with torch.no_grad(), capture_h(unet) as hs:
        eps = unet(x, torch.tensor([500]))
    assert eps.shape == x.shape
    assert hs[0].shape == (1, *cfg.h_shape)


def test_paper_presets_follow_the_paper_tables():
    expected_h = {"mnist32": (256, 4, 4), "anime64": (512, 8, 8),
                  "celebahq128": (512, 8, 8), "afhq128": (512, 8, 8)}
    for dataset, h in expected_h.items():
        p = get_preset(dataset, "paper")
        assert p.unet.h_shape == h
    d = get_preset("celebahq128", "paper").discovery
    assert (d.K, d.S, d.M, d.t_stop, d.batch, d.steps) == (256, 2, 40, 500, 64, 15000)
    m = get_preset("mnist32", "paper")
    assert (m.unet.model_channels, m.unet.channel_mult, m.unet.attention_resolutions) == (64, (1, 2, 2, 4), ())
    assert m.discovery.lambda_mag == m.discovery.lambda_adv == 0.1


@pytest.mark.parametrize("bad", [("mnist", "cpu"), ("mnist32", "gpu")])
def test_unknown_preset_names_raise(bad):
    with pytest.raises(ValueError, match="choose one of"):
        get_preset(*bad)


def test_encoder_builds_for_the_discriminator(smoke):
    enc = build_encoder(smoke.unet)
    assert enc(torch.randn(2, 1, 32, 32), torch.zeros(2, dtype=torch.long)).shape == (2, 1)


def test_checkpoint_round_trip(tmp_path, smoke, unet):
    save_unet(unet.net, smoke.unet, tmp_path / "m.pt")
    loaded = load_dm(tmp_path / "m.pt")
    cfg = loaded.config
    assert cfg == smoke.unet
    for (k, a), b in zip(unet.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_bare_guided_diffusion_state_dict_needs_and_takes_a_config(tmp_path, smoke, unet):
    torch.save(unet.net.state_dict(), tmp_path / "openai.pt")
    with pytest.raises(ValueError, match="pass cfg"):
        load_dm(tmp_path / "openai.pt")
    with pytest.warns(UserWarning, match="does not say which noise schedule"):
        loaded = load_dm(tmp_path / "openai.pt", smoke.unet)
    assert torch.equal(loaded.out[2].weight, unet.out[2].weight)


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path, smoke, unet):
    torch.save(unet.net.state_dict(), tmp_path / "openai.pt")
    wider = dataclasses.replace(smoke.unet, model_channels=64)
    with pytest.raises(ValueError, match=r"shape mismatches .*input_blocks\.0\.0\.weight: file \(32, 1, 3, 3\)"):
        load_dm(tmp_path / "openai.pt", wider)
    deeper = dataclasses.replace(smoke.unet, channel_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="missing keys"):
        load_dm(tmp_path / "openai.pt", deeper)
    save_unet(unet.net, smoke.unet, tmp_path / "hdisc.pt")
    with pytest.raises(ValueError, match="differing fields"):
        load_dm(tmp_path / "hdisc.pt", wider)


def test_missing_checkpoint_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass the path"):
        load_dm(tmp_path / "nope.pt")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    atomic_save({"a": torch.ones(2)}, path)

    def broken(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
