"""`musicvae image ...`: train, evaluate and draw pictures with image autoencoders and VAEs.

Heavy imports happen inside the commands. Every picture is a PNG written atomically; an existing
output is kept unless --force. Input images are files (PNG/JPEG) or indices into the --data
folder's split (by default "valid", the official test set for MNIST).
"""

import json
from pathlib import Path

import click

from musicvae_py.cli.shared import (
    check_run_folder,
    run_safely,
    run_training,
    seed_option,
    train_options,
)

IMAGE_MODEL_HELP = (
    "A bundled model name (default: mnist_vae2d), a run folder or a checkpoint folder."
)
DATA_HELP = "A folder with the MNIST IDX files (gzipped or not) or PNG/JPEG images."


def image_model_option(fn):
    return click.option("--model", "model_spec", default=None, help=IMAGE_MODEL_HELP)(fn)


def output_options(fn):
    """--out (a PNG) and --force, shared by every command that draws."""
    fn = click.option("--force", is_flag=True, help="Overwrite an existing output file.")(fn)
    fn = click.option(
        "--out", required=True, type=click.Path(path_type=Path), help="Output PNG file."
    )(fn)
    return fn


def picture_options(fn):
    """--out, --scale and --force, shared by every command that draws a grid of images."""
    fn = click.option(
        "--scale",
        type=click.IntRange(1, 16),
        default=2,
        show_default=True,
        help="Screen pixels per image pixel.",
    )(fn)
    return output_options(fn)


def input_options(fn):
    """--data, --split, --count and --label, shared by the commands that read images."""
    fn = click.option(
        "--label",
        type=int,
        default=None,
        help="Label of file inputs, for a conditional model.",
    )(fn)
    fn = click.option(
        "--count",
        type=click.IntRange(1, 1000),
        default=8,
        show_default=True,
        help="Without inputs: use the first COUNT images of --data.",
    )(fn)
    fn = click.option("--split", default="valid", show_default=True, help="Split of --data.")(fn)
    fn = click.option(
        "--data", "data_dir", type=click.Path(path_type=Path), default=None, help=DATA_HELP
    )(fn)
    return fn


@click.group()
def image() -> None:
    """Image autoencoders and VAEs: train, evaluate, and draw samples, interpolations,
    reconstructions, denoising, super-resolution, latent scatters and manifolds."""


def _load(model_spec, out: Path | None = None, force: bool = False):
    """The image model of `model_spec`; with `out`, only after checking that the picture may
    be written there, so that a refused output costs no work."""
    from musicvae_py.errors import ConfigError
    from musicvae_py.fileio import check_writable
    from musicvae_py.image_inference import ImageModel

    if out is not None:
        if out.suffix.lower() != ".png":
            raise ConfigError(f"{out}: pictures are written as PNG; name the output *.png")
        check_writable([out], force)
    return ImageModel.load(model_spec)


def _inputs(model, inputs, data_dir, split, count, label, size="image"):
    """Images float32 [n, c, h, w] from image files and dataset indices (with no inputs, the
    first `count` images of the dataset split), and the labels to give the model: None for an
    unconditional one, else one per image (`label` for files, the dataset's for indices)."""
    import numpy as np

    from musicvae_py.data.images import load_image_dataset
    from musicvae_py.errors import ConfigError, DatasetError

    dataset = None
    if data_dir is not None and (not inputs or any(not Path(i).exists() for i in inputs)):
        dataset = load_image_dataset(data_dir, model.config.data, splits=(split,))
    if not inputs:
        if dataset is None:
            raise ConfigError("give image files or dataset indices, or --data to use its images")
        inputs = [str(i) for i in range(min(count, dataset.num_examples(split)))]

    images, labels = [], []
    for item in inputs:
        if Path(item).exists():
            images.append(model.read_images([item], size=_file_size(model, item, size))[0])
            labels.append(label)
            continue
        if not item.isdigit():
            raise DatasetError(f"{item}: no such image file")
        if dataset is None:
            raise ConfigError(f"{item}: no such file (give --data FOLDER to use dataset images)")
        index = int(item)
        if index >= dataset.num_examples(split):
            raise DatasetError(
                f"{data_dir}: no image {index} in split {split} "
                f"(it has {dataset.num_examples(split)})"
            )
        picture, known = dataset.batch(split, np.array([index]))
        images.append(picture[0].numpy())
        labels.append(int(known[0]))
    if any(i.shape != images[0].shape for i in images):
        sizes = sorted({"x".join(map(str, i.shape[1:])) for i in images})
        raise ConfigError(f"the inputs have different sizes ({', '.join(sizes)}); give one size")
    return np.stack(images), _model_labels(model, labels)


