#!/usr/bin/python3
"""Writes a synthetic image dataset as WebDataset tar shards, with Python's tarfile, and optionally as an image folder.

Layout (WebDataset; tarfile's default PAX format): each sample is two consecutive tar members that share a key,
<key>.jpg (or .png) and <key>.cls (the class as decimal text). Training shards are <out>/train-000000.tar,
train-000001.tar, ...; held-out shards (--test-images) are <out>/test-000000.tar, ... Keys are 8 digits (train) or
"t" and 7 digits (test), unique over both.
No manifest is written: these are shards "from elsewhere", as webdataset or img2dataset would write them.

Images: a class-dependent coloured shape (ellipse, box, triangle; the hue and shape follow the class) at a random place
and size on a random dark background, blended with uniform noise, so they are cheap to make but not trivial to compress.
Everything follows from --seed: the same arguments give the same bytes.

Scale: encoding is the slow part, so at most --distinct images are encoded; past that, images reuse the encoded bytes
of a random earlier image (with its class), which keeps a 1,000,000-image set to a few minutes. It is fine for a scale
or throughput test, not for a quality claim.

--folder DIR also writes every image as DIR/<class>/<key>.<ext> (DIR/train/<class>/... and DIR/test/<class>/... when
there are test images), the layout of torchvision's ImageFolder and of dnm's folder: datasets. Class folders are
class000, class001, ...: their sorted order is the label order.

Needs Debian's python3 and python3-pil only. Prints one line at the end, e.g.
  wrote 20000 train + 0 test images (64x64x3 jpg, 10 classes) in 20 + 0 shards, 92.4 MB, to /tmp/x in 9.8 s
Exit codes: 0 done, 2 bad arguments.
"""
import argparse
import colorsys
import io
import os
import random
import sys
import tarfile
import time

try:
    from PIL import Image, ImageDraw
except ImportError:  # pragma: no cover - the message is the point
    sys.stderr.write("error: make-wds-shards.py needs Pillow: apt-get install python3-pil (and run it with /usr/bin/python3)\n")
    sys.exit(2)

MTIME = 1_700_000_000  # fixed member times: the same arguments give byte-identical shards


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="make-wds-shards.py",
        description=__doc__,
        epilog="examples:\n"
               "  make-wds-shards.py --out /tmp/wds --images 20000 --size 64 --folder /tmp/wds-folder\n"
               "  make-wds-shards.py --out /tmp/wds1m --images 1000000 --size 28 --channels 1 --per-shard 10000\n"
               "  make-wds-shards.py --out /tmp/small --images 50 --test-images 10 --format png --classes 3\n"
               "The same arguments always write the same bytes.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the shards (created; existing shards of the same names are replaced)")
    p.add_argument("--images", type=int, default=1000, help="training images (default 1000)")
    p.add_argument("--test-images", type=int, default=0, help="held-out images, written as test-*.tar (default 0: none)")
    p.add_argument("--size", type=int, default=64, help="image width and height in pixels (default 64)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1: grayscale (mode L), 3: RGB (default 3)")
    p.add_argument("--classes", type=int, default=10, help="number of classes, labels 0..K-1 (default 10)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image encoding (default jpg)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--per-shard", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--distinct", type=int, default=50000,
                   help="encode at most this many distinct images; later ones reuse earlier images' bytes (default 50000)")
    p.add_argument("--folder", help="also write the images as FOLDER/class000/<key>.<ext> ... (ImageFolder layout; FOLDER/train/... and FOLDER/test/... with --test-images)")
    p.add_argument("--quiet", action="store_true", help="print only the closing line")
    a = p.parse_args(argv)
    problems = []
    if a.images < 1: problems.append(f"--images must be at least 1, got {a.images}")
    if a.test_images < 0: problems.append(f"--test-images must not be negative, got {a.test_images}")
    if a.test_images > 9_999_999: problems.append(f"--test-images must be below 10,000,000, got {a.test_images}")
    if a.images > 99_999_999: problems.append(f"--images must be below 100,000,000, got {a.images}")
    if not 4 <= a.size <= 4096: problems.append(f"--size must be in [4, 4096], got {a.size}")
    if not 1 <= a.classes <= 1000: problems.append(f"--classes must be in [1, 1000], got {a.classes}")
    if not 1 <= a.quality <= 100: problems.append(f"--quality must be in [1, 100], got {a.quality}")
    if a.per_shard < 1: problems.append(f"--per-shard must be at least 1, got {a.per_shard}")
    if a.distinct < a.classes: problems.append(f"--distinct must be at least --classes ({a.classes}), got {a.distinct}")
    if problems:
        p.error("; ".join(problems))
    return a


