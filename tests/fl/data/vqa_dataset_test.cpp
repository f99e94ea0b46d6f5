// tests/fl/data/vqa_dataset_test.cpp — ImageFolder VQA loading, the synthetic colour set, and error messages.
#include "fl/data/vqa_dataset.hpp"
#include "model/florence2_tokens.hpp"
#include "tests/test_support.hpp"

#include "model/bart_tokenizer.hpp"
#include "model/image_processor.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

using fedvlm::testing::TempDir;

std::string read_text(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& f, const std::string& s) {
  std::ofstream out(f, std::ios::binary);
  out << s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

// A folder with two real images a.png, sub/b.png and the given metadata.
void make_folder(const fs::path& dir, const std::string& metadata) {
  fs::create_directories(dir / "sub");
  write_png(dir / "a.png", at::full({4, 4, 3}, 100, at::kByte));
  write_png(dir / "sub" / "b.png", at::full({4, 4, 3}, 200, at::kByte));
  write_text(dir / "metadata.jsonl", metadata);
}

std::array<uint8_t, 3> pixel(const RgbImage& img, int x, int y) {
  const auto i = static_cast<std::size_t>((y * img.width + x) * 3);
  return {img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]};
}

TEST(VqaDataset, SyntheticFolderRoundTrip) {
  TempDir dir;
  const std::vector<std::string> domains = {"vqa_b", "coco", "vqa_a"};
  write_synthetic_vqa_folder(dir.path(), 20, domains, 7);
  const VqaDataset ds = load_vqa_folder(dir.path());
  ASSERT_EQ(ds.size(), 60U);
  EXPECT_EQ(ds.root, dir.path());
  EXPECT_EQ(ds.domains, (std::vector<std::string>{"coco", "vqa_a", "vqa_b"}));
  const auto ids = ds.domain_ids();
  ASSERT_EQ(ids.size(), 60U);
  // Written domain by domain in the order given; ids index the sorted list.
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[20], 0);
  EXPECT_EQ(ids[59], 1);
  EXPECT_EQ(ds.samples[0].image_file, "images/000000.png");
  EXPECT_EQ(ds.samples[59].image_file, "images/000059.png");
  const auto& colours = synthetic_vqa_colours();
  std::set<std::string> answers;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const auto& s = ds.samples[i];
    EXPECT_TRUE(s.question == "What color is the square?" ||
                s.question == "What color is the background?")
        << s.question;
    EXPECT_NE(std::find(colours.begin(), colours.end(), s.answer), colours.end()) << s.answer;
    EXPECT_TRUE(fs::is_regular_file(ds.image_path(i)));
    answers.insert(s.answer);
  }
  EXPECT_GE(answers.size(), 4U); // answers vary
}

TEST(VqaDataset, SyntheticAnswersMatchTheImages) {
  TempDir dir;
  write_synthetic_vqa_folder(dir.path(), 30, {"d0", "d1"}, 11);
  const VqaDataset ds = load_vqa_folder(dir.path());
  // Reference colours: decode a sample per answer from its own picture where possible.
  std::map<std::string, std::array<uint8_t, 3>> colour_of;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const auto& s = ds.samples[i];
    std::ifstream in(ds.image_path(i), std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>()};
    const RgbImage img = decode_rgb(bytes, ds.image_path(i).string());
    ASSERT_EQ(img.width, 32);
    ASSERT_EQ(img.height, 32);
    const auto corner = pixel(img, 0, 0);
    if (s.question == "What color is the background?") {
      if (colour_of.count(s.answer) != 0) {
        EXPECT_EQ(colour_of[s.answer], corner) << i;
      }
      colour_of[s.answer] = corner;
      continue;
    }
    // The square: some interior pixel differs from the background; its colour is the answer.
    std::array<uint8_t, 3> other = corner;
    for (int y = 2; y < 30 && other == corner; ++y) {
      for (int x = 2; x < 30 && other == corner; ++x) other = pixel(img, x, y);
    }
    ASSERT_NE(other, corner) << "sample " << i << " has no square";
    if (colour_of.count(s.answer) != 0) {
      EXPECT_EQ(colour_of[s.answer], other) << i;
    }
    colour_of[s.answer] = other;
  }
}

TEST(VqaDataset, SyntheticIsDeterministicAndTokenizerFriendly) {
  TempDir a, b, c;
  write_synthetic_vqa_folder(a.path(), 5, {"x", "y"}, 3);
  write_synthetic_vqa_folder(b.path(), 5, {"x", "y"}, 3);
  write_synthetic_vqa_folder(c.path(), 5, {"x", "y"}, 4);
  EXPECT_EQ(read_text(a.path() / "metadata.jsonl"), read_text(b.path() / "metadata.jsonl"));
  EXPECT_NE(read_text(a.path() / "metadata.jsonl"), read_text(c.path() / "metadata.jsonl"));
  EXPECT_EQ(read_text(a.path() / "images" / "000007.png"),
            read_text(b.path() / "images" / "000007.png"));

  // Every answer is one token of the tiny tokenizer; questions are short.
  TempDir t;
  write_tiny_tokenizer_json(t.path() / "tokenizer.json");
  const auto tok = BartTokenizer::load(t.path());
  for (const auto& colour : synthetic_vqa_colours()) {
    EXPECT_EQ(tok.encode(colour, false).size(), 1U) << colour;
  }
  const VqaDataset ds = load_vqa_folder(a.path());
  for (const auto& s : ds.samples) {
    EXPECT_LE(tok.encode(s.question).size(), 16U) << s.question;
    EXPECT_EQ(tok.decode(tok.encode(s.answer)), s.answer);
  }
}

