"""Priors, decoding, NMS and letterboxing on hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest

from maskgate.postprocess import box_iou, decode_boxes, decode_detections, decode_landmarks, nms, prior_boxes
from maskgate.preprocess import letterbox, to_tensor
from maskgate.specs import DetectionDefaults, InputSpec, PriorSpec

PRIORS = PriorSpec()


def test_prior_count_and_order_on_a_small_canvas():
    anchors = prior_boxes(PRIORS, (40, 24))  # steps 8/16/32 -> 5x3, 3x2, 2x1 cells, 2 sizes each
    assert anchors.shape == (2 * (15 + 6 + 2), 4)
    # First cell of stride 8: centre (4, 4) px, sizes 16 and 32, normalised by the canvas.
    np.testing.assert_allclose(anchors[0], [4 / 40, 4 / 24, 16 / 40, 16 / 24], rtol=1e-6)
    np.testing.assert_allclose(anchors[1], [4 / 40, 4 / 24, 32 / 40, 32 / 24], rtol=1e-6)
    # Row-major cells: the next cell is one step to the right.
    np.testing.assert_allclose(anchors[2, :2], [12 / 40, 4 / 24], rtol=1e-6)
    # First anchor of the stride-16 level follows the 30 stride-8 anchors.
    np.testing.assert_allclose(anchors[30], [8 / 40, 8 / 24, 64 / 40, 64 / 24], rtol=1e-6)
    assert not anchors.flags.writeable  # cached: callers must not modify it


def test_decode_zero_offsets_gives_the_prior_and_known_offsets_move_it():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    np.testing.assert_allclose(
        decode_boxes(np.zeros((1, 4), np.float32), priors, (0.1, 0.2)), [[0.4, 0.3, 0.6, 0.7]], rtol=1e-6
    )
    # dx = 1 moves the centre by variance * width = 0.1 * 0.2; dw = ln 2 / 0.2 doubles the width.
    loc = np.array([[1.0, 0.0, np.log(2) / 0.2, 0.0]], np.float32)
    np.testing.assert_allclose(decode_boxes(loc, priors, (0.1, 0.2)), [[0.32, 0.3, 0.72, 0.7]], rtol=1e-5)
    pts = np.zeros((1, 10), np.float32)
    pts[0, 2:4] = [1.0, -1.0]  # second point: +0.1*w in x, -0.1*h in y
    decoded = decode_landmarks(pts, priors, (0.1, 0.2))
    np.testing.assert_allclose(decoded[0, 0], [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], [0.52, 0.46], rtol=1e-6)


def test_nms_hand_cases():
    boxes = np.array([
        [0, 0, 10, 10],    # 0: best
        [1, 0, 11, 10],    # 1: IoU 9/11 = 0.82 with 0 -> suppressed
        [20, 20, 30, 30],  # 2: disjoint -> kept
        [5, 0, 15, 10],    # 3: IoU 5/15 = 0.33 with 0 -> kept at threshold 0.4
    ], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # 3 is best; 0 has IoU 0.33 with it (kept); 1 has IoU 6/14 = 0.43 with 3 -> suppressed.
    assert nms(boxes, scores, 0.4).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.9).tolist() == [3, 0, 1, 2]
    assert nms(boxes[:0], scores[:0], 0.4).tolist() == []
    # Equal scores keep the lower index first.
    assert nms(boxes[[2, 2]], np.array([0.5, 0.5]), 0.4).tolist() == [0]
    np.testing.assert_allclose(box_iou(boxes[0], boxes[1:2]), [9 / 11], rtol=1e-6)


def test_decode_detections_end_to_end_in_canvas_pixels():
    canvas = (64, 32)
    anchors = prior_boxes(PRIORS, canvas)
    n = len(anchors)
    loc = np.zeros((n, 4), np.float32)
    landmarks = np.zeros((n, 10), np.float32)
    conf = np.tile(np.array([[0.99, 0.01]], np.float32), (n, 1))
    conf[5] = [0.1, 0.9]   # anchor 5: the second size of cell (x=2, y=0) at stride 8: centre (20, 4), 32 px
    conf[4] = [0.3, 0.7]   # same cell, 16 px box inside it: IoU 0.25 -> kept
    conf[7] = [0.4, 0.6]   # next cell, 32 px box shifted 8 px: IoU 0.6 -> suppressed
    out = decode_detections(loc, conf, landmarks, priors=PRIORS, canvas_size=canvas,
                            options=DetectionDefaults(score_threshold=0.5, nms_iou=0.4))
    np.testing.assert_allclose(out.scores, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(out.boxes[0], [4, -12, 36, 20], atol=1e-4)
    np.testing.assert_allclose(out.boxes[1], [12, -4, 28, 12], atol=1e-4)
    np.testing.assert_allclose(out.landmarks[0], [[20, 4]] * 5, atol=1e-4)
    none = decode_detections(
        loc, conf, landmarks, priors=PRIORS, canvas_size=canvas, options=DetectionDefaults(score_threshold=0.95)
    )
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.landmarks.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="input size and the spec disagree"):
        decode_detections(
            loc[:-2], conf[:-2], landmarks[:-2], priors=PRIORS, canvas_size=canvas, options=DetectionDefaults()
        )


def test_letterbox_scales_up_and_maps_back():
    spec = InputSpec(size=(640, 480), mean=(104.0, 117.0, 123.0))
    frame = np.full((150, 400, 3), 200, np.uint8)
    canvas, box = letterbox(frame, spec)
    assert canvas.shape == (480, 640, 3) and box.scale == pytest.approx(1.6)
    assert (canvas[:240, :640] == 200).all()                       # the frame, scaled 1.6x
    assert (canvas[240:, :] == [104, 117, 123]).all()              # mean-colour padding
    x = to_tensor(canvas, spec)
    assert x.shape == (1, 3, 480, 640) and x.dtype == np.float32
    assert np.abs(x[0, :, 300, 10]).max() == 0                     # padding is zero after normalisation
    np.testing.assert_allclose(box.to_frame(np.array([160.0, 80.0])), [100, 50])


def test_letterbox_nchw_rgb_and_nhwc():
    spec = InputSpec(size=(4, 2), color="RGB", mean=(1.0, 2.0, 3.0), std=(2.0, 2.0, 2.0), layout="NHWC")
    image = np.zeros((2, 4, 3), np.uint8)
    image[..., 0] = 10  # blue
    x = to_tensor(image, spec)
    assert x.shape == (1, 2, 4, 3)
    np.testing.assert_allclose(x[0, 0, 0], [(0 - 1) / 2, (0 - 2) / 2, (10 - 3) / 2])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("color,std", [("BGR", (1.0, 1.0, 1.0)), ("RGB", (58.4, 57.1, 57.4))])
def test_to_tensor_is_bit_exact_with_the_plain_formula(layout, color, std):
    """The per-channel fast path computes exactly (x - mean) / std in float32."""
    spec = InputSpec(size=(64, 48), color=color, mean=(123.7, 116.3, 103.5), std=std, layout=layout)
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rgb = image if color == "BGR" else image[:, :, ::-1]
    want = (rgb.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
    want = want.transpose(2, 0, 1) if layout == "NCHW" else want
    got = to_tensor(image, spec)
    assert got.flags.c_contiguous and got.dtype == np.float32
    assert np.array_equal(got[0], want)


def test_a_frame_of_the_canvas_size_is_not_copied():
    spec = InputSpec(size=(640, 480), mean=(104.0, 117.0, 123.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    canvas, box = letterbox(frame, spec)
    assert canvas is frame and box.scale == 1.0
