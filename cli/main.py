"""`musicvae`: prepare data, train, evaluate, and generate with music VAEs.

Heavy imports (torch, the models) happen inside the commands, so `musicvae --help` is instant.
Every error on bad input is one line on stderr and a non-zero exit; `--debug` shows tracebacks.
"""

import json
import logging
import sys
from pathlib import Path

import click

from musicvae_py.cli.image import image
from musicvae_py.cli.shared import (
    Context,
    check_run_folder,
    run_safely,
    run_training,
    seed_option,
    train_options,
)

MODEL_HELP = "A bundled model name (default: mel_2bar), a run folder or a checkpoint folder."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log library messages to stderr.")
@click.version_option(package_name="musicvae_py")
def main(debug: bool, verbose: bool) -> None:
    """Variational autoencoders for music: MIDI in, models trained, MIDI out."""
    Context.debug = debug
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


def model_option(fn):
    return click.option("--model", "model_spec", default=None, help=MODEL_HELP)(fn)


def temperature_option(fn):
    return click.option(
        "--temperature",
        "-t",
        type=float,
        default=0.5,
        show_default=True,
        help="Softmax temperature; 0 decodes greedily.",
    )(fn)


def midi_options(fn):
    fn = click.option(
        "--qpm",
        type=float,
        default=120.0,
        show_default=True,
        help="Tempo of written MIDI, quarter notes per minute.",
    )(fn)
    fn = click.option(
        "--program",
        type=click.IntRange(0, 127),
        default=0,
        show_default=True,
        help="General MIDI program of written melodies.",
    )(fn)
    fn = click.option(
        "--velocity",
        type=click.IntRange(1, 127),
        default=80,
        show_default=True,
        help="Velocity of written notes.",
    )(fn)
    fn = click.option("--plot", is_flag=True, help="Also write a piano-roll PNG per MIDI.")(fn)
    fn = click.option("--force", is_flag=True, help="Overwrite existing output files.")(fn)
    return fn


def _write_outputs(model, outputs: list[tuple[Path, "object"]], opts: dict) -> None:
    """Write (path, tokens) pairs as MIDI (and PNG), refusing to overwrite unless --force."""
    from musicvae_py.fileio import check_writable
    from musicvae_py.plotting import piano_roll_png

    def pictures(path: Path, tracks: list) -> list[tuple[Path, list]]:
        # one piano roll per file, or per track when a file has several
        if len(tracks) == 1:
            return [(path.with_suffix(".png"), tracks)]
        return [(path.with_name(f"{path.stem}-{t.name}.png"), [t]) for t in tracks]

    tracks = [model.tracks(tokens, opts["program"], opts["velocity"]) for _, tokens in outputs]
    paths = [p for p, _ in outputs]
    if opts["plot"]:
        paths += [
            png for (p, _), t in zip(outputs, tracks, strict=True) for png, _ in pictures(p, t)
        ]
    check_writable(paths, opts["force"])
    for (path, tokens), file_tracks in zip(outputs, tracks, strict=True):
        model.save_midi(tokens, path, opts["qpm"], opts["program"], opts["velocity"])
        if opts["plot"]:
            for png, shown in pictures(path, file_tracks):
                piano_roll_png(shown, png)
        click.echo(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# prepare


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder.")
@click.option(
    "--config",
    "config_name",
    default="mel_2bar_small",
    show_default=True,
    help="Config whose data settings decide the windows.",
)
@click.option(
    "--valid-fraction",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Fraction of files held out for evaluation.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out split.")
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option(
    "--track",
    "tracks",
    multiple=True,
    help="Read only tracks of this name from files that have one (repeatable).",
)
@click.option(
    "--split-csv",
    type=click.Path(path_type=Path),
    default=None,
    help="The corpus's own split: a CSV with midi_filename and split (train, validation, "
    "test) columns, such as Groove's info.csv.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing dataset.")
@run_safely
def prepare(
    sources, out, config_name, valid_fraction, seed, workers, tracks, split_csv, force
) -> None:
    """Turn MIDI files and folders (recursive) into a dataset of windows."""
    from tqdm import tqdm

    from musicvae_py.configs import get_config
    from musicvae_py.data.prepare import prepare_dataset, read_split_table
    from musicvae_py.errors import OutputExistsError

    if (out / "meta.json").exists() and not force:
        raise OutputExistsError(f"{out}: already holds a dataset (use --force to overwrite)")
    config = get_config(config_name)
    table = read_split_table(split_csv) if split_csv else None

    # the bar opens once prepare_dataset's checks have passed, so their errors get a line of
    # their own; it is closed before any later error is printed
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="file", desc="prepare", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        report = prepare_dataset(
            list(sources),
            out,
            config.data,
            valid_fraction,
            seed,
            workers,
            tuple(tracks),
            progress,
            split_table=table,
        )
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"files read:          {report.files_read} of {report.files_found}")
    skipped = sum(report.files_skipped.values())
    click.echo(f"files skipped:       {skipped}")
    for reason, count in report.files_skipped.items():
        click.echo(f"  {reason:<17}  {count}   e.g. {report.skipped_examples[reason][0]}")
    kept = ", ".join(f"{split} {n}" for split, n in report.windows_kept.items())
    click.echo(f"windows kept:        {kept}")
    if report.files_not_in_split_table:
        click.echo(f"files not in {split_csv}, split by hash: {report.files_not_in_split_table}")
    click.echo(f"duplicates dropped:  {report.duplicates_dropped}")
    if report.empty_windows_dropped:
        click.echo(f"empty windows dropped: {report.empty_windows_dropped}")
    click.echo(f"held-out windows also in train: {report.heldout_seen_in_train}")
    meters = ", ".join(f"{m} {n}" for m, n in report.windows_per_meter.items())
    click.echo(f"windows per meter:   {meters or 'none'}")
    for problem in report.walk_problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"dataset written to {out}")


