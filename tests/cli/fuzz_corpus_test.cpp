// tests/cli/fuzz_corpus_test.cpp — replays every input of tests/fuzz/corpus/ through its libFuzzer harness, so seeds and past crashes stay fixed without clang.
//
// A regression comes back as a crash of this test binary (or a sanitizer report in a sanitized
// build), exactly as in the fuzzer; inputs the parsers reject by throwing are fine.
// tests/fuzz/pending/ holds reproducers of bugs not fixed yet and is not replayed.
#include "tests/fuzz/fuzz_targets.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

namespace fedvlm::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(FEDVLM_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

void replay(const std::string& target) {
  const auto& all = fuzz_targets();
  const auto it = std::find_if(all.begin(), all.end(),
                               [&](const FuzzTarget& t) { return t.name == target; });
  ASSERT_NE(it, all.end()) << "no harness named " << target;
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(kCorpus / target))
    if (e.is_regular_file()) inputs.push_back(e.path());
  std::sort(inputs.begin(), inputs.end()); // stable order makes a failure reproducible
  ASSERT_FALSE(inputs.empty()) << (kCorpus / target) << " holds no inputs";
  for (const auto& file : inputs) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    ASSERT_TRUE(in) << "cannot read " << file;
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>()};
    // The harness swallows std::exception; reaching the next line is the check.
    EXPECT_EQ(it->run(bytes.data(), bytes.size()), 0);
  }
}

TEST(FuzzCorpus, ExperimentToml) { replay("experiment_toml"); }
TEST(FuzzCorpus, Safetensors) { replay("safetensors"); }
TEST(FuzzCorpus, ImageDataset) { replay("image_dataset"); }
TEST(FuzzCorpus, VqaMetadata) { replay("vqa_metadata"); }
TEST(FuzzCorpus, ImageDecode) { replay("image_decode"); }
TEST(FuzzCorpus, BartTokenizer) { replay("bart_tokenizer"); }

// A corpus folder without a harness, or a harness without a TEST above, would go unreplayed.
TEST(FuzzCorpus, FoldersMatchHarnesses) {
  std::set<std::string> folders, harnesses;
  for (const auto& e : fs::directory_iterator(kCorpus))
    if (e.is_directory()) folders.insert(e.path().filename().string());
  for (const auto& t : fuzz_targets()) harnesses.insert(t.name);
  EXPECT_EQ(folders, harnesses);
  EXPECT_EQ(harnesses.size(), 6U) << "add a TEST(FuzzCorpus, ...) for the new harness";
}

} // namespace
} // namespace fedvlm::fuzz
