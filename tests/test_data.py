"""Data: TFDS builders (TF-free, array_record), raw-file checks, grain pipelines."""

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnzoo import data
from attnzoo.data import digits, fashion_mnist, pipeline, registry

FASHION_FILES = sorted(fashion_mnist.SHA256)


@pytest.fixture(scope="session")
def tfds_root(tmp_path_factory):
    """One fresh TFDS dir for the session: every dataset is prepared once, here."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def fashion_raw_dir():
    root = os.environ.get("ATTNZOO_DATA_DIR")
    if not root:
        pytest.skip("Fashion-MNIST raw files need ATTNZOO_DATA_DIR (e.g. ../shared/data)")
    folder = Path(root) / "images" / "fashion_mnist"
    if not all((folder / f).is_file() for f in FASHION_FILES):
        pytest.skip(f"Fashion-MNIST raw files not found in {folder}")
    return folder


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """No downloads cache or data dir from the environment; downloads fail, are recorded."""
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATTNZOO_DATA_DIR", raising=False)
    calls = []

    def offline(url, dest, timeout=None):
        calls.append(url)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(fashion_mnist, "download_file", offline)
    return calls


def collect(ds, n=None):
    """Concatenate the batches of an IterDataset (the first `n` batches if given)."""
    batches = []
    for i, batch in enumerate(ds):
        if n is not None and i == n:
            break
        batches.append(batch)
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def digits_ds(tfds_root, split="train", **kw):
    args = dict(batch_size=64, shuffle=False, seed=0, repeat=False, drop_remainder=False)
    args.update(kw)
    return data.make_dataset("digits", split, tfds_dir=tfds_root, with_index=True, **args)


def load_sklearn_digits():
    from sklearn.datasets import load_digits

    return load_digits()


# --- registry ---------------------------------------------------------------------------


def test_registry_and_info():
    names = data.list_datasets()
    assert names == sorted(names) and {"digits", "fashion_mnist"} <= set(names)
    info = data.dataset_info("fashion_mnist")
    assert info["num_classes"] == 10 and info["image_shape"] == (28, 28, 1)
    assert info["splits"] == {"train": 60000, "test": 10000}
    assert data.dataset_info("digits")["image_shape"] == (8, 8, 1)
    assert data.num_examples("digits", "test") == 360
    assert data.num_examples("digits", "train", process_index=0, process_count=2) == 719
    assert data.num_examples("digits", "train", process_index=1, process_count=2) == 718


def test_unknown_names(tfds_root):
    with pytest.raises(ValueError, match=r"Unknown dataset 'fashion-mnist'; known: ") as e:
        data.make_dataset(
            "fashion-mnist", "train", batch_size=8, shuffle=False, seed=0, repeat=False
        )
    assert "digits" in str(e.value) and str(e.value).endswith("Did you mean 'fashion_mnist'?")
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'; known: .*digits"):
        data.dataset_info("imagenet")
    with pytest.raises(ValueError, match="Unknown split 'validation'.*train, test"):
        digits_ds(tfds_root, "validation")


# --- digits -----------------------------------------------------------------------------


def test_digits_split(tfds_root):
    sk = load_sklearn_digits()
    train = collect(digits_ds(tfds_root, "train"))
    test = collect(digits_ds(tfds_root, "test"))
    assert len(train["index"]) == 1437 and len(test["index"]) == 360
    assert len(set(train["index"])) == 1437 and len(set(test["index"])) == 360
    assert not set(train["index"]) & set(test["index"])
    assert sorted([*train["index"], *test["index"]]) == list(range(1797))
    np.testing.assert_array_equal(train["label"], sk.target[train["index"]])
    # Stratified: each class has its share of the test split, to within one example.
    class_sizes = np.bincount(sk.target, minlength=10)
    test_sizes = np.bincount(test["label"], minlength=10)
    assert np.all(np.abs(test_sizes - 360 * class_sizes / 1797) <= 1)


def test_digits_values_match_sklearn(tfds_root):
    sk = load_sklearn_digits()
    source = data.prepare("digits", tfds_dir=tfds_root).as_data_source()  # TFDS's own reader.
    for split, k in [("train", 0), ("train", 1000), ("test", 359)]:
        example = source[split][k]
        i = int(example["index"])
        assert example["image"].dtype == np.uint8 and example["image"].shape == (8, 8, 1)
        np.testing.assert_array_equal(example["image"][..., 0], sk.images[i])
        assert example["label"] == sk.target[i]
    # The pipeline: scaled to [0, 1] by /16, then standardised with the train constants.
    batch = next(iter(digits_ds(tfds_root, "test", batch_size=8)))
    info = data.dataset_info("digits")
    expected = (sk.images[batch["index"]][..., None] / 16.0 - info["mean"]) / info["std"]
    np.testing.assert_allclose(batch["image"], expected, rtol=1e-5, atol=1e-5)


def test_resize_to_upsamples_as_jax_image_resize(tfds_root):
    import jax

    sk = load_sklearn_digits()
    batch = next(iter(digits_ds(tfds_root, "test", batch_size=8, resize_to=24, pad_to=28)))
    assert batch["image"].shape == (8, 28, 28, 1)
    pixels = sk.images[batch["index"]][..., None] / 16.0
    resized = jax.image.resize(pixels, (8, 24, 24, 1), method="linear")
    info = data.dataset_info("digits")
    expected = (np.pad(resized, ((0, 0), (2, 2), (2, 2), (0, 0))) - info["mean"]) / info["std"]
    np.testing.assert_allclose(batch["image"], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="resize_to=4 is smaller than the images"):
        digits_ds(tfds_root, "test", resize_to=4)


@pytest.mark.parametrize("name", ["digits", "fashion_mnist"])
def test_normalisation_constants(name, tfds_root, request):
    kw = {}
    if name == "fashion_mnist":
        kw["data_dir"] = str(request.getfixturevalue("fashion_raw_dir"))
    spec = registry.get_spec(name)
    builder = data.prepare(name, tfds_dir=tfds_root, **kw)
    source = pipeline.RecordSource(builder, "train")
    pixels = np.stack([source[i]["image"] for i in range(len(source))]) / spec.facts.pixel_max
    assert abs(pixels.mean() - spec.facts.mean) < 1e-3 and abs(pixels.std() - spec.facts.std) < 1e-3
    # The fast reader/decoder and the in-memory copy agree with TFDS's data source.
    reference = builder.as_data_source()["train"]
    in_memory = pipeline.InMemorySource(source)
    assert len(in_memory) == len(source) == len(reference)
    for i in [0, 1, len(source) // 2, len(source) - 1]:
        want = reference[i]
        for got in (source[i], in_memory[i]):
            assert set(got) == set(want)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])


# --- fashion_mnist ----------------------------------------------------------------------


def test_fashion_mnist_prepared(tfds_root, fashion_raw_dir):
    builder = data.prepare("fashion_mnist", tfds_dir=tfds_root, data_dir=str(fashion_raw_dir))
    source = builder.as_data_source()
    assert len(source["train"]) == 60000 and len(source["test"]) == 10000
    with gzip.open(fashion_raw_dir / "train-labels-idx1-ubyte.gz") as f:
        raw_labels = f.read()
    with gzip.open(fashion_raw_dir / "t10k-images-idx3-ubyte.gz") as f:
        raw_images = f.read()
    first = source["train"][0]
    assert first["image"].shape == (28, 28, 1) and first["label"] == raw_labels[8]
    assert source["train"][59999]["label"] == raw_labels[8 + 59999]
    last = np.frombuffer(raw_images[16 + 9999 * 784 : 16 + 10000 * 784], np.uint8)
    np.testing.assert_array_equal(source["test"][9999]["image"].ravel(), last)

    ds = data.make_dataset(
        "fashion_mnist", "test", batch_size=1000, shuffle=False, seed=0, repeat=False,
        tfds_dir=tfds_root, data_dir=str(fashion_raw_dir), augment=True, with_index=True,
    )  # fmt: skip
    batch = next(iter(ds))
    assert batch["image"].shape == (1000, 28, 28, 1) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["index"], np.arange(1000))


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_fashion_mnist_checksum_mismatch(tmp_path, fashion_raw_dir, isolated_cache):
    raw = tmp_path / "raw"
    raw.mkdir()
    for fname in FASHION_FILES:
        (raw / fname).symlink_to(fashion_raw_dir / fname)
    bad = "t10k-labels-idx1-ubyte.gz"
    (raw / bad).unlink()
    with gzip.open(fashion_raw_dir / bad) as f:
        labels = bytearray(f.read())
    labels[8] = (labels[8] + 1) % 10
    with gzip.open(raw / bad, "wb") as f:
        f.write(bytes(labels))
    with pytest.raises(data.DataChecksumError) as excinfo:
        data.make_dataset(
            "fashion_mnist", "test", batch_size=8, shuffle=False, seed=0, repeat=False,
            data_dir=str(raw), tfds_dir=str(tmp_path / "tfds"),
        )  # fmt: skip
    message = one_line(excinfo)
    assert str(raw / bad) in message and "sha256 mismatch" in message
    assert not isolated_cache  # Present files are never downloaded again.


def test_fashion_mnist_missing_files(tmp_path, isolated_cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataNotFoundError) as excinfo:
        data.prepare("fashion_mnist", data_dir=str(empty), tfds_dir=str(tmp_path / "tfds"))
    message = one_line(excinfo)
    assert all(fname in message for fname in FASHION_FILES)
    assert f"put the official files in {empty}/" in message
    assert "--config.data.data_dir" in message
    first = next(iter(fashion_mnist.SHA256))
    assert isolated_cache == [fashion_mnist.URL + first]  # Gave up after the first failure.

    with pytest.raises(FileNotFoundError) as excinfo:  # DataNotFoundError is one.
        fashion_mnist.find_raw_files()
    assert "$ATTNZOO_DATA_DIR/images/fashion_mnist/" in one_line(excinfo)


def test_fashion_mnist_download_to_cache(tmp_path, fashion_raw_dir, isolated_cache, monkeypatch):
    def fake_download(url, dest, timeout=None):  # A "download" from the shared copy.
        isolated_cache.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fashion_raw_dir / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(fashion_mnist, "download_file", fake_download)
    files = fashion_mnist.find_raw_files(tmp_path / "nothing_here")
    cache = tmp_path / "cache" / "downloads" / "fashion_mnist"
    assert files == {fname: cache / fname for fname in fashion_mnist.SHA256}
    assert sorted(isolated_cache) == sorted(fashion_mnist.URL + f for f in FASHION_FILES)
    assert fashion_mnist.find_raw_files(tmp_path / "nothing_here") == files  # Cached now.
    assert len(isolated_cache) == 4


# --- pipeline ---------------------------------------------------------------------------


def test_batch_shapes_and_dtypes(tfds_root):
    ds = data.make_dataset(
        "digits", "train", batch_size=32, shuffle=True, seed=1, repeat=True, tfds_dir=tfds_root
    )
    it = iter(ds)
    batches = [next(it) for _ in range(60)]  # > 1 epoch.
    for batch in batches:
        assert set(batch) == {"image", "label"}
        assert batch["image"].shape == (32, 8, 8, 1) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (32,) and batch["label"].dtype == np.int32
    images = np.concatenate([b["image"] for b in batches])
    assert abs(images.mean()) < 0.05 and abs(images.std() - 1) < 0.05


def test_shuffle_is_deterministic_by_seed(tfds_root):
    def first_indices(seed, shuffle=True):
        ds = digits_ds(tfds_root, shuffle=shuffle, seed=seed, repeat=True, batch_size=100)
        return collect(ds, n=3)["index"]

    np.testing.assert_array_equal(first_indices(7), first_indices(7))
    assert not np.array_equal(first_indices(7), first_indices(8))
    train_indices = collect(digits_ds(tfds_root))["index"]
    np.testing.assert_array_equal(first_indices(7, shuffle=False), train_indices[:300])


def test_epochs_are_reshuffled(tfds_root):
    ds = digits_ds(tfds_root, shuffle=True, repeat=True, batch_size=479)  # 3 per epoch.
    indices = collect(ds, n=6)["index"]
    first, second = indices[:1437], indices[1437:]
    assert sorted(first) == sorted(second) and len(set(first)) == 1437
    assert not np.array_equal(first, second)


def test_iterator_state_restores_same_batches(tfds_root):
    ds = digits_ds(tfds_root, shuffle=True, seed=3, repeat=True, batch_size=512, augment=True)
    it = iter(ds)
    for _ in range(3):
        next(it)
    state = data.iterator_state_from_bytes(data.iterator_state_to_bytes(it.get_state()))
    expected = [next(it) for _ in range(2)]  # Crosses the first epoch boundary (1437).

    restored = iter(ds)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_process_sharding(tfds_root):
    for kw in [dict(), dict(shuffle=True, seed=5, augment=True)]:
        shards = [
            collect(digits_ds(tfds_root, batch_size=64, process_index=p, process_count=2, **kw))
            for p in range(2)
        ]
        a, b = (set(s["index"]) for s in shards)
        assert len(shards[0]["index"]) == data.num_examples(
            "digits", "train", process_index=0, process_count=2
        )
        assert shards[0]["image"].shape[1:] == (8, 8, 1)
        assert not a & b and len(a | b) == 1437
    with pytest.raises(ValueError, match="multiple of process_count"):
        digits_ds(tfds_root, batch_size=63, process_count=2)


def test_processes_together_see_the_single_process_batches(tfds_root):
    kw = dict(shuffle=True, seed=3, augment=True, repeat=True)
    single = iter(digits_ds(tfds_root, batch_size=32, **kw))
    shards = [
        iter(digits_ds(tfds_root, batch_size=32, process_index=p, process_count=2, **kw))
        for p in range(2)
    ]
    for _ in range(50):  # crosses an epoch boundary
        whole = next(single)
        parts = [next(it) for it in shards]
        order = np.argsort(whole["index"])
        merged = {k: np.concatenate([p[k] for p in parts]) for k in whole}
        merged_order = np.argsort(merged["index"])
        for key in whole:
            np.testing.assert_array_equal(merged[key][merged_order], whole[key][order])


def test_split_slicing(tfds_root):
    assert data.num_examples("digits", "test[:64]") == 64
    assert data.num_examples("digits", "test[10:]") == 350
    batches = list(digits_ds(tfds_root, "test[:70]"))
    assert [len(b["label"]) for b in batches] == [64, 6]
    with pytest.raises(ValueError, match="bad split"):
        data.num_examples("digits", "test[::2]")


def test_eval_yields_every_example_once(tfds_root):
    sizes = [len(b["label"]) for b in digits_ds(tfds_root, "test")]
    assert sizes == [64] * 5 + [40]
    indices = collect(digits_ds(tfds_root, "test"))["index"]
    np.testing.assert_array_equal(indices, digits.split_indices()["test"])  # In stored order.
    assert len(list(digits_ds(tfds_root, "test", drop_remainder=True))) == 5


def test_digits_augmentation_is_a_small_translation(tfds_root):
    sk = load_sklearn_digits()
    info = data.dataset_info("digits")
    batch = collect(digits_ds(tfds_root, "test", augment=True, seed=11))
    counts = (batch["image"][..., 0] * info["std"] + info["mean"]) * 16.0
    counts = np.round(counts).astype(int)
    shifts = set()
    for image, i in zip(counts, batch["index"], strict=True):
        padded = np.pad(sk.images[i].astype(int), 1)
        matches = [
            (dy, dx)
            for dy in range(3)
            for dx in range(3)
            if np.array_equal(padded[dy : dy + 8, dx : dx + 8], image)
        ]
        assert matches, f"example {i} is not a ±1 px translation of the original"
        shifts.add(matches[0])
    assert len(shifts) > 3  # Several offsets actually drawn.


def test_augment_crops_and_flips():
    """fashion_mnist's augmentation: random 28×28 crop of the 2-px zero-padded image, and a
    left-right flip with probability 1/2; every (offset, flip) is drawn."""
    image = (np.arange(28 * 28).reshape(28, 28, 1) % 250 + 1).astype(np.uint8)  # No zeros.
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    augment = pipeline.Augment(pad=2, flip=True)
    seen = []
    for seed in range(400):
        out = augment.random_map({"image": image, "label": 3}, np.random.default_rng(seed))
        assert out["label"] == 3 and out["image"].shape == image.shape
        matches = [
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (0, 1)
            if np.array_equal(padded[dy : dy + 28, dx : dx + 28][:, :: 1 - 2 * flip], out["image"])
        ]
        assert len(matches) == 1
        seen.append(matches[0])
    assert len(set(seen)) == 50
    assert 0.4 < np.mean([flip for *_, flip in seen]) < 0.6


def test_concurrent_preparation(tmp_path):
    """Two processes racing to prepare: one prepares, the other waits on the lock, reuses."""
    code = (
        "import sys; from attnzoo import data; "
        "b = data.prepare('digits', tfds_dir=sys.argv[1]); "
        "print('train examples:', len(b.as_data_source()['train']))"
    )
    root = str(tmp_path / "tfds")
    repo = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, root],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("train examples: 1437" in out for out in outputs)
    assert sum(out.count("Downloading and preparing") for out in outputs) == 1, outputs
