"""RetinaFace-ResNet50: the biubug6 key layout, proven with a random state dict."""
from __future__ import annotations

import pytest
import torch

from maskgate import WeightsError, create_model

# Shapes in biubug6's Resnet50_Final.pth for a sample of its keys.
BIUBUG6_R50_KEYS = {
    "body.conv1.weight": (64, 3, 7, 7),
    "body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "body.layer2.0.conv2.weight": (128, 128, 3, 3),
    "body.layer4.2.bn3.running_var": (2048,),
    "fpn.output1.0.weight": (256, 512, 1, 1),
    "fpn.output3.0.weight": (256, 2048, 1, 1),
    "fpn.merge2.1.weight": (256,),
    "ssh1.conv3X3.0.weight": (128, 256, 3, 3),
    "ssh2.conv5X5_1.0.weight": (64, 256, 3, 3),
    "ssh3.conv7x7_3.1.running_mean": (64,),
    "ClassHead.0.conv1x1.weight": (4, 256, 1, 1),
    "BboxHead.1.conv1x1.bias": (8,),
    "LandmarkHead.2.conv1x1.weight": (20, 256, 1, 1),
}


def test_key_layout_and_random_state_dict_roundtrip(tmp_path):
    model = create_model("retinaface_resnet50", pretrained=False)
    state = model.state_dict()
    for key, shape in BIUBUG6_R50_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("body.fc") for k in state)
    # 27.29 M parameters in biubug6's RetinaFace-R50 (body without fc + FPN + SSH + heads).
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(27.29e6, rel=0.005)

    torch.manual_seed(0)
    random_state = {k: (torch.rand_like(v) if v.is_floating_point() else v) for k, v in state.items()}
    path = tmp_path / "Resnet50_random.pth"
    torch.save({f"module.{k}": v for k, v in random_state.items()}, path)
    loaded = create_model("retinaface_resnet50", weights=path)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, random_state[key]), key
    with torch.inference_mode():
        loc, conf, landmarks = loaded(torch.randn(1, 3, 64, 96))
    anchors = 2 * (8 * 12 + 4 * 6 + 2 * 3)
    assert loc.shape == (1, anchors, 4) and conf.shape == (1, anchors, 2) and landmarks.shape == (1, anchors, 10)


def test_no_packaged_weights_for_resnet50():
    with pytest.raises(WeightsError, match="no pretrained weights ship for retinaface_resnet50"):
        create_model("retinaface_resnet50")