# ---------------------------------------------------------------------------------------------
# train and evaluate


@main.command()
@train_options(
    "Dataset folder written by `musicvae prepare`.",
    "checkpoints and the log",
    click.option("--steps", type=int, default=None, help="Total steps (default: the config's)."),
    click.option("--eval-every", type=int, default=1000, show_default=True),
    click.option("--checkpoint-every", type=int, default=500, show_default=True),
    click.option(
        "--eval-windows",
        type=int,
        default=2048,
        show_default=True,
        help="Held-out windows per evaluation (0 for all).",
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
    steps,
    eval_every,
    checkpoint_every,
    eval_windows,
    threads,
    force,
) -> None:
    """Train a model; one log line per interval, held-out metrics every --eval-every steps."""
    from musicvae_py.configs import get_config
    from musicvae_py.data.dataset import load_dataset
    from musicvae_py.training.trainer import TrainOptions

    check_run_folder(run_dir, config_name, resume, force, batch_size)
    config = get_config(config_name) if config_name else None
    if config is not None and batch_size:
        config = config.replace(train={"batch_size": batch_size})
    dataset = load_dataset(data_dir)
    options = TrainOptions(
        num_steps=steps,
        seed=seed,
        log_every=log_every,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        eval_windows=eval_windows or None,
        threads=threads,
    )
    details = f"{dataset.num_examples('train')} training windows"
    run_training(config, dataset, run_dir, options, resume, init_from, details)


@main.command()
@model_option
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path))
@click.option("--split", default="valid", show_default=True)
@click.option("--max-windows", type=int, default=None, help="Evaluate a seeded subset.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@run_safely
def evaluate(model_spec, data_dir, split, max_windows, seed, as_json) -> None:
    """Held-out metrics: teacher-forced and sampled accuracy, per-class accuracy, ELBO."""
    from musicvae_py.data.dataset import load_dataset
    from musicvae_py.training.checkpoint import load_model
    from musicvae_py.training.evaluate import evaluate_model

    model, config = load_model(model_spec)
    dataset = load_dataset(data_dir)
    dataset.check_compatible(config)
    metrics = evaluate_model(model, dataset, split, seed=seed, max_examples=max_windows)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"{'metric':<34} value")
    for key, value in metrics.items():
        if isinstance(value, list):
            value = " ".join(f"{v:.3f}" for v in value)
        elif isinstance(value, float):
            value = f"{value:.4f}"
        click.echo(f"{key:<34} {value}")


