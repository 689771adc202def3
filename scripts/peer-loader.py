#!/usr/bin/python3
"""The PyTorch peer of `Dnm.Bench loader`: decoded images/s of the usual PyTorch input pipelines on the same data.

  peer-loader.py folder DIR   torchvision ImageFolder (PIL decode, convert RGB) + ToTensor, DataLoader(shuffle=True)
  peer-loader.py shards DIR   Python tarfile + PIL over DIR/train-*.tar (else DIR/*.tar): an IterableDataset that gives
                              each DataLoader worker every n-th shard and streams its members in order, as webdataset does

Both: batch 256, num_workers 2 (the machine's cores), ToTensor (C x H x W floats in [0, 1]), labels as a tensor; with
--augment-rotation/--augment-shift also torchvision's RandomAffine (bilinear), the augmentation dnm applies when asked.
The clock runs from before the dataset is made to the last batch (one epoch, or --batches N), so worker start-up and
ImageFolder's directory scan count, as opening the dataset counts on the dnm side.

Prints one line:
  impl=pytorch-1.13.0a0 loader=folder workers=2 batch=256 images=20000 seconds=12.3 images/s=1626.0 cpu_us/img=240 peakRSS_MB=310 workerPeakRSS_MB=250
(cpu_us/img: user + system time of the main process and its workers per image, which does not depend on how busy a
shared machine is; peakRSS_MB: the main process; workerPeakRSS_MB: the largest worker.) Needs Debian's python3-torch, python3-torchvision
and python3-pil; run with /usr/bin/python3. Exit codes: 0 done, 2 bad arguments or missing packages.
"""
import argparse
import glob
import io
import os
import resource
import sys
import tarfile
import time

try:
    import torch
    import torchvision
    from PIL import Image
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info
    from torchvision import transforms
except ImportError as e:
    sys.stderr.write(f"error: {e}: apt-get install python3-torch python3-torchvision python3-pil, and run with /usr/bin/python3\n")
    sys.exit(2)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="peer-loader.py", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("folder", "shards"))
    p.add_argument("dir")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    p.add_argument("--batches", type=int, default=0, help="stop after N batches (default 0: one epoch)")
    p.add_argument("--augment-rotation", type=float, default=0.0, help="RandomAffine degrees (default 0: no augmentation)")
    p.add_argument("--augment-shift", type=float, default=0.0, help="RandomAffine translate fraction (default 0)")
    p.add_argument("--seed", type=int, default=1, help="shuffle seed (default 1)")
    a = p.parse_args(argv)
    if a.workers < 0 or a.batch < 1 or a.batches < 0:
        p.error("--workers must be >= 0, --batch >= 1 and --batches >= 0")
    if not os.path.isdir(a.dir):
        p.error(f"{a.dir} is not a folder")
    return a


def transform_of(a):
    steps = []
    if a.augment_rotation > 0 or a.augment_shift > 0:
        steps.append(transforms.RandomAffine(degrees=a.augment_rotation, translate=(a.augment_shift, a.augment_shift),
                                             interpolation=transforms.InterpolationMode.BILINEAR))
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


class TarShards(IterableDataset):
    """WebDataset-style samples from tar shards: worker w of n streams shards w, w+n, ...; a sample is the run of members sharing a key."""

    def __init__(self, paths, transform):
        self.paths = paths
        self.transform = transform

    def __iter__(self):
        info = get_worker_info()
        mine = self.paths if info is None else self.paths[info.id::info.num_workers]
        for path in mine:
            yield from self.samples(path)

    def samples(self, path):
        key, image, label = None, None, None
        with tarfile.open(path, "r|") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                dot = base.find(".")
                k = os.path.join(os.path.dirname(m.name), base[:dot] if dot >= 0 else base)
                ext = base[dot + 1:].lower() if dot >= 0 else ""
                if k != key:
                    if image is not None:
                        yield self.decode(image), label
                    key, image, label = k, None, -1
                data = tar.extractfile(m).read()
                if ext in IMAGE_EXTENSIONS:
                    image = data
                elif ext == "cls":
                    label = int(data.decode("ascii").strip())
        if image is not None:
            yield self.decode(image), label

    def decode(self, data):
        with Image.open(io.BytesIO(data)) as img:
            return self.transform(img.convert("RGB"))


def shard_paths(root):
    paths = sorted(glob.glob(os.path.join(root, "train-*.tar"))) or sorted(glob.glob(os.path.join(root, "*.tar")))
    if not paths:
        sys.stderr.write(f"error: {root} holds no .tar shards\n")
        sys.exit(2)
    return paths


def cpu_seconds():
    """User and system time of this process and of its ended children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def main(argv):
    a = parse_args(argv)
    torch.manual_seed(a.seed)
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    transform = transform_of(a)
    if a.kind == "folder":
        data = torchvision.datasets.ImageFolder(a.dir, transform=transform)
        loader = DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                            generator=torch.Generator().manual_seed(a.seed))
    else:
        data = TarShards(shard_paths(a.dir), transform)
        loader = DataLoader(data, batch_size=a.batch, num_workers=a.workers)
    images = batches = 0
    for pixels, labels in loader:
        if pixels.dim() != 4 or pixels.shape[0] != labels.shape[0]:
            raise RuntimeError(f"unexpected batch {tuple(pixels.shape)} / {tuple(labels.shape)}")
        images += pixels.shape[0]
        batches += 1
        if a.batches and batches >= a.batches:
            break
    seconds = time.perf_counter() - start
    del loader  # ends the workers, so their peak RSS is in RUSAGE_CHILDREN
    cpu = cpu_seconds() - cpu_start  # the workers' time is counted once they have ended
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"impl=pytorch-{torch.__version__} loader={a.kind} workers={a.workers} batch={a.batch} images={images} "
          f"seconds={seconds:.2f} images/s={images / seconds:.1f} cpu_us/img={1e6 * cpu / max(1, images):.0f} peakRSS_MB={peak_rss_mb():.0f} workerPeakRSS_MB={worker_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
