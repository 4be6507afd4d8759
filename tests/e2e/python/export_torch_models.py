#!/usr/bin/env python3
"""Exports torchvision models (random weights: nothing is downloaded) and a small CNN with its
BatchNormalization nodes kept to ONNX, with one input and PyTorch's output for it.

Usage: export_torch_models.py OUT_DIR [--opset N]
Writes OUT_DIR/<name>.onnx, <name>.x.npy, <name>.y.npy for each model.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision


class SmallCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), torch.nn.BatchNorm2d(16),
            torch.nn.ReLU6(),
            torch.nn.AvgPool2d(2), torch.nn.LeakyReLU(0.1))
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 3 * 3, 32),
                                        torch.nn.Sigmoid(), torch.nn.Linear(32, 10),
                                        torch.nn.Tanh())

    def forward(self, x):
        return torch.softmax(self.head(self.features(x)), dim=1)


class NanCnn(torch.nn.Module):
    """Conv+BN+ReLU+MaxPool twice: the layers whose fused / oneDNN forms used to drop NaN."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 7 * 7, 10))

    def forward(self, x):
        return self.features(x)


def with_non_finite(x):
    # A NaN and an inf that are not first in their pooling windows (image 0 and 1), image 2
    # left finite.
    x = x.clone()
    x[0, 0, 5, 7] = float("nan")
    x[1, 0, 10, 3] = float("inf")
    return x


def randomize_bn(model, gen):
    # Fresh BN layers have mean 0 / var 1, which would hide a wrong BN implementation.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--models", default="smallcnn,resnet18,mobilenet_v2,squeezenet1_1")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    makers = {
        "smallcnn": (SmallCnn, (2, 1, 28, 28)),
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
        "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), (1, 3, 224, 224)),
        "nancnn": (NanCnn, (3, 1, 28, 28)),
    }
    for name in args.models.split(","):
        make, shape = makers[name]
        model = make().eval()
        randomize_bn(model, gen)
        x = torch.rand(shape, generator=gen)
        if name == "nancnn":
            x = with_non_finite(x)
        with torch.no_grad():
            y = model(x)
        path = os.path.join(args.out, f"{name}.onnx")
        # keep BatchNormalization nodes (training=TrainingMode.PRESERVE keeps them, in eval mode)
        torch.onnx.export(model, x, path, opset_version=args.opset, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                          output_names=["output"])
        np.save(os.path.join(args.out, f"{name}.x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(args.out, f"{name}.y.npy"), y.numpy().astype(np.float32))
        print(f"exported {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
