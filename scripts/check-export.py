#!/usr/bin/env python3
"""Checks a `dnm export` file against Dnm itself, in PyTorch.

    python3 scripts/check-export.py --model model.safetensors --images t10k-images-idx3-ubyte \\
        --embeddings out/embeddings.npy --placements out/placements.csv [--tolerance 1e-5]

It rebuilds the model from the file's metadata (scripts/dnm_torch.py, conv or mlp), embeds the first images of the
IDX file (as many as embeddings.npy has rows, the images `dnm map --embeddings` embedded), and requires:
  - embeddings.npy to be a NumPy 1.0 '<f4' C-order file byte for byte as numpy.save writes it;
  - every latent value within the tolerance of Dnm's (absolute, or relative to the value where that is larger);
  - every BMU (row, col) to equal placements.csv's, except where two nodes are tied within the tolerance, and every
    distance within the tolerance.
Prints one line of numbers and exits 0, or names the first failure and exits 1.
Needs python3-torch and python3-numpy (Debian).
"""

import argparse
import csv
import gzip
import io
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnm_torch  # noqa: E402


def fail(message):
    print(f"check-export: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def read_idx_images(path, count):
    """The first `count` images of an IDX unsigned-byte file (gzip or not) as float32 (N, 1, H, W) in [0, 1], as Dnm scales them."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or rank != 3:
        fail(f"{path} is not an IDX file of unsigned-byte images (N x H x W)")
    n, h, w = struct.unpack(">III", data[4:16])
    if count > n:
        fail(f"{path} has {n} images, fewer than the {count} embeddings")
    pixels = np.frombuffer(data, dtype=np.uint8, count=count * h * w, offset=16).reshape(count, 1, h, w)
    # Dnm divides each byte by 255 in float32 (correctly rounded), as torchvision's ToTensor does.
    return torch.from_numpy(pixels.astype(np.float32) / np.float32(255))


def read_npy(path):
    """Dnm's embeddings, with the file checked against numpy's own writer byte for byte."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"\x93NUMPY\x01\x00":
        fail(f"{path} does not start with the .npy 1.0 magic: {raw[:8]!r}")
    (header_len,) = struct.unpack("<H", raw[8:10])
    if (10 + header_len) % 64 != 0:
        fail(f"{path}: data starts at byte {10 + header_len}, not on a 64-byte boundary")
    array = np.load(path, allow_pickle=False)
    if array.dtype != np.dtype("<f4") or array.ndim != 2 or not array.flags["C_CONTIGUOUS"]:
        fail(f"{path}: {array.dtype} {array.shape}, expected float32 '<f4' (samples, latent) in C order")
    again = io.BytesIO()
    np.save(again, array, allow_pickle=False)
    if again.getvalue() != raw:
        fail(f"{path} differs from what numpy.save writes for the same array")
    return array


def read_placements(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r["row"]) for r in rows]), np.array([int(r["col"]) for r in rows]),
            np.array([float(r["distance"]) for r in rows]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the file `dnm export` wrote")
    parser.add_argument("--images", required=True, help="IDX images file given to `dnm map` (--dataset idx:<images>[,<labels>] or mnist's t10k images)")
    parser.add_argument("--embeddings", required=True, help="`dnm map --embeddings` output")
    parser.add_argument("--placements", required=True, help="`dnm map`'s placements.csv")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    tol = args.tolerance

    model = dnm_torch.load(args.model)
    z_dnm = read_npy(args.embeddings)
    rows, cols, distances = read_placements(args.placements)
    n = z_dnm.shape[0]
    if len(rows) != n:
        fail(f"placements.csv has {len(rows)} rows but embeddings.npy {n}")
    if z_dnm.shape[1] != model.config["latent"]:
        fail(f"embeddings have {z_dnm.shape[1]} columns, the model's latent size is {model.config['latent']}")

    x = read_idx_images(args.images, n)
    torch.set_num_threads(1)
    with torch.no_grad():
        z = model.encode(x)
        bmu_rows, bmu_cols, dist = model.place(x)
        all_distances = torch.cdist(z.double(), model.som.prototypes.double())
    z = z.numpy()

    # Absolute where values are small, relative where they are large: float32 keeps about 7 significant digits.
    scale = np.maximum(1.0, np.abs(z_dnm))
    z_error = np.abs(z - z_dnm) / scale
    worst = np.unravel_index(np.argmax(z_error), z_error.shape)
    if z_error[worst] > tol:
        fail(f"embedding of sample {worst[0]}, dimension {worst[1]}: PyTorch {z[worst]!r}, Dnm {z_dnm[worst]!r} (difference {z_error[worst]:.3g} > {tol})")

    node_dnm = torch.from_numpy(rows * model.som.cols + cols)
    node_torch = bmu_rows * model.som.cols + bmu_cols
    differ = (node_dnm != node_torch).nonzero().flatten().tolist()
    for i in differ:
        gap = abs(all_distances[i, node_dnm[i]].item() - all_distances[i, node_torch[i]].item())
        if gap > tol * max(1.0, dist[i].item()):
            fail(f"sample {i}: PyTorch places it at ({bmu_rows[i].item()}, {bmu_cols[i].item()}), Dnm at ({rows[i]}, {cols[i]}); "
                 f"their distances differ by {gap:.3g}, not a tie")
    d_error = np.abs(dist.numpy() - distances) / np.maximum(1.0, distances)
    if d_error.max() > tol:
        i = int(np.argmax(d_error))
        fail(f"sample {i}: BMU distance {dist[i].item()!r} in PyTorch, {distances[i]!r} in Dnm")

    print(f"check-export: OK: {model.config['encoder']} model, {n} images, latent {z.shape[1]}, map {model.som.rows}x{model.som.cols}; "
          f"max embedding difference {z_error.max():.3g}, BMUs {n - len(differ)}/{n} equal ({len(differ)} ties), "
          f"max distance difference {d_error.max():.3g} (tolerance {tol:g}); embeddings.npy byte-identical to numpy.save")


if __name__ == "__main__":
    main()
