"""Classifier models: registry builds, ImageNet initialisation, heads, metrics, training smoke run."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from maskgate.errors import WeightsError  # noqa: E402
from maskgate.metrics import confusion_matrix, per_class_accuracy, roc_auc  # noqa: E402
from maskgate.registry import create_model, get_spec, list_models  # noqa: E402


@pytest.mark.parametrize("name", [n for n in list_models(task="classification")])
def test_every_classifier_builds_and_returns_probabilities(name):
    spec = get_spec(name)
    model = create_model(name, pretrained=False)
    w, h = spec.input.size
    with torch.no_grad():
        probs = model(torch.randn(2, 3, h, w))
    assert probs.shape == (2, len(spec.class_names))
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, atol=1e-5)
    if spec.classifier.head == "skip":
        # The skip head pools >= 2 shallow stages besides the deep output.
        assert len(model.head.project) >= 3


def test_skip_head_uses_the_shallow_stages():
    model = create_model("pose_mobilenetv2_skip", pretrained=False).eval()
    x = torch.randn(1, 3, 128, 128)
    taps = model.backbone(x)
    assert [t.shape[1] for t in taps] == [24, 32, 96, 1280]
    base = model.head(taps)
    changed = model.head([taps[0] + 1.0, *taps[1:]])  # only the shallowest stage moves
    assert not torch.allclose(base, changed)
    plain = create_model("pose_mobilenetv2_plain", pretrained=False).eval()
    ptaps = plain.backbone(x)
    assert torch.allclose(plain.head(ptaps), plain.head([ptaps[0] + 1.0, *ptaps[1:]]))


def test_imagenet_weights_load_strictly_into_mobilenet_v2():
    from maskgate.models.imagenet import imagenet_checkpoint, load_backbone_weights

    path = imagenet_checkpoint("mobilenet_v2")
    assert path.name == "mobilenet_v2-b0353104.pth"
    model = create_model("mask_mobilenetv2", pretrained=False)
    before = model.backbone.features[0][0].weight.clone()
    load_backbone_weights(model.backbone, path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert not torch.equal(before, state["features.0.0.weight"])
    assert {k for k in state if not k.startswith("features.")} == {"classifier.1.weight", "classifier.1.bias"}


def test_no_imagenet_weights_for_vgg_is_a_clear_error():
    from maskgate.models.imagenet import imagenet_checkpoint

    with pytest.raises(WeightsError, match="--init none"):
        imagenet_checkpoint("vgg16")


def test_wrong_checkpoint_names_the_problem(tmp_path):
    bad = tmp_path / "mask.pt"
    torch.save(create_model("pose_mobilenetv2_skip", pretrained=False).state_dict(), bad)
    with pytest.raises(WeightsError, match="does not fit"):
        create_model("mask_mobilenetv2", weights=bad)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        create_model("mask_mobilenetv2", weights=corrupt)


def test_roc_auc_and_confusion():
    labels = np.array([1, 1, 0, 0, 1, 0], bool)
    assert roc_auc(labels, np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])) == pytest.approx(1.0)
    assert roc_auc(labels, -np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])) == pytest.approx(0.0)
    assert roc_auc(labels, np.full(6, 0.5)) == pytest.approx(0.5)  # ties count half
    assert roc_auc(labels, np.array([0.9, 0.2, 0.1, 0.8, 0.7, 0.3])) == pytest.approx(
        6 / 9
    )  # 6 of 9 (mask, no_mask) pairs ordered
    conf = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert per_class_accuracy(conf) == [0.5, 1.0, 1.0, None]


def test_pose_flips_relabel_to_the_mirrored_class():
    from maskgate.training.augment import NO_AUGMENT, augment
    from maskgate.training.recipes import RecipeOptions, flip_map

    spec = get_spec("pose_mobilenetv2_skip").input
    fm = torch.as_tensor(flip_map(RecipeOptions(task="pose"), 6))
    assert fm.tolist() == [5, 4, 3, 2, 1, 0]
    images = torch.randint(0, 255, (64, 128, 128, 3), dtype=torch.uint8)
    labels = torch.arange(64) % 6
    opts = NO_AUGMENT.__class__(**{**NO_AUGMENT.__dict__, "flip": True})
    x, y = augment(images, labels, spec=spec, flip_map=fm, options=opts, generator=torch.Generator().manual_seed(0))
    flipped = y != labels
    assert 0 < int(flipped.sum()) < 64
    assert torch.equal(y[flipped], fm[labels[flipped]])
    from maskgate.training.augment import to_input

    plain = to_input(images, spec)
    assert torch.allclose(x[flipped], plain[flipped].flip(3), atol=1e-4)
    assert torch.allclose(x[~flipped], plain[~flipped], atol=1e-4)


def test_face_init_takes_the_detector_body():
    from maskgate.training.recipes import RecipeOptions, build_model

    spec, model = build_model(RecipeOptions(task="mask", model="mask_mnet025", init="face"))
    detector = create_model("retinaface_mnet025")
    assert torch.equal(model.backbone.body.stage1[0][0].weight, detector.body.stage1[0][0].weight)
    assert spec.input.color == "BGR" and spec.input.mean == (104.0, 117.0, 123.0)  # the detector's preprocessing
    from maskgate.errors import InputError

    with pytest.raises(InputError, match="mask_mnet025"):
        build_model(RecipeOptions(task="mask", init="face"))