def _file_size(model, path, size: str) -> str:
    """ "input" when a super-resolution model is given a file already at its small input size."""
    from PIL import Image

    if size != "auto":
        return size
    _, height, width = model.model.input_shape
    with Image.open(path) as picture:
        return "input" if picture.size == (width, height) else "image"


def _model_labels(model, labels):
    """The labels to give the model: None for an unconditional one."""
    from musicvae_py.errors import ConfigError

    if not model.conditional:
        return None
    if any(label is None for label in labels):
        raise ConfigError(f"model {model.name} is conditional: give --label for file inputs")
    return labels


# ---------------------------------------------------------------------------------------------
# train and evaluate


@image.command()
@train_options(
    DATA_HELP,
    "checkpoints, pictures and the log",
    click.option(
        "--epochs", type=click.IntRange(1), default=None, help="Epochs to train in total."
    ),
    click.option("--steps", type=click.IntRange(1), default=None, help="Steps to train in total."),
    click.option("--eval-every", type=int, default=None, help="Steps (default: once an epoch)."),
    click.option(
        "--checkpoint-every", type=int, default=None, help="Steps (default: once an epoch)."
    ),
    click.option(
        "--eval-images",
        type=int,
        default=0,
        show_default=True,
        help="Held-out images per evaluation (0 for all).",
    ),
)
@run_safely
def train(
    config_name,
    data_dir,
    run_dir,
    resume,
    init_from,
    seed,
    batch_size,
    log_every,
    epochs,
    steps,
    eval_every,
    checkpoint_every,
    eval_images,
    threads,
    force,
) -> None:
    """Train an image model; pictures of reconstructions and samples after every epoch."""
    from musicvae_py.configs import get_config
    from musicvae_py.data.images import load_image_dataset
    from musicvae_py.errors import ConfigError
    from musicvae_py.training.checkpoint import read_checkpoint
    from musicvae_py.training.trainer import TrainOptions

    check_run_folder(run_dir, config_name, resume, force, batch_size)
    if epochs and steps:
        raise ConfigError("give --epochs or --steps, not both")
    config = read_checkpoint(run_dir).config if resume else get_config(config_name)
    if config.data.kind != "image":
        raise ConfigError(f"config {config.name} is a {config.data.kind} config, not an image one")
    if batch_size:
        config = config.replace(train={"batch_size": batch_size})
    dataset = load_image_dataset(data_dir, config.data, seed=seed)
    train_images = dataset.num_examples("train")
    per_epoch = max(1, train_images // max(1, min(config.train.batch_size, train_images)))
    if epochs:
        steps = epochs * per_epoch
    options = TrainOptions(
        num_steps=steps,
        seed=seed,
        log_every=log_every,
        eval_every=eval_every or per_epoch,
        checkpoint_every=checkpoint_every or per_epoch,
        eval_windows=eval_images or None,
        threads=threads,
    )
    total = steps or config.train.num_steps
    details = (
        f"{train_images} training images, {dataset.num_examples('valid')} held out, "
        f"{per_epoch} steps per epoch, {total} steps ({total / per_epoch:.1f} epochs)"
    )
    run_training(config, dataset, run_dir, options, resume, init_from, details)


@image.command()
@image_model_option
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--split", default="valid", show_default=True)
@click.option("--max-images", type=int, default=None, help="Evaluate a seeded subset.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@run_safely
def evaluate(model_spec, data_dir, split, max_images, seed, as_json) -> None:
    """Held-out metrics: per-pixel BCE, PSNR, and for VAEs the negative ELBO in nats."""
    from musicvae_py.data.images import load_image_dataset

    model = _load(model_spec)
    dataset = load_image_dataset(data_dir, model.config.data, splits=(split,))
    metrics = model.evaluate(dataset, split, max_images, seed)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"{'metric':<18} value")
    for key, value in metrics.items():
        click.echo(f"{key:<18} {value:.4f}" if isinstance(value, float) else f"{key:<18} {value}")


# ---------------------------------------------------------------------------------------------
# pictures


@image.command()
@image_model_option
@click.option("-n", "count", type=click.IntRange(1, 10_000), default=64, show_default=True)
@click.option("--columns", type=click.IntRange(1, 100), default=8, show_default=True)
@click.option(
    "--label",
    type=int,
    default=None,
    help="Conditional models: draw this label (default: one row per label).",
)
@seed_option
@picture_options
@run_safely
def sample(model_spec, count, columns, label, seed, out, scale, force) -> None:
    """Decode N latents drawn from the prior into a grid of new images."""
    import numpy as np

    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, out, force)
    if model.conditional and label is None:
        labels = np.repeat(np.arange(model.config.model.num_labels), columns)
        images = model.sample(len(labels), seed, labels)
    else:
        images = model.sample(count, seed, label)
    size = image_grid_png(images, out, columns, scale, overwrite=force)
    click.echo(f"wrote {out} ({len(images)} samples, {size[0]}x{size[1]} px)")


