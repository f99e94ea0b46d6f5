#!/usr/bin/env python3
"""Writes the Florence-2 parity fixture: a small random-weight Florence-2 built by the reference
code, its inputs, and the reference's outputs, for tests/model/florence2_parity_test.cpp.

The reference is the published remote code of microsoft/Florence-2-base (or -large):
`modeling_florence2.py` and `configuration_florence2.py`, which need `transformers`, `timm` and
`einops` importable. Run it wherever those are, e.g. on a machine with `pip install
transformers==4.41 timm einops` and the two files downloaded from the Hugging Face hub:

    python3 scripts/make_florence2_parity_fixture.py --remote-code DIR --out tests/fixtures/florence2_parity

Output (all float32 unless noted; nothing here is a real model):
  config.json        the Hugging Face config of the random model (the fixture's own size)
  preprocessor_config.json  its image size, mean and std
  model.safetensors  its state_dict by the checkpoint's names, the tied token table stored once
  io.safetensors     pixel_values, input_ids (int64), labels (int64, -100 = ignored),
                     image_features, encoder_hidden, logits, loss (the reference's outputs)
"""
import argparse
import importlib
import json
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import save_safetensors  # noqa: E402

# Small enough to commit, shaped to reach every code path: window 3 pads every DaViT stage's
# map (16, 8, 4, 2), stage 3 stacks two blocks, heads differ from groups nowhere (as published).
VISION = {
    "model_type": "davit",
    "drop_path_rate": 0.1,
    "patch_size": [7, 3, 3, 3],
    "patch_stride": [4, 2, 2, 2],
    "patch_padding": [3, 1, 1, 1],
    "patch_prenorm": [False, True, True, True],
    "enable_checkpoint": False,
    "dim_embed": [8, 16, 24, 32],
    "num_heads": [1, 2, 2, 4],
    "num_groups": [1, 2, 2, 4],
    "depths": [1, 1, 2, 1],
    "window_size": 3,
    "projection_dim": 24,
    "visual_temporal_embedding": {"type": "COSINE", "max_temporal_embeddings": 100},
    "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": 50},
    "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"],
}
TEXT = {
    "vocab_size": 120,
    "d_model": 24,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 40,
    "decoder_ffn_dim": 40,
    "max_position_embeddings": 64,
    "activation_function": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.1,
    "scale_embedding": False,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "decoder_start_token_id": 2,
    "forced_eos_token_id": 2,
    "is_encoder_decoder": True,
    "tie_word_embeddings": True,
}
IMAGE_SIZE = 64
BATCH, PROMPT_LEN, ANSWER_LEN = 2, 5, 6
SEED = 20261123

# Tied to language_model.model.shared.weight; a published checkpoint may store any one of them.
TIED = (
    "language_model.model.encoder.embed_tokens.weight",
    "language_model.model.decoder.embed_tokens.weight",
    "language_model.lm_head.weight",
)


def import_remote_code(directory):
    """Imports DIR/modeling_florence2.py as a package module, so its relative import works."""
    package = "florence2_reference"
    pkg = types.ModuleType(package)
    pkg.__path__ = [directory]
    sys.modules[package] = pkg
    config = importlib.import_module(package + ".configuration_florence2")
    modeling = importlib.import_module(package + ".modeling_florence2")
    return config, modeling


def randomize(model, generator):
    """Every weight random (LayerNorm scales near 1, biases small but non-zero, so a missing bias
    or a swapped norm shows in the logits); the sinusoid buffer keeps its exact values."""
    with torch.no_grad():
        norms = {name + ".weight" for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name in norms:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.2 * noise)
        bias = model.language_model.final_logits_bias
        bias.copy_(0.05 * torch.randn(bias.shape, generator=generator))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote-code", required=True,
                        help="directory with modeling_florence2.py and configuration_florence2.py")
    parser.add_argument("--out", required=True, help="fixture directory to write")
    args = parser.parse_args()

    config_module, modeling = import_remote_code(os.path.abspath(args.remote_code))
    config = config_module.Florence2Config(
        vision_config=dict(VISION), text_config=dict(TEXT), vocab_size=TEXT["vocab_size"],
        projection_dim=VISION["projection_dim"], pad_token_id=1, bos_token_id=0, eos_token_id=2,
        is_encoder_decoder=True)
    # Eager attention: the reference's plain path, which every transformers version has.
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    model = modeling.Florence2ForConditionalGeneration(config)
    model.eval()

    generator = torch.Generator().manual_seed(SEED)
    randomize(model, generator)
    language = model.language_model
    shared = language.model.shared.weight
    language.model.encoder.embed_tokens.weight = shared
    language.model.decoder.embed_tokens.weight = shared
    language.lm_head.weight = shared

    pixel_values = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    input_ids = torch.randint(3, TEXT["vocab_size"], (BATCH, PROMPT_LEN), generator=generator)
    labels = torch.randint(3, TEXT["vocab_size"], (BATCH, ANSWER_LEN), generator=generator)
    labels[:, -1] = TEXT["eos_token_id"]
    labels[1, -2:] = -100  # a shorter answer padded as the collator pads it

    with torch.no_grad():
        image_features = model._encode_image(pixel_values)
        out = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels, return_dict=True)

    os.makedirs(args.out, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items()
             if k not in TIED}
    save_safetensors(os.path.join(args.out, "model.safetensors"), state)
    save_safetensors(os.path.join(args.out, "io.safetensors"), {
        "pixel_values": pixel_values, "input_ids": input_ids, "labels": labels,
        "image_features": image_features, "encoder_hidden": out.encoder_last_hidden_state,
        "logits": out.logits, "loss": out.loss.reshape(1)})
    hf_config = {"architectures": ["Florence2ForConditionalGeneration"], "model_type": "florence2",
                 "vocab_size": TEXT["vocab_size"], "projection_dim": VISION["projection_dim"],
                 "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "is_encoder_decoder": True,
                 "vision_config": VISION, "text_config": TEXT}
    preprocessor = {"size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    for name, content in (("config.json", hf_config), ("preprocessor_config.json", preprocessor)):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(content, f, indent=2)
            f.write("\n")
    print(f"wrote {args.out}: {len(state)} tensors, "
          f"{sum(v.numel() for v in state.values())} parameters, loss {out.loss.item():.6f}")


if __name__ == "__main__":
    main()
