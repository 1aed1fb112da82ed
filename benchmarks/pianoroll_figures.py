"""Piano-roll figures: reconstructions, ELBO and sample statistics of roll models side by side.

    python benchmarks/pianoroll_figures.py --data DATASET --model conv=RUN --model rnn=RUN
        [--split valid] [--windows 2048] [--samples 1024] [--seed 0] [--json FILE]

For each model (LABEL=SPEC, SPEC a bundled name, a run or a checkpoint folder) on held-out
windows of a prepared piano-roll dataset:

- onset precision, recall and F1 and frame F1 of reconstructions (the posterior mean decoded
  at temperature 0; the recurrent decoder reads its own frames), and the ELBO in nats per
  window, exactly as `musicvae evaluate` computes them;
- for `--samples` windows sampled from the model's prior at temperature 1, the note density
  (notes per 4/4 bar) and the polyphony histogram (the share of steps with 0, 1, ..., 7 and 8
  or more notes sounding), both measured on the notes the converter writes to MIDI, against
  the same figures of the held-out windows, with the ratio sample / data for the density and
  the mean polyphony and the total-variation distance between the histograms; for a model
  with a fitted prior, also the two ratios of samples drawn from N(0, I).
"""

import argparse
import json
import time

import numpy as np
import torch

from musicvae_py.converters.pianoroll import roll_to_notes
from musicvae_py.data.dataset import load_dataset
from musicvae_py.inference import TrainedModel
from musicvae_py.training.evaluate import evaluate_model

POLYPHONY_BINS = 9  # 0 .. 7 notes sounding, and 8 or more


def roll_statistics(windows: np.ndarray) -> dict:
    """Note density (notes per bar), mean polyphony and the polyphony histogram of windows
    int [n, steps, rows, planes], over the notes the converter decodes."""
    steps = windows.shape[1]
    notes = 0
    histogram = np.zeros(POLYPHONY_BINS)
    for window in windows:
        sounding = np.zeros(steps, dtype=np.int64)
        decoded = roll_to_notes(window)
        for _, start, end, _ in decoded:
            sounding[start:end] += 1
        notes += len(decoded)
        histogram += np.bincount(np.minimum(sounding, POLYPHONY_BINS - 1), minlength=9)
    histogram /= histogram.sum()
    return {
        "notes_per_bar": notes / (len(windows) * steps / 16),
        "mean_polyphony": float(np.dot(np.arange(POLYPHONY_BINS), histogram)),
        "polyphony_histogram": histogram.tolist(),
    }


def figures(label: str, spec: str, dataset, args, data_stats: dict) -> dict:
    model = TrainedModel.load(spec)
    dataset.check_compatible(model.config)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    metrics = evaluate_model(
        model.model, dataset, args.split, seed=args.seed, max_examples=args.windows
    )
    evaluate_s = time.perf_counter() - started
    started = time.perf_counter()
    samples = model.sample(args.samples, temperature=1.0, seed=args.seed)
    sample_ms = 1000 * (time.perf_counter() - started) / args.samples
    stats = roll_statistics(samples)
    hist_s, hist_d = (
        np.array(stats["polyphony_histogram"]),
        np.array(data_stats["polyphony_histogram"]),
    )
    standard = {}
    if getattr(model.config.model, "prior", "standard") != "standard":
        z = torch.randn(args.samples, model.z_size, generator=torch.Generator().manual_seed(1))
        drawn = roll_statistics(model.decode(z.numpy(), temperature=1.0, seed=args.seed))
        standard = {
            "standard_prior_density_ratio": drawn["notes_per_bar"] / data_stats["notes_per_bar"],
            "standard_prior_polyphony_ratio": drawn["mean_polyphony"]
            / data_stats["mean_polyphony"],
        }
    return {
        "label": label,
        "model": spec,
        "config": model.config.name,
        "parameters": sum(p.numel() for p in model.model.parameters()),
        **metrics,
        "evaluate_seconds": evaluate_s,
        "sample_ms_per_window": sample_ms,
        "sample": stats,
        "density_ratio": stats["notes_per_bar"] / data_stats["notes_per_bar"],
        "polyphony_ratio": stats["mean_polyphony"] / data_stats["mean_polyphony"],
        "polyphony_tv_distance": 0.5 * float(np.abs(hist_s - hist_d).sum()),
        **standard,
    }