# ---------------------------------------------------------------------------------------------
# generation


@main.command()
@model_option
@click.option("-n", "count", type=click.IntRange(1, 10_000), default=5, show_default=True)
@click.option(
    "--bars",
    type=click.IntRange(1, 4096),
    default=None,
    help="Length of each piece in 4/4 bars (default: the model's window). Longer pieces walk "
    "a smooth latent path, one window per point, joined at whole bars.",
)
@click.option(
    "--through",
    "through",
    multiple=True,
    type=click.Path(path_type=Path),
    help="With --bars: a MIDI file whose latent mean the walk passes through (repeatable, in "
    "order); the default path goes through random points.",
)
@click.option(
    "--window",
    "windows",
    type=int,
    multiple=True,
    help="Window index per --through file, in order; one value applies to all.",
)
@temperature_option
@seed_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@midi_options
@run_safely
def sample(model_spec, count, bars, through, windows, temperature, seed, out, **opts) -> None:
    """Sample N pieces from the prior and write one MIDI file each."""
    import numpy as np

    from musicvae_py.errors import ConfigError
    from musicvae_py.inference import TrainedModel

    if through and bars is None:
        raise ConfigError("--through needs --bars (the length of the piece)")
    model = TrainedModel.load(model_spec)
    if bars is None:
        pieces = list(model.sample(count, temperature, seed))
    else:
        anchors = None
        if through:
            inputs = [
                _pick_window(model, p, w)
                for p, w in zip(through, _picks(windows, through), strict=True)
            ]
            anchors = model.encode(np.concatenate(inputs))[1]
        pieces = [
            model.long_sample(bars, temperature, None if seed is None else seed + i, anchors)
            for i in range(count)
        ]
    width = max(3, len(str(count)))
    outputs = [(out / f"sample-{i + 1:0{width}d}.mid", t) for i, t in enumerate(pieces)]
    _write_outputs(model, outputs, opts)


def _picks(windows: tuple[int, ...], inputs: tuple) -> list[int | None]:
    """The --window value of each input: one per input in order, or one for all."""
    from musicvae_py.errors import ConfigError

    if len(windows) > max(1, len(inputs)):
        raise ConfigError(f"{len(windows)} --window values for {len(inputs)} inputs")
    if len(windows) == 1:
        return list(windows) * len(inputs)
    return list(windows) + [None] * (len(inputs) - len(windows))


def _pick_window(model, path: Path, index: int | None):
    """The one window of `path` to use, or an error listing the choices."""
    from musicvae_py.errors import MultipleExamplesError

    windows = model.windows_from_midi(path)
    try:
        return windows.pick(index)
    except MultipleExamplesError:
        click.echo(f"{path} yields {len(windows.windows)} windows:", err=True)
        for line in windows.describe():
            click.echo(f"  {line}", err=True)
        raise


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option(
    "--steps",
    type=click.IntRange(2, 1000),
    default=5,
    show_default=True,
    help="Points on the path from one input to the next, both endpoints included.",
)
@click.option(
    "--window",
    "windows",
    type=int,
    multiple=True,
    help="Window index per input, in input order; one value applies to all.",
)
@temperature_option
@seed_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@midi_options
@run_safely
def interpolate(inputs, model_spec, steps, windows, temperature, seed, out, **opts):
    """Slerp through the latent means of two or more MIDI inputs, in order; one MIDI file per
    point plus one with the whole path as a single piece."""
    import numpy as np

    from musicvae_py.errors import ConfigError
    from musicvae_py.inference import TrainedModel

    if len(inputs) < 2:
        raise ConfigError("interpolate needs at least two MIDI inputs")
    model = TrainedModel.load(model_spec)
    picked = [
        _pick_window(model, p, w) for p, w in zip(inputs, _picks(windows, inputs), strict=True)
    ]
    tokens = model.interpolate(*picked, steps=steps, temperature=temperature, seed=seed)
    width = max(2, len(str(len(tokens))))
    outputs = [(out / f"interp-{i:0{width}d}.mid", t) for i, t in enumerate(tokens)]
    outputs.append((out / "interp-all.mid", np.concatenate(list(tokens))))
    _write_outputs(model, outputs, opts)


