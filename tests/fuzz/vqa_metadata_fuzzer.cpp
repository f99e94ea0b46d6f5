// tests/fuzz/vqa_metadata_fuzzer.cpp — libFuzzer entry point for the vqa_metadata harness (body in fuzz_targets.cpp).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fedvlm::fuzz::fuzz_vqa_metadata(data, size);
}