def print_table(rows: list[dict], data_stats: dict, windows: int, samples: int) -> None:
    labels = [r["label"] for r in rows]
    width = max(12, *map(len, labels), *(len(r["config"]) for r in rows))

    def line(name: str, values: list[str]) -> None:
        print(f"{name:<34}" + "".join(f"{v:>{width + 2}}" for v in values))

    line("figure", labels)
    line("config", [r["config"] for r in rows])
    line("parameters", [f"{r['parameters']:,}" for r in rows])
    line("held-out windows", [str(r["windows"]) for r in rows])
    for key in ("onset_precision", "onset_recall", "onset_f1", "frame_f1"):
        line(key, [f"{r[key]:.4f}" for r in rows])
    for key in ("teacher_forced_onset_f1", "teacher_forced_frame_f1"):
        if any(key in r for r in rows):
            line(key, [f"{r[key]:.4f}" if key in r else "-" for r in rows])
    for key in ("r_loss", "kl_bits", "elbo_nats"):
        line(key + (" (nats)" if key == "r_loss" else ""), [f"{r[key]:.2f}" for r in rows])
    line("evaluation (s)", [f"{r['evaluate_seconds']:.1f}" for r in rows])
    line("sampling (ms per window)", [f"{r['sample_ms_per_window']:.2f}" for r in rows])
    print()
    print(f"temperature-1 samples ({samples} per model) against {windows} held-out windows")
    line("figure", ["data", *labels])
    line(
        "notes per bar",
        [f"{data_stats['notes_per_bar']:.2f}"]
        + [f"{r['sample']['notes_per_bar']:.2f}" for r in rows],
    )
    line("  ratio sample / data", ["1.00"] + [f"{r['density_ratio']:.2f}" for r in rows])
    line(
        "mean polyphony (notes sounding)",
        [f"{data_stats['mean_polyphony']:.2f}"]
        + [f"{r['sample']['mean_polyphony']:.2f}" for r in rows],
    )
    line("  ratio sample / data", ["1.00"] + [f"{r['polyphony_ratio']:.2f}" for r in rows])
    for k in range(POLYPHONY_BINS):
        name = f"  steps with {k}{'+' if k == POLYPHONY_BINS - 1 else ''} sounding"
        line(
            name,
            [f"{data_stats['polyphony_histogram'][k]:.3f}"]
            + [f"{r['sample']['polyphony_histogram'][k]:.3f}" for r in rows],
        )
    line("  histogram TV distance", ["0.000"] + [f"{r['polyphony_tv_distance']:.3f}" for r in rows])
    for key, name in (("density", "notes per bar"), ("polyphony", "mean polyphony")):
        key = f"standard_prior_{key}_ratio"
        if any(key in r for r in rows):
            line(
                f"{name} ratio, z ~ N(0, I)",
                ["1.00"] + [f"{r[key]:.2f}" if key in r else "-" for r in rows],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="A prepared piano-roll dataset folder.")
    parser.add_argument("--model", action="append", required=True, help="LABEL=SPEC")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--windows", type=int, default=2048, help="Held-out windows (0: all).")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.windows = args.windows or None

    dataset = load_dataset(args.data)
    held_out = dataset.windows(args.split).numpy()
    if args.windows and len(held_out) > args.windows:
        rows = np.random.default_rng(args.seed).choice(len(held_out), args.windows, replace=False)
        held_out = held_out[np.sort(rows)]
    data_stats = roll_statistics(held_out)
    rows = []
    for entry in args.model:
        label, _, spec = entry.partition("=")
        rows.append(figures(label, spec or label, dataset, args, data_stats))
    print_table(rows, data_stats, len(held_out), args.samples)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": data_stats, "models": rows}, f, indent=2)


if __name__ == "__main__":
    main()
