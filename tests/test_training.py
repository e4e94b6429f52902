"""Crop building and training on a few real crops (smoke runs; the real runs are in the model cards)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def small_crops(shared_data, detector, tmp_path_factory):
    """Crops of 24 + 24 real face photos, cut by the pipeline's detector and aligner."""
    from maskgate.datasets.crops import build_crops
    from maskgate.sources import list_images

    root = tmp_path_factory.mktemp("data")
    for folder in ("with_mask", "without_mask"):
        (root / "faces" / folder).mkdir(parents=True)
        for path in list_images(shared_data / "faces" / folder)[::70][:24]:
            (root / "faces" / folder / path.name).symlink_to(path)
    return build_crops(root, detector)


def test_crops_are_split_by_source_and_carry_labels(small_crops, tmp_path):
    from maskgate.datasets.crops import CropSet, split_of

    assert len(small_crops) >= 40
    assert set(np.unique(small_crops.mask)) == {0, 1}
    assert small_crops.images.shape[1:] == (128, 128, 3)
    for source, split in zip(small_crops.source, small_crops.split):
        assert split == split_of(source)
    path = small_crops.save(tmp_path)
    again = CropSet.load(tmp_path)
    np.testing.assert_array_equal(again.images, small_crops.images)
    assert again.info["yaw_labels"].startswith("landmark-derived")
    assert not list(tmp_path.glob("*.partial*")) and path.is_file()


def test_the_split_of_a_source_is_fixed_forever_and_near_70_15_15():
    """A source's split depends on its path alone: trained models and their held-out figures
    stay comparable across machines and versions only while these values do not move."""
    from collections import Counter

    from maskgate.datasets.crops import split_of

    assert [split_of(k) for k in ("faces/with_mask/0001.jpg", "faces/without_mask/0001.jpg", "faces/with_mask/1.png",
                                  "faces/with_mask/2.png", "scenes/images/maksssksksss0.png")] == [
        "val", "train", "train", "test", "train"]
    shares = Counter(split_of(f"faces/x/{i}.jpg") for i in range(6000))
    assert abs(shares["train"] / 6000 - 0.70) < 0.02 and abs(shares["val"] / 6000 - 0.15) < 0.02
    assert abs(shares["test"] / 6000 - 0.15) < 0.02
    assert split_of("faces/x/1.jpg", fractions=(1.0, 0.0, 0.0)) == "train"


def test_a_short_run_on_real_crops_lowers_the_loss(small_crops):
    from maskgate.training.augment import NO_AUGMENT
    from maskgate.training.loop import TrainConfig, fit
    from maskgate.training.recipes import RecipeOptions, build_model

    spec, model = build_model(RecipeOptions(task="mask"))
    data = (small_crops.images, small_crops.mask.astype(np.int64))
    config = TrainConfig(epochs=4, batch_size=8, lr=5e-4, freeze_stages=2, augment=NO_AUGMENT, show_progress=False)
    history = fit(model, data, data, spec=spec.input, classes=2, flip_map=np.arange(2), config=config)
    losses = [e["train_loss"] for e in history.epochs]
    assert losses[-1] < 0.7 * losses[0], losses
    assert history.epochs[history.best_epoch - 1]["val_accuracy"] > 0.8


def test_train_command_writes_model_metrics_plots_and_card(small_crops, tmp_path):
    from maskgate.cli import main

    small_crops.save(tmp_path / "crops")
    out = tmp_path / "run"
    code = main(["train", "pose", "--data", str(tmp_path / "crops"), "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--limit", "16", "--no-progress", "--device", "cpu"])
    assert code == 0
    for name in ("model.pt", "metrics.json", "curves.png", "confusion.png", "card.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "pose" and len(metrics["test"]["all"]["per_class_accuracy"]) == 6
    assert "landmark-derived" in (out / "card.md").read_text()
    from maskgate.registry import create_model

    create_model("pose_mobilenetv2_skip", weights=out / "model.pt")  # loads back strictly


def test_train_rejects_a_model_of_the_other_task(small_crops, tmp_path):
    from maskgate.errors import InputError
    from maskgate.training.recipes import RecipeOptions, build_model

    with pytest.raises(InputError, match="not a mask model"):
        build_model(RecipeOptions(task="mask", model="pose_mobilenetv2_skip"))
