import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from hdisc.data import CachedImages, ImageFolder, load_mnist, open_dataset, random_batch, streamed_batches
from hdisc.presets import get_preset
from hdisc.training import train_dm


def test_mnist_is_padded_scaled_and_split():
    x, y = load_mnist("test")
    assert x.shape == (10000, 1, 32, 32) and y.shape == (10000,)
    assert x.min() == -1 and x.max() <= 1 and x[:, :, :2].eq(-1).all()
    assert set(y.unique().tolist()) == set(range(10))
    train = open_dataset(get_preset("mnist32", "cpu").data)
    assert len(train) == 60000  # train + valid; test is held out


def test_mnist_rejects_a_data_dir_and_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="embedded MNIST"):
        open_dataset(get_preset("mnist32", "cpu").data, tmp_path)
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("validation")


def _write_images(folder, n, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_image_folder_crops_resizes_and_scales(tmp_path):
    _write_images(tmp_path / "a" / "b", 3)
    ds = open_dataset(get_preset("afhq128", "smoke").data, tmp_path)
    assert len(ds) == 3
    img = ds[0]
    assert img.shape == (3, 128, 128) and img.min() >= -1 and img.max() <= 1
    assert random_batch(ds, 5, torch.Generator().manual_seed(0)).shape == (5, 3, 128, 128)


def test_folder_dataset_needs_a_data_dir():
    with pytest.raises(ValueError, match="pass data_dir"):
        open_dataset(get_preset("anime64", "smoke").data, "")


def test_missing_empty_and_file_data_dirs_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: pass data_dir"):
        ImageFolder(tmp_path / "nope", 64)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolder(tmp_path, 64)
    with pytest.raises(NotADirectoryError, match="pass the folder"):
        ImageFolder(tmp_path / "notes.txt", 64)


def test_one_bad_file_is_skipped_with_a_warning(tmp_path):
    _write_images(tmp_path, 2)
    (tmp_path / "0.png").write_bytes(b"not a png")
    ds = ImageFolder(tmp_path, 32)
    with pytest.warns(UserWarning, match="skipping unreadable image .*0.png"):
        img = ds[0]
    assert torch.equal(img, ds[1])


def test_only_bad_files_raise(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    ds = ImageFolder(tmp_path, 32)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could be read"):
        ds[0]


def _jpegs(folder, n, size=40):
    folder.mkdir()
    gen = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(gen.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(folder / f"{i:03d}.jpg")
    return folder


def test_streamed_batches_are_random_batchs_from_worker_processes(tmp_path):
    folder = ImageFolder(_jpegs(tmp_path / "imgs", 12), 32)

    def gen_for(step):
        return torch.Generator().manual_seed(1000 + step)

    streamed = list(streamed_batches(folder, 5, range(3, 7), gen_for, workers=2))
    assert len(streamed) == 4
    for step, batch in zip(range(3, 7), streamed, strict=True):
        assert torch.equal(batch, random_batch(folder, 5, gen_for(step)))  # the same images, resumable at any step


def test_a_resized_cache_holds_the_folders_images_bit_for_bit(tmp_path):
    folder = ImageFolder(_jpegs(tmp_path / "imgs", 5), 32)
    cache = CachedImages(folder, tmp_path / "cache" / "imgs.npy", workers=0)
    assert len(cache) == 5 and cache.pixels.dtype == np.uint8
    assert all(torch.equal(cache[i], folder[i]) for i in range(5))
    stamp = (tmp_path / "cache" / "imgs.npy").stat().st_mtime_ns
    CachedImages(folder, tmp_path / "cache" / "imgs.npy")  # the same folder: reused, not rebuilt
    assert (tmp_path / "cache" / "imgs.npy").stat().st_mtime_ns == stamp
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "imgs" / "new.png")
    grown = CachedImages(ImageFolder(tmp_path / "imgs", 32), tmp_path / "cache" / "imgs.npy")
    assert len(grown) == 6  # another folder: rebuilt
    first = sorted((tmp_path / "imgs").iterdir())[0]  # the same name and byte size, other pixels
    Image.fromarray(255 - np.asarray(Image.open(first))).save(first)
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    again = ImageFolder(tmp_path / "imgs", 32)
    assert torch.equal(CachedImages(again, tmp_path / "cache" / "imgs.npy")[0], again[0])  # rebuilt, not stale


def test_a_folder_composites_transparency_skips_pipes_and_tiny_images_and_refuses_other_channels(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 255  # red hidden under fully transparent pixels
    Image.fromarray(rgba, "RGBA").save(folder / "a.png")
    os.mkfifo(folder / "pipe.png")  # reading it would block forever
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "tiny.png")
    ds = ImageFolder(folder, 32)
    assert [p.name for p in ds.files] == ["a.png", "tiny.png"]
    assert torch.equal(ds[0], torch.ones(3, 32, 32))  # transparent over white, not the hidden red
    with pytest.warns(UserWarning, match=r"tiny.png: it is 1x1, under an eighth of the 32-px preset"):
        assert torch.equal(ds[1], ds[0])  # skipped: the next readable image in its place
    with pytest.raises(ValueError, match=r"channels=4 is not supported: valid 1 \(grey\) or 3 \(RGB\)"):
        ImageFolder(folder, 32, channels=4)


def test_dm_training_streams_a_folder_to_the_same_weights(tmp_path):
    smoke = get_preset("mnist32", "smoke")
    folder = ImageFolder(_jpegs(tmp_path / "imgs", 8), 32, channels=1)
    cfg = dataclasses.replace(smoke.dm, steps=3)
    a = train_dm(smoke.unet, cfg, folder, tmp_path / "a", seed=0, progress=False, log_every=1)
    b = train_dm(smoke.unet, cfg, folder, tmp_path / "b", seed=0, progress=False, log_every=1, workers=2)
    assert a["loss_curve"] == b["loss_curve"]
