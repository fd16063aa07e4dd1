"""What bench/torch_cgan.py and bench/torch_dcgan.py share: reading IDX
files and writing a PyTorch generator as a checkpoint `gan-wgpu eval` reads."""
import gzip
import os
import struct

import numpy as np
from safetensors import safe_open
from safetensors.torch import save_file


def read_idx(path):
    """An IDX file (gzipped or not) as a uint8 array of its dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def template_metadata(path):
    """The metadata of a generator checkpoint gan-wgpu wrote for the same model."""
    with safe_open(path, "pt") as f:
        return dict(f.metadata())


def save_generator(g, path, metadata, epoch, steps):
    """g's state_dict with the template's metadata, epoch and steps: `eval` rebuilds it."""
    tensors = {k: v.detach().contiguous() for k, v in g.state_dict().items()}
    save_file(tensors, path, metadata={**metadata, "epoch": str(epoch), "steps_done": str(steps)})


def add_run_args(ap, threads):
    """The arguments every reference run takes: threads, a limit, the data, the template and the output prefix."""
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (a smoke test)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "assets", "mnist"))
    ap.add_argument("--template", required=True, help="a generator checkpoint of the same model whose metadata is copied")
    ap.add_argument("--out", required=True, help="prefix of the files written: PREFIX_g{epoch}.safetensors, ...")


def start_run(a):
    """Sets torch's threads and seed; MNIST's training images (the first --limit) as uint8 [n, 28, 28]."""
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    images = read_idx(os.path.join(a.data, "train", "train-images-idx3-ubyte.gz"))
    return images[: a.limit] if a.limit else images
