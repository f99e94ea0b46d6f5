// tests/fuzz/bart_tokenizer_fuzzer.cpp — libFuzzer entry point for the bart_tokenizer harness (body in fuzz_targets.cpp).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fedvlm::fuzz::fuzz_bart_tokenizer(data, size);
}
