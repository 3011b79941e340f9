#!/usr/bin/env python3
"""Writes a small MNIST-shaped data set as raw IDX files into DIR, for the MPI tests:
TRAIN training and TEST test images of 28x28, class c a bright band at rows 2c+2..2c+4 over
noise (seeded: the same bytes every time).

usage: scripts/synthetic-idx.py DIR [TRAIN [TEST]]   (defaults: 2048 and 512)
"""
import os
import random
import struct
import sys

out = sys.argv[1]
train = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
test = int(sys.argv[3]) if len(sys.argv) > 3 else 512
os.makedirs(out, exist_ok=True)
rng = random.Random(17)


def write(prefix, n):
    images, labels = bytearray(), bytearray()
    for _ in range(n):
        c = rng.randrange(10)
        img = bytearray(rng.randrange(90) for _ in range(784))
        for r in range(2 + 2 * c, 5 + 2 * c):
            for x in range(4, 24):
                img[r * 28 + x] = 160 + rng.randrange(96)
        images += img
        labels.append(c)
    with open(f"{out}/{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images)
    with open(f"{out}/{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)


write("train", train)
write("t10k", test)
