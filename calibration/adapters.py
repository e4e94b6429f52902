"""Thin views of a CalibrationSet in the form each quantizer reads.

Each adapter imports its quantizer lazily: the core install has none of them.
"""
from __future__ import annotations

from .dataset import CalibrationSet


def ort_reader(cset: CalibrationSet):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the set (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = cset.feeds()

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = cset.feeds()

        def __len__(self):
            return len(cset)

    return _Reader()


def nncf_dataset(cset: CalibrationSet):
    """An ``nncf.Dataset``: the items are already the model's input tensors."""
    import nncf

    return nncf.Dataset(list(cset))


def litert_calibration(cset: CalibrationSet, *, signature: str, input_name: str) -> dict[str, list[dict]]:
    """ai-edge-quantizer's calibration dict: signature -> [{input name: tensor}, ...]."""
    return {signature: [{input_name: x} for x in cset]}