@image.command()
@click.argument("start")
@click.argument("end")
@image_model_option
@input_options
@click.option(
    "--steps",
    type=click.IntRange(2, 100),
    default=10,
    show_default=True,
    help="Decoded points on the path, both endpoints included.",
)
@click.option(
    "--method", type=click.Choice(["linear", "slerp"]), default="linear", show_default=True
)
@picture_options
@run_safely
def interpolate(start, end, model_spec, data_dir, split, count, label, steps, method, **pic):
    """A strip from START to END (image files or dataset indices): the two inputs at the ends,
    decoded points of the path between their latent means in between."""
    import numpy as np

    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, pic["out"], pic["force"])
    images, labels = _inputs(model, [start, end], data_dir, split, count, label)
    path = model.interpolate(images[0], images[1], steps, method, labels)
    strip = np.concatenate([images[:1], path, images[1:]])
    size = image_grid_png(strip, pic["out"], len(strip), pic["scale"], overwrite=pic["force"])
    click.echo(f"wrote {pic['out']} ({steps} steps between the inputs, {size[0]}x{size[1]} px)")


@image.command()
@click.argument("inputs", nargs=-1)
@image_model_option
@input_options
@picture_options
@run_safely
def reconstruct(inputs, model_spec, data_dir, split, count, label, out, scale, force) -> None:
    """Encode images (files or dataset indices) and decode them: originals over outputs."""
    import numpy as np

    from musicvae_py.image_inference import psnr_db
    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, out, force)
    images, labels = _inputs(model, list(inputs), data_dir, split, count, label)
    again = model.reconstruct(images, labels)
    size = image_grid_png(np.concatenate([images, again]), out, len(images), scale, overwrite=force)
    click.echo(f"mean PSNR of the reconstructions: {psnr_db(again, images).mean():.2f} dB")
    click.echo(
        f"wrote {out} ({len(images)} originals over their reconstructions, {size[0]}x{size[1]} px)"
    )


@image.command()
@click.argument("inputs", nargs=-1)
@image_model_option
@input_options
@click.option(
    "--noise",
    type=click.Choice(["gaussian", "salt_pepper"]),
    default=None,
    help="Noise to add (default: the model's).",
)
@click.option("--level", type=float, default=None, help="Noise level (default: the model's).")
@click.option(
    "--add-noise/--already-noisy",
    default=True,
    show_default=True,
    help="Add noise to clean inputs, or denoise the inputs as they are.",
)
@seed_option
@picture_options
@run_safely
def denoise(
    inputs, model_spec, data_dir, split, count, label, noise, level, add_noise, seed, **pic
) -> None:
    """Rows: the clean inputs, the noisy ones, and the denoising model's outputs."""
    import numpy as np

    from musicvae_py.image_inference import psnr_db
    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, pic["out"], pic["force"])
    model.require("denoising", model.corruption in ("gaussian", "salt_pepper"), "a denoising model")
    images, labels = _inputs(model, list(inputs), data_dir, split, count, label)
    noisy = model.add_noise(images, seed, noise, level) if add_noise else images
    clean = model.denoise(noisy, labels)
    rows = [images, noisy, clean] if add_noise else [noisy, clean]
    size = image_grid_png(
        np.concatenate(rows), pic["out"], len(images), pic["scale"], overwrite=pic["force"]
    )
    if add_noise:
        click.echo(f"mean PSNR, noisy input: {psnr_db(noisy, images).mean():.2f} dB")
        click.echo(f"mean PSNR, denoised:    {psnr_db(clean, images).mean():.2f} dB")
    what = "clean, noisy and denoised rows" if add_noise else "noisy over denoised"
    click.echo(f"wrote {pic['out']} ({what}, {size[0]}x{size[1]} px)")