@main.command()
@click.argument("midi", type=click.Path(path_type=Path))
@model_option
@click.option("--window", type=int, default=None, help="Which window of the input to use.")
@temperature_option
@seed_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output MIDI (default: <input>-reconstruction.mid in the current folder).",
)
@midi_options
@run_safely
def reconstruct(midi, model_spec, window, temperature, seed, out, **opts) -> None:
    """Encode a MIDI input and decode it again."""
    from musicvae_py.inference import TrainedModel

    model = TrainedModel.load(model_spec)
    tokens = model.reconstruct(_pick_window(model, midi, window), temperature, seed)
    out = out or Path(f"{midi.stem}-reconstruction.mid")
    _write_outputs(model, [(out, tokens[0])], opts)


@main.command()
@click.argument("midi", type=click.Path(path_type=Path))
@model_option
@click.option("--window", type=int, default=None, help="Which window of the input to use.")
@seed_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="A .npy ([3, z_size]: z, mu, sigma) or .json file; default: JSON to stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@run_safely
def encode(midi, model_spec, window, seed, out, force) -> None:
    """Encode a MIDI input to its latent z, mean and standard deviation."""
    import io

    import numpy as np
    import torch

    from musicvae_py.errors import ConfigError
    from musicvae_py.fileio import write_bytes
    from musicvae_py.inference import TrainedModel

    if seed is not None:
        torch.manual_seed(seed)
    model = TrainedModel.load(model_spec)
    z, mu, sigma = model.encode(_pick_window(model, midi, window))
    record = {"z": z[0].tolist(), "mu": mu[0].tolist(), "sigma": sigma[0].tolist()}
    if out is None:
        click.echo(json.dumps(record))
    elif out.suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, np.stack([z[0], mu[0], sigma[0]]))
        write_bytes(out, buffer.getvalue(), overwrite=force)
        click.echo(f"wrote {out}")
    elif out.suffix == ".json":
        write_bytes(out, json.dumps(record).encode(), overwrite=force)
        click.echo(f"wrote {out}")
    else:
        raise ConfigError(f"{out}: output must end in .npy or .json")


# ---------------------------------------------------------------------------------------------
# models and configs


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--half", is_flag=True, help="Store weights as float16 (half the size); statistics float32."
)
@click.option("--force", is_flag=True)
@run_safely
def export(run, dest, half, force) -> None:
    """Copy a run's latest weights and config into a standalone model folder."""
    import torch

    from musicvae_py.fileio import check_writable, write_json
    from musicvae_py.training.checkpoint import CONFIG, WEIGHTS, load_model

    model, config = load_model(run)
    check_writable([dest / WEIGHTS, dest / CONFIG], force)
    from safetensors.torch import save_file

    from musicvae_py.fileio import write_with

    dtype = torch.float16 if half else torch.float32
    statistics = {name for name, _ in model.named_buffers()}  # running moments stay float32
    weights = {
        k: (v if k in statistics else v.to(dtype)).contiguous()
        for k, v in model.state_dict().items()
    }
    write_with(dest / WEIGHTS, lambda tmp: save_file(weights, str(tmp)))
    write_json(dest / CONFIG, {"format": 1, "config": config.to_dict()})
    click.echo(f"wrote {dest}")


@main.command()
def models() -> None:
    """List the bundled models."""
    from musicvae_py.training.checkpoint import bundled_models

    for name, path in bundled_models().items():
        config = json.loads((path / "config.json").read_text())["config"]
        click.echo(f"{name:<16} config {config['name']:<16} {config.get('description', '')}")


@main.command()
def configs() -> None:
    """List the named configs."""
    from musicvae_py.configs import CONFIGS

    width = max(map(len, CONFIGS))
    for name, config in CONFIGS.items():
        click.echo(f"{name:<{width}}  {config.description}")


# The `image` command group (image autoencoders and VAEs) lives in its own module.
main.add_command(image)


if __name__ == "__main__":
    main()
