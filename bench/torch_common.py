"""What bench/torch_cgan.py and bench/torch_dcgan.py share: reading IDX
files and writing a PyTorch generator as a checkpoint `gan-wgpu eval` reads."""
import gzip
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
