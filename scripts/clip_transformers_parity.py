#!/usr/bin/env python3
# scripts/clip_transformers_parity.py — Hugging Face transformers' CLIPModel against the CLIP parity fixture, on CUDA and CPU.
#
#   python3 scripts/clip_transformers_parity.py [--require-cuda] [--atol-cuda 1e-4] [--atol-cpu 1e-5]
#
# tests/fixtures/clip_parity holds a tiny random-weight CLIP under HF CLIPModel's parameter names,
# its inputs and reference outputs computed by an independent implementation in OpenAI's layout
# (gen_clip_parity.py beside it, torch 1.13 on CPU). tests/model/clip_parity_test.cpp checks the C++
# engine against those; this script checks transformers against the same numbers on the GPU
# machine (which has transformers and CUDA; Debian has neither), so the fixture is vouched for by
# a second implementation and on a second device:
#   - a CLIPConfig built from the fixture's config.json (text/vision sizes, quick_gelu, eos 599,
#     projection 24), the fixture's weights loaded with load_state_dict (strict, after dropping the
#     position_ids buffers some checkpoints store and transformers does not);
#   - image and text embeddings (pooled, projected, not normalised: vision_model/text_model then
#     visual_projection/text_projection, and get_image_features/get_text_features), the
#     normalised embeddings and logits_per_image of the full forward, for each attention
#     implementation transformers offers here (eager, sdpa), on CUDA (float32, TF32 off for
#     matmuls and cuDNN convolutions) and on the CPU;
#   - a negative control: one perturbed text bias must move the text embeddings far past the
#     tolerance, so a comparison that checks nothing cannot pass.
# Prints each max |diff| and exits 1 if one is above its tolerance (2 if it could not run).
# scripts/device_build.sh runs it with --require-cuda. (The Florence-2 fixture,
# tests/fixtures/florence2_parity from scripts/make_florence2_parity_fixture.py, could be checked
# the same way; not done here.)
import argparse
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "clip_parity")

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_safetensors(path):
    """name -> tensor. The safetensors package if present, else the format read directly (an
    8-byte little-endian header length, a JSON header, then the raw little-endian data)."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        raw = bytearray(data[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def clip_config(cfg):
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(cfg["text_config"]),
        vision_config=dict(cfg["vision_config"]),
        projection_dim=cfg["projection_dim"],
        logit_scale_init_value=cfg.get("logit_scale_init_value", 2.6592),
    )


def build_model(config, impl):
    """CLIPModel with attention implementation `impl`; returns (model, what transformers reports)."""
    from transformers import CLIPModel
    try:
        model = CLIPModel._from_config(config, attn_implementation=impl)
    except TypeError:  # transformers too old for the keyword: set it on the config
        config._attn_implementation = impl
        model = CLIPModel(config)
    used = {getattr(m.config, "_attn_implementation", None) for m in (model, model.text_model, model.vision_model)
            if hasattr(m, "config")}
    return model.float().eval(), ",".join(sorted(str(u) for u in used))


def load_weights(model, weights):
    expected = set(model.state_dict().keys())
    given = set(weights.keys())
    missing = sorted(expected - given)
    extra = sorted(given - expected)
    unexplained = [k for k in extra if not k.endswith("position_ids")]
    if missing or unexplained:
        raise SystemExit(f"weights do not match CLIPModel: missing {missing}, unexpected {unexplained}")
    model.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=True)
    return extra


def as_tensor(x):
    """get_*_features return a tensor in transformers 4.x; some versions wrap it in an output."""
    if torch.is_tensor(x):
        return x
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        v = getattr(x, name, None)
        if torch.is_tensor(v):
            return v
    return None


def max_diff(a, b):
    return (a.detach().to("cpu", torch.float64) - b.to(torch.float64)).abs().max().item()


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


def run(model, io, device):
    pixels = io["pixel_values"].to(device)
    ids = io["input_ids"].to(device)
    with torch.no_grad():
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        text = model.text_projection(model.text_model(input_ids=ids).pooler_output)
        out = model(input_ids=ids, pixel_values=pixels)
        feats_image = as_tensor(model.get_image_features(pixel_values=pixels))
        feats_text = as_tensor(model.get_text_features(input_ids=ids))
    rows = {
        "image_embeds": max_diff(image, io["image_embeds"]),
        "text_embeds": max_diff(text, io["text_embeds"]),
        "logits_per_image": max_diff(out.logits_per_image, io["logits_per_image"]),
        "forward image_embeds (normalised)": max_diff(out.image_embeds, normalise(io["image_embeds"])),
        "forward text_embeds (normalised)": max_diff(out.text_embeds, normalise(io["text_embeds"])),
    }
    if feats_image is not None and tuple(feats_image.shape) == tuple(io["image_embeds"].shape):
        rows["get_image_features"] = max_diff(feats_image, io["image_embeds"])
    if feats_text is not None and tuple(feats_text.shape) == tuple(io["text_embeds"].shape):
        rows["get_text_features"] = max_diff(feats_text, io["text_embeds"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--require-cuda", action="store_true", help="fail if torch sees no GPU")
    parser.add_argument("--atol-cuda", type=float, default=1e-4)
    parser.add_argument("--atol-cpu", type=float, default=1e-5)
    args = parser.parse_args()

    try:
        import transformers
    except ImportError as e:
        print(f"clip_transformers_parity: transformers is not importable ({e})", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}")
    with open(os.path.join(FIXTURE, "config.json")) as f:
        cfg = json.load(f)
    weights = load_safetensors(os.path.join(FIXTURE, "model.safetensors"))
    io = load_safetensors(os.path.join(FIXTURE, "io.safetensors"))
    print(f"fixture: {len(weights)} tensors, pixel_values {tuple(io['pixel_values'].shape)}, "
          f"input_ids {tuple(io['input_ids'].shape)}, logits {tuple(io['logits_per_image'].shape)}")

    devices = []
    if torch.cuda.is_available():
        # float32 throughout: TF32 would round matmul and convolution inputs to 10-bit mantissas.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        devices.append(("cuda", args.atol_cuda))
        print(f"GPU: {torch.cuda.get_device_name(0)}; TF32 off (matmul and cuDNN)")
    elif args.require_cuda:
        print("clip_transformers_parity: --require-cuda, but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    devices.append(("cpu", args.atol_cpu))

    failures = 0
    dropped = None
    for impl in ("eager", "sdpa"):
        try:
            model, used = build_model(clip_config(cfg), impl)
        except (ValueError, ImportError) as e:
            print(f"\n[{impl}] not available here: {e}")
            continue
        dropped = load_weights(model, weights)
        for device, atol in devices:
            model.to(device)
            try:
                rows = run(model, io, device)
            except Exception as e:  # noqa: BLE001 - eager must run; another implementation may not here
                if impl == "eager":
                    raise
                print(f"\n[{impl}, {device}] could not run here: {type(e).__name__}: {e}")
                continue
            print(f"\n[{impl} (transformers reports {used}), {device}, tolerance {atol:g}]")
            for name, d in rows.items():
                ok = d <= atol
                failures += not ok
                print(f"  {name:36s} max |diff| {d:.3e}  {'ok' if ok else 'ABOVE TOLERANCE'}")
            model.to("cpu")
    if dropped is None:
        print("clip_transformers_parity: no attention implementation could be built", file=sys.stderr)
        return 2
    print(f"\nnot loaded (buffers transformers does not store): {', '.join(dropped) or 'none'}")

    # Negative control: a perturbed text bias must show (on the GPU when there is one).
    device, atol = devices[0]
    model, _ = build_model(clip_config(cfg), "eager")
    bad = dict(weights)
    key = "text_model.encoder.layers.1.mlp.fc2.bias"
    bad[key] = bad[key].clone()
    bad[key][5] += 0.01
    load_weights(model, bad)
    model.to(device)
    rows = run(model, io, device)
    caught = rows["text_embeds"] > 100 * atol and rows["image_embeds"] <= atol
    failures += not caught
    print(f"negative control ({key}[5] += 0.01, {device}): text max |diff| {rows['text_embeds']:.3e}, "
          f"image {rows['image_embeds']:.3e}: {'detected' if caught else 'NOT DETECTED'}")

    print(f"\nclip_transformers_parity: {'PASS' if failures == 0 else f'FAIL ({failures} above tolerance)'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
