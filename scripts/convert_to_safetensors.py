#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (pytorch_model.bin, or its sharded index) to model.safetensors,
which is what fedvlm-sim reads. Some Florence-2 uploads ship only pytorch_model.bin.

    /usr/bin/python3 scripts/convert_to_safetensors.py weights/Florence-2-large

Reads DIR/pytorch_model.bin (or DIR/pytorch_model.bin.index.json and its shards) and writes
DIR/model.safetensors beside it: names, dtypes and values unchanged; tied tensors stored once
per name as the state_dict lists them. An existing model.safetensors is never overwritten.
Needs torch (Debian: python3-torch, run with /usr/bin/python3).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import save_safetensors  # noqa: E402


def load_pickle(path):
    # weights_only refuses arbitrary code in the pickle; torch < 1.13 lacks the argument.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:
        return torch.load(path, map_location="cpu")


def load_state(directory):
    single = os.path.join(directory, "pytorch_model.bin")
    index = os.path.join(directory, "pytorch_model.bin.index.json")
    if os.path.exists(single):
        return load_pickle(single)
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_pickle(os.path.join(directory, shard)))
        return state
    raise SystemExit(f"{directory}: has neither pytorch_model.bin nor pytorch_model.bin.index.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="checkpoint folder holding pytorch_model.bin")
    args = parser.parse_args()
    out = os.path.join(args.directory, "model.safetensors")
    if os.path.exists(out):
        raise SystemExit(f"{out}: exists already; remove it first to convert again")
    state = load_state(args.directory)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise SystemExit(f"{args.directory}: entries that are not tensors: {', '.join(bad[:5])}")
    save_safetensors(out, state, metadata={"format": "pt"})
    print(f"wrote {out}: {len(state)} tensors")


if __name__ == "__main__":
    main()
