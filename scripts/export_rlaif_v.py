#!/usr/bin/env python3
"""Export RLAIF-V parquet shards to the ImageFolder layout fedvlm-sim reads.

fedvlm-sim cannot read Parquet (Debian has no Parquet library for C++), so convert the
dataset once on a machine that has it:

    python3 export_rlaif_v.py RLAIF-V-Dataset/ --out rlaif_v_folder [--limit 2000]

INPUT is one or more .parquet files or directories searched recursively for them (the
openbmb/RLAIF-V-Dataset shards: columns ds_name, image{bytes,path}, question, chosen,
rejected, origin_dataset, origin_split, idx, image_path).

The output directory gets images/NNNNNNN.<ext> (the original encoded bytes; formats other
than JPEG/PNG are re-encoded to PNG when Pillow is installed) and metadata.jsonl with one
JSON object per line:

    {"file_name": "images/0000000.jpg", "question": ..., "answer": <chosen>,
     "origin_dataset": ..., "origin_split": ..., "idx": ..., "ds_name": ...}

Needs pyarrow (preferred, streams row groups) or the `datasets` package. RLAIF-V is
cc-by-nc-4.0: keep the export to non-commercial research use.
"""
import argparse
import io
import json
import os
import sys


def find_parquet(inputs):
    files = []
    for item in inputs:
        if os.path.isdir(item):
            for root, _, names in os.walk(item):
                files += [os.path.join(root, n) for n in names if n.endswith(".parquet")]
        elif item.endswith(".parquet") and os.path.isfile(item):
            files.append(item)
        else:
            sys.exit(f"{item}: not a .parquet file or a directory")
    if not files:
        sys.exit("no .parquet files found in " + ", ".join(inputs))
    return sorted(files)


def iter_rows(files):
    """Yields row dicts, one shard at a time, without loading a whole ~1 GB shard."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        for f in files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=256):
                yield from batch.to_pylist()
        return
    try:
        from datasets import load_dataset
    except ImportError:
        sys.exit("needs pyarrow or datasets: pip install pyarrow")
    from datasets import Image as HFImage
    ds = load_dataset("parquet", data_files=files, split="train", streaming=True)
    ds = ds.cast_column("image", HFImage(decode=False))  # keep the encoded bytes
    yield from ds


def image_bytes_and_ext(image):
    """(bytes, extension) of the row's image; non-JPEG/PNG goes to PNG when Pillow exists."""
    data = image.get("bytes") if isinstance(image, dict) else None
    if not data and isinstance(image, dict) and image.get("path") and os.path.isfile(image["path"]):
        with open(image["path"], "rb") as fh:
            data = fh.read()
    if not data:
        return None, None
    if data[:3] == b"\xff\xd8\xff":
        return data, "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data, "png"
    try:
        from PIL import Image
    except ImportError:
        return None, None  # the C++ loader reads JPEG/PNG (BMP/GIF too, but be safe)
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, format="PNG")
    return buf.getvalue(), "png"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help=".parquet files or directories holding them")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many samples (0: all)")
    args = ap.parse_args()

    images_dir = os.path.join(args.out, "images")
    os.makedirs(images_dir, exist_ok=True)
    meta_path = os.path.join(args.out, "metadata.jsonl")
    written = skipped = 0
    # Write to a temporary name so an interrupted export never looks complete.
    with open(meta_path + ".tmp", "w", encoding="utf-8") as meta:
        for row in iter_rows(find_parquet(args.inputs)):
            if args.limit and written >= args.limit:
                break
            data, ext = image_bytes_and_ext(row.get("image"))
            question, chosen = row.get("question"), row.get("chosen")
            if data is None or not isinstance(question, str) or not isinstance(chosen, str):
                skipped += 1
                continue
            name = f"images/{written:07d}.{ext}"
            with open(os.path.join(args.out, name), "wb") as fh:
                fh.write(data)
            record = {
                "file_name": name,
                "question": question,
                "answer": chosen,
                "origin_dataset": str(row.get("origin_dataset") or "unknown"),
                "origin_split": row.get("origin_split"),
                "idx": row.get("idx"),
                "ds_name": row.get("ds_name"),
            }
            meta.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            written += 1
    os.replace(meta_path + ".tmp", meta_path)
    print(f"{meta_path}: {written} samples written, {skipped} skipped (no image or text)")


if __name__ == "__main__":
    main()
