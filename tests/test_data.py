import numpy as np
import pytest
import torch
from PIL import Image

from hdisc.data import ImageFolder, load_mnist, open_dataset, random_batch
from hdisc.presets import get_preset


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