class Painter:
    """Makes and encodes the images: one random stream, so the set is a function of the seed alone."""

    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.mode = "RGB" if a.channels == 3 else "L"
        self.colours = [tuple(int(255 * v) for v in colorsys.hsv_to_rgb(c / a.classes, 0.85, 0.95)) for c in range(a.classes)]
        self.pool = []  # (label, bytes) of every distinct image made so far

    def sample(self):
        """The next image's (label, encoded bytes)."""
        if len(self.pool) >= self.a.distinct:
            return self.pool[self.rng.randrange(len(self.pool))]
        label = self.rng.randrange(self.a.classes)
        made = (label, self.encode(self.paint(label)))
        self.pool.append(made)
        return made

    def paint(self, label):
        r, s = self.rng, self.a.size
        background = tuple(r.randrange(0, 60) for _ in range(3))
        img = Image.new("RGB", (s, s), background)
        draw = ImageDraw.Draw(img)
        w = r.randint(s // 3, (3 * s) // 4)
        h = r.randint(s // 3, (3 * s) // 4)
        x, y = r.randint(0, s - w), r.randint(0, s - h)
        colour = self.colours[label]
        kind = label % 3
        if kind == 0:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.polygon([(x + w // 2, y), (x, y + h), (x + w, y + h)], fill=colour)
        noise = Image.frombytes("RGB", (s, s), r.randbytes(3 * s * s))
        img = Image.blend(img, noise, 0.25)
        return img if self.mode == "RGB" else img.convert("L")

    def encode(self, img):
        out = io.BytesIO()
        if self.a.format == "jpg":
            img.save(out, "JPEG", quality=self.a.quality)
        else:
            img.save(out, "PNG")
        return out.getvalue()


def member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = MTIME
    info.mode = 0o644
    info.uname = info.gname = "dnm"
    tar.addfile(info, io.BytesIO(data))


def write_split(a, painter, split, count, key_of, folder, say):
    """Writes count samples of one split as split-NNNNNN.tar shards (each to a .tmp file, then renamed); returns (shards, bytes)."""
    shards, total, i = 0, 0, 0
    while i < count:
        path = os.path.join(a.out, f"{split}-{shards:06d}.tar")
        tmp = path + ".tmp"
        with tarfile.open(tmp, "w") as tar:
            for _ in range(min(a.per_shard, count - i)):
                label, data = painter.sample()
                key = key_of(i)
                member(tar, f"{key}.{a.format}", data)
                member(tar, f"{key}.cls", str(label).encode("ascii"))
                if folder is not None:
                    with open(os.path.join(folder, f"class{label:03d}", f"{key}.{a.format}"), "wb") as f:
                        f.write(data)
                i += 1
        os.replace(tmp, path)
        total += os.path.getsize(path)
        shards += 1
        say(f"{split}: {i}/{count} images, {shards} shards")
    return shards, total


def folder_for(a, split):
    if a.folder is None:
        return None
    root = os.path.join(a.folder, split) if a.test_images > 0 else a.folder
    for c in range(a.classes):
        os.makedirs(os.path.join(root, f"class{c:03d}"), exist_ok=True)
    return root


def main(argv):
    a = parse_args(argv)
    start = time.perf_counter()
    os.makedirs(a.out, exist_ok=True)
    say = (lambda _: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    painter = Painter(a)
    train = write_split(a, painter, "train", a.images, lambda i: f"{i:08d}", folder_for(a, "train"), say)
    test = (0, 0)
    if a.test_images > 0:
        # Held-out images are always distinct from the training ones: they get their own pool.
        painter.pool = []
        test = write_split(a, painter, "test", a.test_images, lambda i: f"t{i:07d}", folder_for(a, "test"), say)
    print(f"wrote {a.images} train + {a.test_images} test images ({a.size}x{a.size}x{a.channels} {a.format}, {a.classes} classes) "
          f"in {train[0]} + {test[0]} shards, {(train[1] + test[1]) / 1e6:.1f} MB, to {a.out}"
          f"{f' and {a.folder}' if a.folder else ''} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
