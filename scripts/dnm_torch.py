"""Load a model written by `dnm export` into PyTorch.

    import dnm_torch
    model = dnm_torch.load("model.safetensors")        # a torch.nn.Module, in eval mode
    z = model.encode(images)                            # images: (N, C, H, W) float32 in [0, 1]
    rows, cols, distance = model.place(images)          # each image's BMU on the lattice

The file is safetensors: an 8-byte little-endian header length, a JSON header, then the raw little-endian tensors.
It is parsed here with json, struct and torch alone (the `safetensors` package is not needed). Its tensors are the
state_dict of the modules below (the names are Dnm's own parameter names), plus `som.prototypes` (nodes x latent,
node j at lattice row j // cols, column j % cols); its metadata holds the run's config (`dnm.config`, the keys of
config.json) and the image shape (`dnm.image-shape`). The config's `lattice` is `rect` or `hex` (pointy-top cells in
odd-r offset rows: odd rows sit half a cell to the right) and `toroidal` says whether the edges wrap; files exported
before those keys existed are rect and not toroidal. `model.som.centres()` gives each node's position in the plane.

Needs PyTorch (Debian: apt-get install python3-torch) and nothing else.
"""

import json
import struct
from collections import OrderedDict

import torch
from torch import nn

FORMAT_VERSION = "1"
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8}


