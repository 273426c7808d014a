"""Writes a small synthetic MNIST-format dataset (tests/cli/vit_run.sh).

Usage: make_images.py DIR [--size 8] [--train 384] [--test 96]
Three classes of SIZE x SIZE images on noise: a bright top half, a bright bottom half, or a
uniformly brighter image. Mirroring and small shifts keep the class, so augmented training
learns them too, in a few dozen steps of a tiny ViT. Files: train-/t10k- images-idx3-ubyte, labels-idx1-ubyte.
"""
import argparse
import os
import struct

import numpy as np


def write_idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def split(rng, count, size):
    labels = rng.integers(0, 3, count)
    images = rng.integers(0, 60, (count, size, size))
    half = size // 2
    for image, label in zip(images, labels):
        if label == 0:
            image[:half, :] += 180
        elif label == 1:
            image[half:, :] += 180
        else:
            image += 90
    return images, labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--test", type=int, default=96)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", args.train), ("t10k", args.test)):
        images, labels = split(rng, count, args.size)
        write_idx(os.path.join(args.dir, f"{prefix}-images-idx3-ubyte"), images)
        write_idx(os.path.join(args.dir, f"{prefix}-labels-idx1-ubyte"), labels)


if __name__ == "__main__":
    main()
