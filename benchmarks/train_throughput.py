"""Training throughput of a named config, in examples per second.

    python benchmarks/train_throughput.py [--config mel_2bar_small] [--batch 64 512]
        [--steps 10] [--threads N]

Times full optimisation steps (forward, backward, clipping, Adam) on random windows after two
warm-up steps, once with teacher forcing and once with scheduled sampling (the step-by-step
decoder the reference uses once its sampling probability is above zero).
"""

import argparse
import time

import torch

from musicvae_py.configs import get_config
from musicvae_py.models.registry import build_model


def time_steps(config, batch: int, steps: int, sampling: bool) -> float:
    train = {"sampling_schedule": "constant", "sampling_rate": 0.5 if sampling else 0.0}
    config = config.replace(train=train)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, config.data.num_classes, (batch, config.data.window_steps))
    durations = []
    for step in range(steps + 2):
        started = time.perf_counter()
        optimizer.zero_grad()
        loss, _ = model.training_loss(tokens, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        durations.append(time.perf_counter() - started)
    return sum(durations[2:]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mel_2bar_small")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = get_config(args.config)
    print(f"{args.config}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in args.batch:
        for sampling in (False, True):
            seconds = time_steps(config, batch, args.steps, sampling)
            mode = "scheduled sampling" if sampling else "teacher forcing"
            print(
                f"batch {batch:>4} {mode:<18} {1000 * seconds:8.1f} ms/step "
                f"{batch / seconds:8.0f} examples/s"
            )


if __name__ == "__main__":
    main()
