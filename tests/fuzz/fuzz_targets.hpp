// tests/fuzz/fuzz_targets.hpp — one harness body per parser of untrusted input, shared by the libFuzzer binaries and the corpus replay test.
//
// Each function feeds `data` to one parser exactly as a user's file would reach it. A
// std::exception is the parser rejecting the input (a handled outcome) and is swallowed; a
// crash, a sanitizer report, a hang or an unbounded allocation is a bug. All return 0, as
// libFuzzer's LLVMFuzzerTestOneInput must.
//
// Readers that only take paths get their input through files in a scratch directory under
// /dev/shm (the system temporary directory where /dev/shm is absent), one per target and
// process, removed at exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm::fuzz {

/// fl/config/experiment_toml: parse_experiment(text, "fuzz.toml").
int fuzz_experiment_toml(const uint8_t* data, std::size_t size);

/// model/safetensors: safetensors_load of the input written as a .safetensors file.
int fuzz_safetensors(const uint8_t* data, std::size_t size);

/// fl/data/image_dataset: byte 0 picks the reader (even: IDX via load_fashion_mnist, odd:
/// load_cifar10), then split_two_parts(rest) gives (labels file, images file) for IDX and
/// (batches.meta.txt, test_batch.bin) for CIFAR-10; an empty batches.meta.txt part means no
/// such file. Both IDX files may be gzip or plain (zlib reads either).
int fuzz_image_dataset(const uint8_t* data, std::size_t size);

/// fl/data/vqa_dataset: load_vqa_folder on a folder whose metadata.jsonl is the input; the folder
/// also holds the images "a.png" and "images/0.png" so that valid lines can be accepted.
int fuzz_vqa_metadata(const uint8_t* data, std::size_t size);

/// model/image_processor: decode_image_tensor (decode_rgb, then resize to 16×16 and normalise).
int fuzz_image_decode(const uint8_t* data, std::size_t size);

/// model/bart_tokenizer: split_two_parts(input) = (tokenizer.json, text); loads the tokenizer,
/// then encodes the text with and without special tokens and decodes the ids back.
int fuzz_bart_tokenizer(const uint8_t* data, std::size_t size);

/// Splits an input into two byte strings: a 2-byte little-endian length n, then n bytes of
/// the first part (fewer if the input ends), then the rest as the second part. Inputs shorter
/// than 2 bytes give two empty parts. Exposed so that seed generators can build inputs.
struct TwoParts {
  std::string first;
  std::string second;
};
[[nodiscard]] TwoParts split_two_parts(const uint8_t* data, std::size_t size);
/// The inverse of split_two_parts (first part must be under 64 KiB).
[[nodiscard]] std::string join_two_parts(const std::string& first, const std::string& second);

/// One target: its name (the corpus folder under tests/fuzz/corpus/) and its harness.
struct FuzzTarget {
  const char* name;
  int (*run)(const uint8_t* data, std::size_t size);
};
/// Every target, in the order scripts/fuzz.sh runs them.
[[nodiscard]] const std::vector<FuzzTarget>& fuzz_targets();

} // namespace fedvlm::fuzz
