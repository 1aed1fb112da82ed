import json
import re

import pytest
import torch

from musicvae_py.configs import get_config
from musicvae_py.data.dataset import load_dataset
from musicvae_py.data.prepare import prepare_dataset
from musicvae_py.errors import CheckpointError
from musicvae_py.training.checkpoint import (
    WEIGHTS,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from musicvae_py.training.trainer import Trainer, TrainOptions

TINY = get_config("mel_2bar_tiny")


@pytest.fixture
def dataset(melody_corpus, tmp_path):
    prepare_dataset([melody_corpus], tmp_path / "ds", TINY.data, valid_fraction=0.3, workers=1)
    return load_dataset(tmp_path / "ds")


def options(steps: int) -> TrainOptions:
    return TrainOptions(
        num_steps=steps, seed=3, log_every=5, eval_every=10, checkpoint_every=5, eval_windows=16
    )


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_prepare_splits_by_file_and_reports(dataset):
    meta = dataset.meta
    train_files, valid_files = meta["splits"]["train"]["files"], meta["splits"]["valid"]["files"]
    assert train_files and valid_files and not set(train_files) & set(valid_files)
    report = meta["report"]
    assert report["files_read"] == 8
    assert set(report["windows_per_meter"]) == {"4/4", "3/4", "6/8"}


def test_training_is_reproducible_and_resume_matches(dataset, tmp_path):
    straight = Trainer(TINY, dataset, tmp_path / "a", options(10))
    straight.run()
    again = Trainer(TINY, dataset, tmp_path / "b", options(10))
    again.run()
    for k, v in weights(straight.model).items():
        assert torch.equal(v, again.model.state_dict()[k])

    first = Trainer(TINY, dataset, tmp_path / "c", options(5))
    first.run()
    resumed = Trainer(TINY, dataset, tmp_path / "c", options(10), resume=True)
    assert resumed.step == 5
    resumed.run()
    for k, v in weights(straight.model).items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k


def test_the_log_line_of_a_music_model_has_every_field(dataset, tmp_path):
    lines: list[str] = []
    Trainer(TINY, dataset, tmp_path / "run", options(5), report=lines.append).run()
    line = next(line for line in lines if line.startswith("step"))
    number = r"-?[0-9.]+(e[+-][0-9]+)?"
    assert re.fullmatch(
        rf"step +5 \| loss +{number} \| recon +{number} \| KL +{number} bits"
        rf" \| beta {number} \| p_sample {number} \| acc {number}"
        rf" \| +{number} ms/step \| lr {number}",
        line,
    ), line


def test_checkpoint_rebuilds_the_model(dataset, tmp_path):
    trainer = Trainer(TINY, dataset, tmp_path / "run", options(5))
    trainer.run()
    model, config = load_model(tmp_path / "run")
    assert config == TINY
    tokens = dataset.windows("valid")[:2]
    trainer.model.eval()
    assert torch.allclose(model.encode(tokens)[0], trainer.model.encode(tokens)[0])
    latest = json.loads((tmp_path / "run" / "latest.json").read_text())
    assert latest["step"] == 5


def test_init_from_copies_weights(dataset, tmp_path):
    source = Trainer(TINY, dataset, tmp_path / "src", options(5))
    source.run()
    tuned = Trainer(TINY, dataset, tmp_path / "tuned", options(5), init_from=tmp_path / "src")
    for k, v in weights(source.model).items():
        assert torch.equal(v, tuned.model.state_dict()[k])


def test_mismatched_checkpoints_are_refused(dataset, tmp_path):
    trainer = Trainer(TINY, dataset, tmp_path / "run", options(1))
    path = save_checkpoint(tmp_path / "run", 1, trainer.model, TINY)
    (path / WEIGHTS).write_bytes((path / WEIGHTS).read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable weights"):
        read_checkpoint(path)

    bigger = TINY.replace(model={"z_size": 9})
    path = save_checkpoint(tmp_path / "run2", 1, trainer.model, bigger)
    with pytest.raises(CheckpointError, match="shape"):
        load_model(path)
