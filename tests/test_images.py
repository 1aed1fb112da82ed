"""Image data, image models and every `musicvae image` command, on images made by the tests."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from musicvae_py.configs import Config, get_config
from musicvae_py.data.images import load_image_dataset, read_idx, read_image_folder
from musicvae_py.errors import ConfigError, DatasetError
from musicvae_py.image_inference import ImageModel, knn_accuracy, pca_2d
from musicvae_py.models.core import LN2
from musicvae_py.models.registry import build_model
from musicvae_py.training.checkpoint import bundled_models
from musicvae_py.training.evaluate import evaluate_model
from musicvae_py.training.trainer import Trainer, TrainOptions, step_seed
from tests.conftest import run as run_musicvae

TINY_CONFIGS = [
    "image_ae_tiny",
    "image_denoising_ae_tiny",
    "image_superres_ae_tiny",
    "image_vae_tiny",
    "image_conv_vae_tiny",
    "image_cvae_tiny",
]
MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "images" / "mnist"
SIZE = 16  # side of the tiny configs' images
CAT_DOG = ((200, 30, 30), (30, 200, 30))  # colours of the two label folders of pictures


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write an IDX file by hand: two zero bytes, the type code, the rank, the dims, the data."""
    codes = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def shapes(count: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [count, size, size] of four kinds (the labels 0-3): a horizontal bar, a
    vertical bar, a hollow square and a diagonal, each at a random place and brightness."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    images = np.zeros((count, size, size), np.uint8)
    for image, label in zip(images, labels, strict=True):
        a, b = rng.integers(1, size // 2 - 1, 2)
        level = rng.integers(150, 256)
        if label == 0:
            image[a + 3, 2 : size - 2] = level
        elif label == 1:
            image[2 : size - 2, b + 3] = level
        elif label == 2:
            image[a : a + 7, b : b + 7] = level
            image[a + 2 : a + 5, b + 2 : b + 5] = 0
        else:
            steps = np.arange(size - 4 - a)
            image[steps + a, steps + 2] = level
    return images, labels.astype(np.uint8)


def write_mnist_like(folder: Path, train: int = 96, valid: int = 32) -> Path:
    """A folder of the four standard IDX files: training files gzipped, test files plain."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = shapes(train, seed=0)
    write_idx(folder / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels, gz=True)
    images, labels = shapes(valid, seed=1)
    write_idx(folder / "t10k-images-idx3-ubyte", images)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    return folder


def tiny_dataset(tmp_path: Path, config: Config | None = None, **sizes):
    data = (config or get_config("image_ae_tiny")).data
    return load_image_dataset(write_mnist_like(tmp_path / "mnist", **sizes), data)


# ---------------------------------------------------------------------------------------------
# data


def test_read_idx_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    values = np.array([-5, 0, 70000], dtype=">i4")
    floats = np.array([[0.5, -1.25]], dtype=">f4")
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", images)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b.gz", images, gz=True)), images)
    assert read_idx(write_idx(tmp_path / "c", values)).tolist() == [-5, 0, 70000]
    assert read_idx(write_idx(tmp_path / "d", floats)).tolist() == [[0.5, -1.25]]
    # The gzip test is on content, not on the name.
    assert np.array_equal(read_idx(write_idx(tmp_path / "plain.gz", images)), images)


def test_read_idx_refuses_truncated_and_malformed_files(tmp_path):
    images = np.ones((10, 28, 28), dtype=np.uint8)
    full = write_idx(tmp_path / "train-images-idx3-ubyte", images).read_bytes()

    cut = tmp_path / "cut-idx3-ubyte"
    cut.write_bytes(full[:-100])
    with pytest.raises(DatasetError, match=r"cut-idx3-ubyte: truncated IDX data .*10 x 28 x 28"):
        read_idx(cut)
    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(gzip.compress(full)[:-30])
    with pytest.raises(DatasetError, match=r"cut\.gz: truncated gzip stream"):
        read_idx(cut_gz)
    header_only = tmp_path / "header"
    header_only.write_bytes(full[:10])
    with pytest.raises(DatasetError, match="header: truncated IDX header"):
        read_idx(header_only)
    wrong_magic = tmp_path / "picture.png"
    wrong_magic.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DatasetError, match="picture.png: not an IDX file"):
        read_idx(wrong_magic)
    longer = tmp_path / "longer"
    longer.write_bytes(full + b"\x00\x00")
    with pytest.raises(DatasetError, match="longer: malformed IDX file"):
        read_idx(longer)


def test_missing_mnist_files_are_named_with_where_to_put_them(tmp_path):
    folder = write_mnist_like(tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").rename(folder / "train-images-idx3-ubyte.approx.gz")
    data = get_config("image_ae_tiny").data
    with pytest.raises(DatasetError) as err:
        load_image_dataset(folder, data)
    message = str(err.value)
    assert "train-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "t10k-images" not in message  # present files are not listed
    assert f"in {folder}" in message
    assert "train-images-idx3-ubyte.approx.gz is there" in message
    # Only the splits asked for must be complete.
    (folder / "train-images-idx3-ubyte.approx.gz").rename(folder / "train-images-idx3-ubyte.gz")
    assert load_image_dataset(folder, data, splits=("train",)).num_examples("train") == 96
    with pytest.raises(DatasetError, match="missing MNIST files t10k-labels-idx1-ubyte"):
        load_image_dataset(folder, data)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="missing MNIST files .*PNG/JPEG"):
        load_image_dataset(empty, data)


def test_idx_dataset_batches_and_compatibility(tmp_path):
    dataset = tiny_dataset(tmp_path)
    assert dataset.num_examples("train") == 96 and dataset.num_examples("valid") == 32
    images, labels = dataset.batch("valid", torch.tensor([0, 5]))
    expected, expected_labels = shapes(32, seed=1)
    assert images.shape == (2, 1, SIZE, SIZE) and images.dtype == torch.float32
    assert torch.allclose(images[1, 0], torch.from_numpy(expected[5]) / 255.0)
    assert labels.tolist() == [expected_labels[0], expected_labels[5]]
    assert dataset.label_names == ["0", "1", "2", "3"]
    with pytest.raises(DatasetError, match="images are 16x16 .* needs 28x28"):
        dataset.check_compatible(get_config("mnist_conv_ae"))
    with pytest.raises(DatasetError, match="image dataset, but config mel_2bar_tiny"):
        dataset.check_compatible(get_config("mel_2bar_tiny"))


def test_folder_reader_resizes_converts_and_splits(tmp_path, caplog):
    folder = tmp_path / "pictures"
    for label, colour in zip(("cats", "dogs"), CAT_DOG, strict=True):
        (folder / label).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40 + i, 30), colour).save(folder / label / f"{i}.png")
    Image.new("L", (8, 8), 255).save(folder / "dogs" / "small.jpg")
    (folder / "cats" / "broken.png").write_bytes(b"not a picture")

    grey = get_config("image_ae_tiny").data
    splits, names, report = read_image_folder(folder, grey, seed=0)
    assert names == ["cats", "dogs"]
    train, valid = splits["train"], splits["valid"]
    assert len(train[0]) + len(valid[0]) == 11 and len(valid[0]) == 1  # a 10% held-out split
    assert train[0].shape[1:] == (1, SIZE, SIZE) and train[0].dtype == np.uint8
    assert report.skipped == [str(folder / "cats" / "broken.png")]
    assert "broken.png" in caplog.text
    everything = np.concatenate([train[0], valid[0]])
    greys = {Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)) for c in CAT_DOG}
    assert set(np.unique(everything).tolist()) == greys | {255}

    colour = Config.from_dict(
        {**get_config("image_ae_tiny").to_dict(), "data": {"kind": "image", "channels": 3}}
    ).data
    colour_splits, _, _ = read_image_folder(folder, colour, seed=0)
    pixels = np.concatenate([colour_splits["train"][0], colour_splits["valid"][0]])
    assert pixels.shape[1:] == (3, 28, 28)
    assert {tuple(p[:, 5, 5]) for p in pixels} == {(200, 30, 30), (30, 200, 30), (255, 255, 255)}

    # Explicit train/ and test/ folders are the splits.
    split_folder = tmp_path / "split"
    for split, count in (("train", 3), ("test", 2)):
        (split_folder / split / "a").mkdir(parents=True)
        for i in range(count):
            Image.new("L", (SIZE, SIZE), 10 * i).save(split_folder / split / "a" / f"{i}.png")
    dataset = load_image_dataset(split_folder, grey)
    assert (dataset.num_examples("train"), dataset.num_examples("valid")) == (3, 2)
    assert dataset.source == "folder"


# ---------------------------------------------------------------------------------------------
# models


@pytest.mark.parametrize("name", TINY_CONFIGS + ["mnist_conv_ae", "mnist_vae2d", "mnist_cvae"])
def test_model_shapes(name):
    config = get_config(name)
    model = build_model(config)
    side = config.data.height
    images = torch.rand(3, 1, side, side)
    labels = torch.tensor([0, 1, 2])
    inputs, targets, same_labels = model.augment((images, labels), torch.Generator())
    small = side // config.model.downsample if config.model.corruption == "downsample" else side
    assert inputs.shape == (3, 1, small, small) and targets is images and same_labels is labels
    mu, sigma = model.encode(inputs, labels)
    assert mu.shape == sigma.shape == (3, config.model.z_size)
    assert (sigma > 0).all() if model.variational else (sigma == 0).all()
    assert model.decode(mu, labels).shape == (3, 1, side, side)
    assert model.prior_sample(5).shape == (5, config.model.z_size)
    loss, scalars = model.training_loss((inputs, targets, labels), step=1)
    assert loss.ndim == 0 and math.isfinite(scalars["loss"])


def test_odd_sizes_and_colour_decode_to_the_image_size():
    config = get_config("image_conv_vae_tiny").replace(
        data={"height": 13, "width": 10, "channels": 3}
    )
    model = build_model(config)
    mu, _ = model.encode(torch.rand(2, 3, 13, 10))
    assert model.decode(mu).shape == (2, 3, 13, 10)


def test_unsupported_settings_are_refused():
    base = get_config("image_superres_ae_tiny")
    with pytest.raises(ConfigError, match="downsample x3 of 16x16"):
        build_model(base.replace(model={"downsample": 3}))
    with pytest.raises(ConfigError, match="corruption 'blur'"):
        build_model(base.replace(model={"corruption": "blur"}))
    with pytest.raises(ConfigError, match="likelihood 'poisson'"):
        build_model(base.replace(model={"likelihood": "poisson"}))


def test_loss_terms_match_hand_computed_values():
    model = build_model(get_config("image_vae_tiny"))
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    targets = torch.tensor([[[[0.5, 1.0], [0.0, 0.2]]]])

    def bce(logit: float, target: float) -> float:
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    hand = sum(bce(a, b) for a, b in zip([0, 2, -1, 3], [0.5, 1, 0, 0.2], strict=True))
    assert model.reconstruction_nats(logits, targets).item() == pytest.approx(hand, rel=1e-6)

    gaussian = build_model(get_config("image_vae_tiny").replace(model={"likelihood": "gaussian"}))
    sigma = gaussian.config.model.pixel_sigma
    means = [1 / (1 + math.exp(-a)) for a in (0, 2, -1, 3)]
    hand_gauss = sum(
        0.5 * ((t - m) / sigma) ** 2 + math.log(sigma * math.sqrt(2 * math.pi))
        for m, t in zip(means, [0.5, 1, 0, 0.2], strict=True)
    )
    got = gaussian.reconstruction_nats(logits, targets).item()
    assert got == pytest.approx(hand_gauss, rel=1e-5)

    # A posterior that ignores its input: mu = 0.5 and logvar = log 0.25 (sigma 0.5) per dim.
    with torch.no_grad():
        for layer in (model.posterior.mu, model.posterior.sigma):
            layer.weight.zero_()
        model.posterior.mu.bias.fill_(0.5)
        model.posterior.sigma.bias.fill_(math.log(0.25))
    images = torch.rand(4, 1, SIZE, SIZE)
    mu, sigma_z = model.encode(images)
    assert torch.allclose(sigma_z, torch.full_like(sigma_z, 0.5))
    kl_per_dim = 0.5 * (0.25 + 0.25 - 1 - math.log(0.25))
    torch.manual_seed(0)
    loss, scalars = model.training_loss((images, images, None), step=10)
    assert scalars["kl_bits"] * LN2 == pytest.approx(2 * kl_per_dim, rel=1e-5)
    assert scalars["beta"] == 1.0
    assert scalars["loss"] == pytest.approx(scalars["r_loss"] + 2 * kl_per_dim, rel=1e-5)

    # The sample uses sigma = exp(0.5 * logvar): its spread around mu is 0.5.
    z = torch.stack([model.latent(mu, sigma_z) for _ in range(500)])
    assert z.std().item() == pytest.approx(0.5, rel=0.05)

    ae = build_model(get_config("image_ae_tiny"))
    inputs = torch.rand(2, 1, SIZE, SIZE)
    loss, scalars = ae.training_loss((inputs, inputs, None), step=0)
    code, _ = ae.encode(inputs)
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(ae.decode(code), inputs)
    assert loss.item() == pytest.approx(per_pixel.item(), rel=1e-5)


def test_denoising_noise_is_fresh_every_batch():
    model = build_model(get_config("image_denoising_ae_tiny").replace(model={"noise_level": 0.3}))
    images = torch.full((64, 1, SIZE, SIZE), 0.5)
    labels = torch.zeros(64, dtype=torch.long)

    def noisy(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(step_seed(0, step))
        return model.augment((images, labels), generator)[0]

    first, second, again = noisy(0), noisy(1), noisy(0)
    assert torch.equal(first, again)  # the same step draws the same noise (resume is exact)
    assert not torch.equal(first, second)  # the next batch gets new noise
    hit = first != 0.5
    assert hit.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert set(first[hit].unique().tolist()) == {0.0, 1.0}

    gaussian = build_model(
        get_config("image_denoising_ae_tiny").replace(
            model={"corruption": "gaussian", "noise_level": 0.1}
        )
    )
    out = gaussian.corrupt(images, torch.Generator().manual_seed(0))
    assert (out - images).std().item() == pytest.approx(0.1, rel=0.05)
    assert out.min() >= 0 and out.max() <= 1


def train(config: Config, dataset, run_dir: Path, steps: int, **options) -> Trainer:
    opts = TrainOptions(
        num_steps=steps,
        seed=1,
        log_every=steps,
        eval_every=steps,
        checkpoint_every=steps,
        eval_windows=None,
        **options,
    )
    trainer = Trainer(config, dataset, run_dir, opts, report=lambda line: None)
    trainer.run()
    return trainer


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_tiny_models_overfit_a_handful_of_images(name, tmp_path):
    config = get_config(name).replace(train={"batch_size": 2})  # pictures every 4 steps
    dataset = tiny_dataset(tmp_path, config, train=8, valid=8)
    trainer = train(config, dataset, tmp_path / "run", steps=1)
    before = evaluate_model(trainer.model, dataset, "train")
    trainer = train(config, dataset, tmp_path / "run2", steps=300)
    after = evaluate_model(trainer.model, dataset, "train")
    key = "neg_elbo_nats" if trainer.model.variational else "bce_per_pixel"
    assert after[key] < 0.6 * before[key], (before[key], after[key])
    assert after["psnr_db"] > before["psnr_db"] + 5


def grid_size(columns: int, rows: int, side: int = SIZE, scale: int = 2, pad: int = 2) -> tuple:
    """The (width, height) of an `image_grid_png` picture without column titles."""
    return (columns * (side * scale + pad) + pad, rows * (side * scale + pad) + pad)


def test_training_draws_pictures_every_epoch_and_resumes_exactly(tmp_path):
    config = get_config("image_denoising_ae_tiny")
    dataset = tiny_dataset(tmp_path, config, train=16, valid=8)  # 2 steps per epoch
    straight = train(config, dataset, tmp_path / "a", steps=4)
    for epoch in (1, 2):
        with Image.open(tmp_path / "a" / f"reconstructions-epoch-{epoch:03d}.png") as picture:
            assert picture.size == grid_size(8, 3)  # clean, noisy and denoised rows
        with Image.open(tmp_path / "a" / f"samples-epoch-{epoch:03d}.png") as picture:
            assert picture.size == grid_size(8, 8)
    assert not (tmp_path / "a" / "samples-epoch-003.png").exists()

    train(config, dataset, tmp_path / "b", steps=2)
    opts = TrainOptions(num_steps=4, seed=1, log_every=4, eval_every=4, checkpoint_every=4)
    resumed = Trainer(config, dataset, tmp_path / "b", opts, resume=True, report=lambda s: None)
    resumed.run()
    for name, tensor in straight.model.state_dict().items():
        assert torch.allclose(tensor, resumed.model.state_dict()[name], atol=1e-6), name
    assert not torch.equal(straight.model.code_mean, torch.zeros_like(straight.model.code_mean))


@pytest.mark.parametrize(
    "name, shown",
    [
        ("image_ae_tiny", ["loss", "recon", "acc"]),
        ("image_vae_tiny", ["loss", "recon", "KL", "beta", "acc"]),
    ],
)
def test_the_log_line_shows_only_what_the_model_reports(name, shown, tmp_path):
    config = get_config(name).replace(train={"batch_size": 4})
    dataset = tiny_dataset(tmp_path, config, train=8, valid=4)
    lines: list[str] = []
    opts = TrainOptions(num_steps=2, log_every=2, eval_every=100, checkpoint_every=100)
    Trainer(config, dataset, tmp_path / "run", opts, report=lines.append).run()
    line = next(line for line in lines if line.startswith("step"))
    fields = line.split(" | ")
    assert [field.split()[0] for field in fields[:-2]] == ["step", *shown], line
    assert fields[-2].endswith(" ms/step") and fields[-1].startswith("lr "), line
    assert "nan" not in line


def test_knn_accuracy_and_pca():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    separated = rng.normal(size=(60, 2)) * 0.1 + labels[:, None] * 5.0
    assert knn_accuracy(separated, labels, k=5) == 1.0
    mixed = rng.normal(size=(60, 2))
    assert knn_accuracy(mixed, labels, k=5) < 0.7
    # PCA keeps the direction of largest spread first.
    points = np.stack([np.linspace(-10, 10, 50), np.zeros(50), rng.normal(size=50) * 0.1], 1)
    projected = pca_2d(points)
    assert projected.shape == (50, 2)
    assert abs(np.corrcoef(projected[:, 0], points[:, 0])[0, 1]) > 0.999


# ---------------------------------------------------------------------------------------------
# the command line


def run(*args, ok: bool = True):
    """`musicvae image ARGS`."""
    return run_musicvae("image", *args, ok=ok)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of IDX files, and tiny runs trained on it with `musicvae image train`."""
    root = tmp_path_factory.mktemp("image_cli")
    data = write_mnist_like(root / "mnist")
    trained = {}
    for name in (
        "image_ae_tiny",
        "image_denoising_ae_tiny",
        "image_superres_ae_tiny",
        "image_vae_tiny",
        "image_cvae_tiny",
    ):
        result = run(
            "train",
            "--config",
            name,
            "--data",
            data,
            "--out",
            root / name,
            "--epochs",
            "2",
            "--log-every",
            "12",
            "--threads",
            "1",
        )
        trained[name] = root / name
        assert "12 steps per epoch, 24 steps (2.0 epochs)" in result.output
    return {"root": root, "data": data, **trained}


def opened(path: Path) -> tuple[int, int]:
    with Image.open(path) as picture:
        picture.verify()
        assert picture.format == "PNG"
        return picture.size


def test_train_writes_checkpoints_and_refuses_to_clobber(runs):
    run_dir = runs["image_ae_tiny"]
    assert json.loads((run_dir / "latest.json").read_text())["step"] == 24
    assert opened(run_dir / "samples-epoch-002.png") == grid_size(8, 8)
    again = run(
        "train", "--config", "image_ae_tiny", "--data", runs["data"], "--out", run_dir, ok=False
    )
    assert again.exit_code == 1 and "--resume or --force" in again.output
    args = ("train", "--data", runs["data"], "--out", run_dir, "--resume")
    other_batch = run(*args, "--batch-size", 4, ok=False)  # the run keeps its own config
    assert other_batch.exit_code == 1 and "--batch-size cannot change" in other_batch.output
    resumed = run(*args, "--epochs", "3")
    assert "resumed from" in resumed.output
    assert json.loads((run_dir / "latest.json").read_text())["step"] == 36
    mismatch = run(
        "train",
        "--config",
        "mnist_conv_ae",
        "--data",
        runs["data"],
        "--out",
        runs["root"] / "x",
        ok=False,
    )
    assert mismatch.exit_code == 1 and "needs 28x28" in mismatch.output
    assert not (runs["root"] / "x").exists()  # a refused start leaves no run folder


def test_evaluate_prints_the_metrics(runs):
    result = run("evaluate", "--model", runs["image_vae_tiny"], "--data", runs["data"], "--json")
    metrics = json.loads(result.output)
    assert metrics["images"] == 32
    assert metrics["neg_elbo_nats"] == pytest.approx(metrics["recon_nats"] + metrics["kl_nats"])
    table = run("evaluate", "--model", runs["image_superres_ae_tiny"], "--data", runs["data"])
    assert "bicubic_psnr_db" in table.output and "bce_per_pixel" in table.output


def test_sample_draws_a_grid_and_conditional_rows(runs, tmp_path):
    out = tmp_path / "samples.png"
    result = run(
        "sample",
        "--model",
        runs["image_vae_tiny"],
        "-n",
        "12",
        "--columns",
        "4",
        "--seed",
        "3",
        "--out",
        out,
    )
    assert "12 samples" in result.output and opened(out) == grid_size(4, 3)
    again = run("sample", "--model", runs["image_vae_tiny"], "--out", out, ok=False)
    assert again.exit_code == 1 and "--force" in again.output
    run(
        "sample",
        "--model",
        runs["image_cvae_tiny"],
        "--label",
        "2",
        "-n",
        "8",
        "--out",
        tmp_path / "twos.png",
    )
    assert opened(tmp_path / "twos.png") == grid_size(8, 1)
    run("sample", "--model", runs["image_cvae_tiny"], "--out", tmp_path / "rows.png")
    assert opened(tmp_path / "rows.png") == grid_size(8, 4)  # one row per label
    bad = run(
        "sample",
        "--model",
        runs["image_cvae_tiny"],
        "--label",
        "9",
        "--out",
        tmp_path / "nines.png",
        ok=False,
    )
    assert bad.exit_code == 1 and "label 9 is not in 0-3" in bad.output
    wrong = run("sample", "--model", runs["image_vae_tiny"], "--out", tmp_path / "a.jpg", ok=False)
    assert "PNG" in wrong.output


def test_sample_is_repeatable_with_a_seed(runs, tmp_path):
    model = ImageModel.load(runs["image_vae_tiny"])
    assert np.array_equal(model.sample(4, seed=5), model.sample(4, seed=5))
    assert not np.array_equal(model.sample(4, seed=5), model.sample(4, seed=6))


def test_interpolate_by_index_and_by_file(runs, tmp_path):
    out = tmp_path / "strip.png"
    result = run(
        "interpolate",
        "0",
        "3",
        "--model",
        runs["image_vae_tiny"],
        "--data",
        runs["data"],
        "--steps",
        "6",
        "--out",
        out,
    )
    assert opened(out) == grid_size(8, 1) and "6 steps" in result.output
    images, _ = shapes(2, seed=7)
    files = []
    for i, pixels in enumerate(images):
        files.append(tmp_path / f"in{i}.png")
        Image.fromarray(pixels).resize((40, 40)).save(files[-1])
    run(
        "interpolate",
        files[0],
        files[1],
        "--model",
        runs["image_cvae_tiny"],
        "--label",
        "1",
        "--method",
        "slerp",
        "--steps",
        "3",
        "--out",
        tmp_path / "files.png",
    )
    assert opened(tmp_path / "files.png") == grid_size(5, 1)
    missing = run(
        "interpolate",
        "nothere.png",
        "0",
        "--model",
        runs["image_vae_tiny"],
        "--out",
        tmp_path / "m.png",
        ok=False,
    )
    assert missing.exit_code == 1 and "nothere.png: no such image file" in missing.output
    no_data = run(
        "interpolate",
        "0",
        "1",
        "--model",
        runs["image_vae_tiny"],
        "--out",
        tmp_path / "n.png",
        ok=False,
    )
    assert "give --data" in no_data.output
    unlabelled = run(
        "interpolate",
        files[0],
        files[1],
        "--model",
        runs["image_cvae_tiny"],
        "--out",
        tmp_path / "u.png",
        ok=False,
    )
    assert "give --label" in unlabelled.output

    model = ImageModel.load(runs["image_vae_tiny"])
    dataset = load_image_dataset(runs["data"], model.config.data, splits=("valid",))
    a, b = dataset.batch("valid", torch.tensor([0, 3]))[0].numpy()
    path = model.interpolate(a, b, steps=4)
    assert np.allclose(path[0], model.reconstruct(a[None])[0], atol=1e-6)
    assert np.allclose(path[-1], model.reconstruct(b[None])[0], atol=1e-6)


def test_reconstruct_writes_originals_over_outputs(runs, tmp_path):
    out = tmp_path / "again.png"
    result = run(
        "reconstruct",
        "--model",
        runs["image_ae_tiny"],
        "--data",
        runs["data"],
        "--count",
        "5",
        "--out",
        out,
    )
    assert opened(out) == grid_size(5, 2) and "PSNR" in result.output


def test_denoise_shows_clean_noisy_and_denoised(runs, tmp_path):
    out = tmp_path / "denoised.png"
    result = run(
        "denoise",
        "1",
        "2",
        "3",
        "--model",
        runs["image_denoising_ae_tiny"],
        "--data",
        runs["data"],
        "--seed",
        "0",
        "--out",
        out,
    )
    assert opened(out) == grid_size(3, 3)
    assert "noisy input" in result.output and "denoised" in result.output
    run(
        "denoise",
        "1",
        "--model",
        runs["image_denoising_ae_tiny"],
        "--data",
        runs["data"],
        "--already-noisy",
        "--noise",
        "gaussian",
        "--out",
        tmp_path / "two.png",
    )
    assert opened(tmp_path / "two.png") == grid_size(1, 2)
    wrong = run(
        "denoise",
        "--model",
        runs["image_vae_tiny"],
        "--data",
        runs["data"],
        "--out",
        tmp_path / "w.png",
        ok=False,
    )
    assert wrong.exit_code == 1 and "needs a denoising model" in wrong.output


def test_superres_shows_input_output_bicubic_and_original(runs, tmp_path):
    out = tmp_path / "superres.png"
    result = run(
        "superres",
        "0",
        "1",
        "--model",
        runs["image_superres_ae_tiny"],
        "--data",
        runs["data"],
        "--out",
        out,
    )
    width, height = grid_size(4, 2)
    assert opened(out) == (width, height + 16)  # a row of column titles on top
    assert "bicubic" in result.output and "model output" in result.output
    small = tmp_path / "small.png"
    Image.fromarray(shapes(1, seed=3)[0][0]).resize((SIZE // 2, SIZE // 2)).save(small)
    run(
        "superres",
        small,
        "--model",
        runs["image_superres_ae_tiny"],
        "--out",
        tmp_path / "small-up.png",
    )
    assert opened(tmp_path / "small-up.png") == (grid_size(3, 1)[0], grid_size(3, 1)[1] + 16)


def test_latent_plot_compares_with_pca(runs, tmp_path):
    out = tmp_path / "latent.png"
    result = run(
        "latent-plot",
        "--model",
        runs["image_vae_tiny"],
        "--data",
        runs["data"],
        "--compare-pca",
        "--out",
        out,
    )
    assert "PCA of the pixels" in result.output and "5-NN label accuracy" in result.output
    accuracies = [float(line.split()[-1]) for line in result.output.splitlines()[1:3]]
    assert all(0 <= a <= 1 for a in accuracies)
    width, height = opened(out)
    assert width > 2 * 480 and height > 480
    run(
        "latent-plot",
        "--model",
        runs["image_ae_tiny"],
        "--data",
        runs["data"],
        "--out",
        tmp_path / "pca-of-codes.png",
    )
    assert opened(tmp_path / "pca-of-codes.png")[0] < width  # one panel


def test_manifold_needs_a_2d_latent(runs, tmp_path):
    out = tmp_path / "manifold.png"
    result = run("manifold", "--model", runs["image_vae_tiny"], "--grid", "5", "--out", out)
    assert opened(out) == (5 * SIZE * 2, 5 * SIZE * 2) and "5x5" in result.output
    wrong = run("manifold", "--model", runs["image_ae_tiny"], "--out", tmp_path / "w.png", ok=False)
    assert wrong.exit_code == 1 and "needs a 2-d latent (it has 4)" in wrong.output
    music = run("manifold", "--model", "mel_2bar", "--out", tmp_path / "m.png", ok=False)
    assert "not an image model" in music.output


# ---------------------------------------------------------------------------------------------
# the bundled models


@pytest.mark.parametrize("name", ["mnist_vae2d", "mnist_conv_ae"])
def test_bundled_models_load_and_draw(name, tmp_path):
    assert name in bundled_models()
    model = ImageModel.load(name)
    assert model.image_shape == (1, 28, 28)
    run("sample", "--model", name, "-n", "16", "--seed", "0", "--out", tmp_path / "s.png")
    assert opened(tmp_path / "s.png") == grid_size(8, 2, side=28)


def test_default_image_model_samples_and_draws_a_manifold(tmp_path):
    run("sample", "--out", tmp_path / "s.png")
    assert opened(tmp_path / "s.png") == grid_size(8, 8, side=28)
    run("manifold", "--grid", "4", "--out", tmp_path / "m.png")
    assert opened(tmp_path / "m.png") == (4 * 56, 4 * 56)


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="no MNIST copy")
def test_bundled_models_meet_their_targets_on_the_mnist_test_set():
    data = get_config("mnist_conv_ae").data
    dataset = load_image_dataset(MNIST, data, splits=("valid",))
    ae = ImageModel.load("mnist_conv_ae").evaluate(dataset, max_images=2000)
    vae = ImageModel.load("mnist_vae2d").evaluate(dataset, max_images=2000)
    assert ae["bce_per_pixel"] <= 0.090
    assert vae["neg_elbo_nats"] <= 140.0
