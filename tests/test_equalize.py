"""Cross-layer equalization keeps the function and evens out the channel ranges; the
int8 node selection of the ONNX converter picks the nodes it is asked for."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from maskgate.converters.equalize import equalize  # noqa: E402


def _chain():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),  # depthwise
        nn.Conv2d(8, 16, 1), nn.ReLU6(),  # ReLU6 clips: its output must not be rescaled
        nn.Conv2d(16, 4, 1),
    )
    with torch.no_grad():  # very uneven channel gains, as BatchNorm folding leaves them
        model[0].weight.mul_(torch.logspace(-2, 1, 8).view(-1, 1, 1, 1))
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return model.eval()


def test_equalize_keeps_outputs_and_balances_ranges():
    model = _chain()
    equalized, pairs = equalize(model)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(equalized(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    # conv -> LeakyReLU -> depthwise and depthwise -> LeakyReLU -> pointwise; not across ReLU6
    assert [(p.producer, p.consumers) for p in pairs] == [("0", ("3",)), ("3", ("6",))]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in equalized.modules())

    def spread(conv):  # widest over narrowest output-channel weight range
        r = conv.weight.detach().abs().flatten(1).amax(1)
        return float(r.max() / r.min())

    assert (
        spread(dict(equalized.named_modules())["0"])
        < spread(nn.utils.fusion.fuse_conv_bn_eval(model[0], model[1])) / 10
    )


def test_equalize_leaves_residual_branches_alone():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return self.b(y) + y  # y also reaches the sum: scaling it would change the output

    model = Residual().eval()
    equalized, pairs = equalize(model)
    assert pairs == []
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(equalized(x), model(x))


def test_float_nodes_picks_leading_convs_and_patterns(tmp_path):
    pytest.importorskip("onnxscript")
    from maskgate.converters.onnx import float_nodes
    from maskgate.errors import ConversionError

    onnx = pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    torch.onnx.export(_chain(), (torch.zeros(1, 3, 16, 16),), str(path), dynamo=True, input_names=["input"])
    nodes = onnx.load(str(path)).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    names = [n.name for n in nodes]
    # The first two convs and the activations after them: everything before the third conv.
    assert float_nodes(path, (), leading_convs=2) == names[:names.index(convs[2])]
    assert float_nodes(path, (), head=True) == names[names.index(convs[-1]) + 1:]
    assert float_nodes(path, (convs[3], "re:" + convs[0]), leading_convs=0) == [convs[3], convs[0]]
    with pytest.raises(ConversionError, match="matches no node"):
        float_nodes(path, ("no_such_node",))


def test_hinted_float_ops_takes_leading_stretch_and_head():
    from maskgate.converters import hinted_float_ops

    ops = [("t", "Transpose"), ("c1", "Conv"), ("r1", "Relu"), ("c2", "Conv"), ("r2", "Relu"), ("c3", "Conv"),
           ("pool", "ReduceMean"), ("fc", "Gemm"), ("sm", "Softmax")]
    hint = dict(conv_types=("Conv",))
    assert hinted_float_ops(ops, leading_convs=0, head=False, **hint) == []
    assert hinted_float_ops(ops, leading_convs=1, head=False, **hint) == ["t", "c1", "r1"]
    assert hinted_float_ops(ops, leading_convs=2, head=True, **hint) == [
        "t",
        "c1",
        "r1",
        "c2",
        "r2",
        "pool",
        "fc",
        "sm",
    ]
    assert hinted_float_ops(ops, leading_convs=9, head=False, **hint) == [
        name for name, _ in ops
    ]  # more than there are
    assert (
        hinted_float_ops([("fc", "Gemm")], leading_convs=2, head=True, **hint) == []
    )  # no convs: nothing to anchor on
