// tests/fuzz/image_decode_fuzzer.cpp — libFuzzer entry point for the image_decode harness (body in fuzz_targets.cpp).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fedvlm::fuzz::fuzz_image_decode(data, size);
}