TEST(VqaDataset, ChosenFallbackAndCustomDomainField) {
  TempDir dir;
  make_folder(dir.path(),
              "{\"file_name\": \"a.png\", \"question\": \"Q1\", \"chosen\": \"C1\", "
              "\"rejected\": \"R1\", \"origin_dataset\": \"ds2\", \"source\": 5}\r\n"
              "\n"
              "{\"file_name\": \"sub/b.png\", \"question\": \"Q2\", \"answer\": \"A2\", "
              "\"chosen\": \"C2\", \"origin_dataset\": \"ds1\", \"source\": \"web\"}\n");
  const VqaDataset ds = load_vqa_folder(dir.path());
  ASSERT_EQ(ds.size(), 2U);
  EXPECT_EQ(ds.samples[0].answer, "C1"); // only "chosen"
  EXPECT_EQ(ds.samples[1].answer, "A2"); // "answer" wins over "chosen"
  EXPECT_EQ(ds.samples[1].image_file, "sub/b.png");
  EXPECT_EQ(ds.domains, (std::vector<std::string>{"ds1", "ds2"}));
  EXPECT_EQ(ds.domain_ids(), (std::vector<int64_t>{1, 0}));

  const VqaDataset by_source = load_vqa_folder(dir.path(), "source");
  EXPECT_EQ(by_source.domains, (std::vector<std::string>{"5", "web"}));
  const VqaDataset single = load_vqa_folder(dir.path(), "");
  EXPECT_EQ(single.domains, (std::vector<std::string>{"default"}));
  EXPECT_EQ(single.domain_ids(), (std::vector<int64_t>{0, 0}));
}

// Invalid UTF-8 in a string used to end in a raw nlohmann exception (thrown again when the
// message, quoting the bad byte, was written to run.json). Now: file, line, plain text.
TEST(VqaDataset, InvalidUtf8NamesFileAndLineInPlainText) {
  TempDir dir;
  make_folder(dir.path(),
              "{\"file_name\": \"a.png\", \"question\": \"q\", \"answer\": \"a\", \"origin_dataset\": \"d\"}\n"
              "{\"file_name\": \"a.png\", \"question\": \"caf\xE9?\", \"answer\": \"a\", \"origin_dataset\": \"d\"}\n");
  const std::string m = error_of([&] { (void)load_vqa_folder(dir.path()); });
  EXPECT_NE(m.find("metadata.jsonl:2: malformed JSON"), std::string::npos) << m;
  EXPECT_NE(m.find("ill-formed UTF-8"), std::string::npos) << m;
  EXPECT_NE(m.find("\\xE9"), std::string::npos) << m; // the bad byte, escaped
  EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
  EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) << m;
}

TEST(VqaDataset, ErrorsNameFileAndLine) {
  const std::string good =
      "{\"file_name\": \"a.png\", \"question\": \"q\", \"answer\": \"a\", "
      "\"origin_dataset\": \"d\"}\n";
  const auto load_with = [&](const std::string& metadata) {
    TempDir dir;
    make_folder(dir.path(), metadata);
    return error_of([&] { (void)load_vqa_folder(dir.path()); });
  };
  const auto expect_has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nwanted: " << part;
  };

  // Missing folder / metadata.jsonl.
  TempDir empty;
  std::string m = error_of([&] { (void)load_vqa_folder(empty.path() / "nope"); });
  expect_has(m, "nope: VQA folder not found");
  m = error_of([&] { (void)load_vqa_folder(empty.path()); });
  expect_has(m, "metadata.jsonl: missing; expected a Hugging Face ImageFolder layout");
  expect_has(m, "scripts/export_rlaif_v.py");

  m = load_with(good + "{\"file_name\": \"a.png\", \"question\": \n");
  expect_has(m, "metadata.jsonl:2: malformed JSON");
  m = load_with(good + "[1, 2]\n");
  expect_has(m, "metadata.jsonl:2: expected a JSON object, got array");
  m = load_with(good + good +
                "{\"file_name\": \"a.png\", \"answer\": \"a\", \"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:3: missing field \"question\"");
  m = load_with("{\"question\": \"q\", \"answer\": \"a\", \"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:1: missing field \"file_name\"");
  m = load_with("{\"file_name\": \"a.png\", \"question\": \"q\", \"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:1: missing field \"answer\" (or \"chosen\")");
  m = load_with("{\"file_name\": \"a.png\", \"question\": \"q\", \"answer\": \"a\"}\n");
  expect_has(m, "metadata.jsonl:1: missing domain field \"origin_dataset\"");
  m = load_with("{\"file_name\": \"a.png\", \"question\": 3, \"answer\": \"a\", "
                "\"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:1: field \"question\" must be a string, got number");
  m = load_with(good + "\n" +
                "{\"file_name\": \"gone.png\", \"question\": \"q\", \"answer\": \"a\", "
                "\"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:3: image file \"gone.png\" does not exist");
  m = load_with("{\"file_name\": \"../a.png\", \"question\": \"q\", \"answer\": \"a\", "
                "\"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:1: file_name \"../a.png\" must be a relative path");
  m = load_with("{\"file_name\": \"/etc/passwd\", \"question\": \"q\", \"answer\": \"a\", "
                "\"origin_dataset\": \"d\"}\n");
  expect_has(m, "metadata.jsonl:1: file_name \"/etc/passwd\" must be a relative path");
  m = load_with("\n  \n");
  expect_has(m, "metadata.jsonl: no samples");

  TempDir gen;
  m = error_of([&] { write_synthetic_vqa_folder(gen.path(), 0, {"a"}, 1); });
  expect_has(m, "samples_per_domain");
  m = error_of([&] { write_synthetic_vqa_folder(gen.path(), 1, {"a", "a"}, 1); });
  expect_has(m, "duplicate domain");
}

} // namespace
} // namespace fedvlm
