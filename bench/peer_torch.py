#!/usr/bin/env python3
"""PyTorch CPU peer for bench/core_bench.cpp: the same architectures (same layer list as
src/model/zoo.cpp), the same batch sizes, inference and SGD training steps. Prints JSON lines:
{"name": ..., "images_per_s": median over repetitions}."""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.short is None else self.short(x)))


def resnet20():
    layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, width in enumerate([16, 32, 64]):
        for block in range(3):
            layers.append(Block(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def measure(fn, images, min_time=1.0, reps=5):
    fn()  # warm-up
    rates = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_time / reps:
            fn()
            n += images
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    torch.manual_seed(0)
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    for arch, make in [("lenet5", lenet5), ("resnet20", resnet20)]:
        model = make()
        model.eval()
        for batch in (1, 64):
            x = torch.rand(batch, 1, 28, 28)
            with torch.no_grad():
                rate = measure(lambda: model(x), batch)
            print(json.dumps({"name": f"inference/{arch}/{batch}", "images_per_s": rate}))
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = torch.rand(64, 1, 28, 28)
        y = torch.arange(64) % 10

        def step():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        print(json.dumps({"name": f"train/{arch}/64", "images_per_s": measure(step, 64)}))


if __name__ == "__main__":
    main()
