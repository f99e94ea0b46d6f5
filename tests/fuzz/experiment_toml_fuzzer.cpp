// tests/fuzz/experiment_toml_fuzzer.cpp — libFuzzer entry point for the experiment_toml harness (body in fuzz_targets.cpp).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fedvlm::fuzz::fuzz_experiment_toml(data, size);
}