@image.command()
@click.argument("inputs", nargs=-1)
@image_model_option
@input_options
@picture_options
@run_safely
def superres(inputs, model_spec, data_dir, split, count, label, out, scale, force) -> None:
    """One row per image: the small input, the model's output, bicubic upsampling, and the
    original when known (dataset images and full-size files are downsampled first)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from musicvae_py.image_inference import psnr_db
    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, out, force)
    model.require("super-resolution", model.corruption == "downsample", "a superres model")
    images, labels = _inputs(model, list(inputs), data_dir, split, count, label, size="auto")
    full = images.shape[1:] == model.image_shape
    low = model.downsample(images) if full else images
    output, bicubic = model.superres(low, labels)
    shown_low = F.interpolate(torch.from_numpy(low), size=model.image_shape[1:], mode="nearest")
    columns = [shown_low.numpy(), output, bicubic] + ([images] if full else [])
    titles = ["input", "output", "bicubic"] + (["original"] if full else [])
    grid = np.stack(columns, axis=1).reshape(-1, *model.image_shape)
    size = image_grid_png(grid, out, len(columns), scale, column_titles=titles, overwrite=force)
    if full:
        click.echo(f"mean PSNR, model output: {psnr_db(output, images).mean():.2f} dB")
        click.echo(f"mean PSNR, bicubic:      {psnr_db(bicubic, images).mean():.2f} dB")
    click.echo(f"wrote {out} ({' | '.join(titles)} per row, {size[0]}x{size[1]} px)")


@image.command("latent-plot")
@image_model_option
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--split", default="valid", show_default=True)
@click.option("--max-images", type=int, default=None, help="Plot a seeded subset.")
@click.option(
    "--compare-pca",
    is_flag=True,
    help="Draw PCA of the pixels beside the model's embedding (PCA fitted on training images).",
)
@click.option("--k", "k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@output_options
@run_safely
def latent_plot(model_spec, data_dir, split, max_images, compare_pca, k, seed, out, force):
    """Scatter of latent means coloured by label (PCA of the latent when it has more than 2
    dims), with a leave-one-out k-nearest-neighbour label accuracy of each embedding."""
    import torch

    from musicvae_py.data.images import load_image_dataset
    from musicvae_py.image_inference import knn_accuracy, pca_2d
    from musicvae_py.plotting import latent_scatter_png

    model = _load(model_spec, out, force)
    splits = tuple(dict.fromkeys([split, "train"])) if compare_pca else (split,)
    dataset = load_image_dataset(data_dir, model.config.data, splits=splits, seed=seed)
    dataset.check_compatible(model.config)
    generator = torch.Generator().manual_seed(seed)
    rows = _subset(dataset.num_examples(split), max_images, generator)
    images, labels = dataset.batch(split, rows)
    images, labels = images.numpy(), labels.numpy()

    mu = model.embed(images, labels)
    name = f"{model.name} latent"
    embedding = mu if model.z_size == 2 else pca_2d(mu)
    if model.z_size != 2:
        name = f"{model.name} latent ({model.z_size}-d, PCA)"
    panels = [(name, embedding, labels)]
    if compare_pca:
        fit_rows = _subset(dataset.num_examples("train"), 10_000, generator)
        fit, _ = dataset.batch("train", fit_rows)
        panels.append(("PCA of the pixels", pca_2d(images, fit.numpy()), labels))

    click.echo(f"{'embedding':<40} {k}-NN label accuracy ({len(labels)} {split} images)")
    titled = []
    for title, points, point_labels in panels:
        accuracy = knn_accuracy(points, point_labels, k)
        click.echo(f"{title:<40} {accuracy:.4f}")
        titled.append((f"{title}: {k}-NN accuracy {accuracy:.3f}", points, point_labels))
    size = latent_scatter_png(titled, out, dataset.label_names, overwrite=force)
    click.echo(f"wrote {out} ({size[0]}x{size[1]} px)")


def _subset(total: int, limit: int | None, generator):
    """All rows, or a seeded sorted subset of `limit` of them: long [n]."""
    import torch

    if limit is None or limit >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=generator)[:limit].sort().values


@image.command()
@image_model_option
@click.option("--grid", type=click.IntRange(2, 100), default=15, show_default=True)
@click.option(
    "--span",
    type=float,
    default=None,
    help="Cover [-SPAN, SPAN] on both axes (default: N(0, 1) quantiles 0.05-0.95 for a VAE, "
    "2 standard deviations of the codes for an autoencoder).",
)
@click.option("--label", type=int, default=None, help="Label, for a conditional model.")
@picture_options
@run_safely
def manifold(model_spec, grid, span, label, out, scale, force) -> None:
    """Decode a grid over the 2-d latent: z1 to the right, z2 upwards."""
    from musicvae_py.plotting import image_grid_png

    model = _load(model_spec, out, force)
    images = model.manifold(grid, span, label)
    size = image_grid_png(images, out, grid, scale, pad=0, overwrite=force)
    click.echo(f"wrote {out} ({grid}x{grid} decoded points, {size[0]}x{size[1]} px)")