def read_safetensors(path):
    """(tensors, metadata): an ordered dict of name -> tensor, and the header's string metadata."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError(f"{path}: header length {length} does not fit the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = bytearray(data[8 + length:])
    tensors = OrderedDict()
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        flat = torch.frombuffer(body, dtype=dtype, offset=begin, count=(end - begin) // torch.empty((), dtype=dtype).element_size())
        # frombuffer shares the file's bytes; clone so every tensor owns its memory.
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


class SomLattice(nn.Module):
    """The map: rows x cols prototypes in the latent space (a buffer, since the Kohonen rule, not autograd, moves them)."""

    def __init__(self, rows, cols, latent, lattice="rect", toroidal=False):
        super().__init__()
        self.rows, self.cols, self.lattice, self.toroidal = rows, cols, lattice, toroidal
        self.register_buffer("prototypes", torch.zeros(rows * cols, latent))

    def centres(self):
        """(nodes, 2) float64: each node's (x, y) in neighbour spacings; hex rows are sqrt(3)/2 apart, odd ones shifted by 1/2."""
        node = torch.arange(self.rows * self.cols)
        row, col = (node // self.cols).double(), (node % self.cols).double()
        if self.lattice == "hex":
            return torch.stack([col + 0.5 * (row % 2), row * 3 ** 0.5 / 2], dim=1)
        return torch.stack([col, row], dim=1)

    def place(self, z):
        """(bmu, distance): each row of z's nearest prototype (node index) and the Euclidean distance to it, in float64."""
        d = torch.cdist(z.double(), self.prototypes.double())
        distance, bmu = d.min(dim=1)
        return bmu, distance


class ConvAutoencoder(nn.Module):
    """Dnm's convolutional autoencoder: conv k x k 'same' + ReLU per channel width, dense to z; the decoder mirrors it."""

    def __init__(self, shape, channels, kernel, latent, sigmoid_latent):
        super().__init__()
        c, h, w = shape
        self.shape, self.sigmoid_latent, self.last = shape, sigmoid_latent, channels[-1]
        pad = kernel // 2
        enc, cin = [], c
        for i, cout in enumerate(channels):
            enc += [(f"conv{i + 1}", nn.Conv2d(cin, cout, kernel, padding=pad)), (f"relu{i + 1}", nn.ReLU())]
            cin = cout
        self.encoderConvs = nn.Sequential(OrderedDict(enc))
        flat = channels[-1] * h * w
        self.encoderDense = nn.Linear(flat, latent)
        self.decoderDense = nn.Linear(latent, flat)
        dec, n = [], len(channels)
        for i in range(n - 1, -1, -1):
            cout = c if i == 0 else channels[i - 1]
            dec.append((f"deconv{n - i}", nn.ConvTranspose2d(channels[i], cout, kernel, padding=pad)))
            dec.append(("sigmoid", nn.Sigmoid()) if i == 0 else (f"relu{n - i}", nn.ReLU()))
        self.decoderConvs = nn.Sequential(OrderedDict(dec))

    def encode(self, x):
        z = self.encoderDense(self.encoderConvs(x).flatten(1))
        return torch.sigmoid(z) if self.sigmoid_latent else z

    def decode(self, z):
        _, h, w = self.shape
        return self.decoderConvs(torch.relu(self.decoderDense(z)).view(-1, self.last, h, w))


class MlpAutoencoder(nn.Module):
    """Dnm's fully connected autoencoder (DEC's): dense layers with ReLU between them; the decoder mirrors it, then a sigmoid."""

    def __init__(self, shape, hidden, latent, sigmoid_latent):
        super().__init__()
        self.shape, self.sigmoid_latent = shape, sigmoid_latent
        pixels = shape[0] * shape[1] * shape[2]
        self.encoder = nn.Sequential(self._dense_stack([pixels, *hidden, latent]))
        self.decoder = nn.Sequential(OrderedDict([*self._dense_stack([latent, *reversed(hidden), pixels]).items(), ("sigmoid", nn.Sigmoid())]))

    @staticmethod
    def _dense_stack(widths):
        layers = OrderedDict()
        for i in range(1, len(widths)):
            if i > 1:
                layers[f"relu{i - 1}"] = nn.ReLU()
            layers[f"dense{i}"] = nn.Linear(widths[i - 1], widths[i])
        return layers

    def encode(self, x):
        z = self.encoder(x.flatten(1))
        return torch.sigmoid(z) if self.sigmoid_latent else z

    def decode(self, z):
        return self.decoder(z).view(-1, *self.shape)


class DeepNeuralMap(nn.Module):
    """The autoencoder's modules (at the top level, so the names match the file) and the lattice as `som`."""

    def __init__(self, config, shape):
        super().__init__()
        self.config, self.shape = config, shape
        sigmoid = config["latent-activation"] == "sigmoid"
        if config["encoder"] == "conv":
            ae = ConvAutoencoder(shape, config["channels"], config["kernel"], config["latent"], sigmoid)
        elif config["encoder"] == "mlp":
            ae = MlpAutoencoder(shape, config["hidden"], config["latent"], sigmoid)
        else:
            raise ValueError(f"unknown encoder {config['encoder']!r}")
        self.autoencoder = [ae]  # kept out of the module tree: its children are registered below, under their own names
        for name, child in ae.named_children():
            self.add_module(name, child)
        rows, cols = (int(v) for v in config["map"].lower().split("x"))
        self.som = SomLattice(rows, cols, config["latent"], config.get("lattice", "rect"), config.get("toroidal", False))

    def encode(self, x):
        return self.autoencoder[0].encode(x)

    def decode(self, z):
        return self.autoencoder[0].decode(z)

    def forward(self, x):
        return self.decode(self.encode(x))

    @torch.no_grad()
    def place(self, x):
        """(rows, cols, distances) of each image's BMU."""
        bmu, distance = self.som.place(self.encode(x))
        return bmu // self.som.cols, bmu % self.som.cols, distance


def load(path):
    """The model in `path` (written by `dnm export`), weights and prototypes loaded, in eval mode."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("dnm.format") != FORMAT_VERSION:
        raise ValueError(f"{path}: export format {metadata.get('dnm.format')!r}, this loader reads {FORMAT_VERSION!r}")
    config = json.loads(metadata["dnm.config"])
    s = json.loads(metadata["dnm.image-shape"])
    model = DeepNeuralMap(config, (s["channels"], s["height"], s["width"]))
    model.load_state_dict(tensors, strict=True)
    return model.eval()
