// tests/model/clip_tokenizer_test.cpp — CLIP tokenizer vs a Python reference; context 77; bad files.
#include "model/clip_tiny_tokenizer.hpp"
#include "model/clip_tokenizer.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kReference = FEDVLM_SOURCE_DIR "/tests/fixtures/clip_tokenizer_reference.py";

// The message of the runtime_error `f` throws ("" and a failure when it throws nothing).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected std::runtime_error";
  return {};
}

// The tiny tokenizer as tokenizer.json in `dir`.
ClipTokenizer tiny(const TempDir& dir) {
  write_tiny_clip_tokenizer_json(dir / "tokenizer.json");
  return ClipTokenizer::load(dir.path());
}

// The tiny tokenizer rewritten as vocab.json + merges.txt (with CLIP's "#version" header) in
// `dir`; merges.txt gets `extra_merge_lines` appended.
void write_tiny_vocab_merges(const TempDir& tmp, const fs::path& dir,
                             const std::string& extra_merge_lines = "") {
  fs::create_directories(dir);
  write_tiny_clip_tokenizer_json(tmp / "tiny.json");
  const json j = json::parse(read_text_file(tmp / "tiny.json"));
  write_text_file(dir / "vocab.json", j["model"]["vocab"].dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& m : j["model"]["merges"]) merges += m.get<std::string>() + "\n";
  write_text_file(dir / "merges.txt", merges + extra_merge_lines);
}

// -- the tiny Fashion-MNIST tokenizer ---------------------------------------------------------

TEST(ClipTokenizer, TinyTokenizerHasClipsLayoutAndOneTokenPerCaptionWord) {
  TempDir dir;
  const ClipTokenizer tok = tiny(dir);
  EXPECT_EQ(tiny_clip_vocab_size(), 565);
  EXPECT_EQ(tok.vocab_size(), 565);
  EXPECT_EQ(tok.token_id("!"), 0);
  EXPECT_EQ(tok.token_id("a"), 64);
  EXPECT_EQ(tok.token_id("a</w>"), 320);
  EXPECT_EQ(tok.token_id(".</w>"), 269);
  EXPECT_EQ(tok.token_id("photo</w>"), 515); // the first word's chain: p h, ph o, pho t, phot o</w>
  EXPECT_EQ(tok.bos_id(), 563);
  EXPECT_EQ(tok.eos_id(), 564);
  EXPECT_EQ(tok.pad_id(), tok.eos_id());

  const Ids dress = tok.encode("a photo of a dress.");
  const Ids want = {tok.bos_id(),  320, tok.token_id("photo</w>"), tok.token_id("of</w>"), 320,
                    tok.token_id("dress</w>"), 269, tok.eos_id()};
  EXPECT_EQ(dress, want);

  ASSERT_EQ(fashion_mnist_class_names().size(), 10u);
  for (const auto& name : fashion_mnist_class_names()) {
    const Ids ids = tok.encode("a photo of a " + name + ".", false);
    // "a photo of a" + one token per word and per "-" "/" + ".".
    std::size_t words = 1;
    for (const char c : name) words += (c == ' ') ? 1 : (c == '-' || c == '/') ? 2 : 0;
    EXPECT_EQ(ids.size(), 4 + words + 1) << name;
    const std::string spaced = name == "t-shirt/top" ? "t - shirt / top" : name;
    EXPECT_EQ(tok.decode(ids), "a photo of a " + spaced + " .");
  }
}

// -- cleaning -----------------------------------------------------------------------------------

TEST(ClipTokenizer, CleanTextStripsCollapsesAndLowerCasesLikePython) {
  EXPECT_EQ(ClipTokenizer::clean_text("  A  Photo\tOF\r\n\n a\x0b\x0c" "DOG  "),
            "a photo of a dog");
  // Python's str.isspace also covers U+001C..U+001F, NEL, NBSP and U+3000.
  EXPECT_EQ(ClipTokenizer::clean_text("x\x1c\xc2\x85y\xc2\xa0z\xe3\x80\x80w"), "x y z w");
  EXPECT_EQ(ClipTokenizer::clean_text("\t\n "), "");
  // Full lower-casing: U+0130 becomes two code points; the capital sigma is final at a word end.
  EXPECT_EQ(ClipTokenizer::clean_text("\xC4\xB0stanbul"), "i\xCC\x87stanbul");
  EXPECT_EQ(ClipTokenizer::clean_text("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3"),
            "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCF\x83"); // ΟΔΟΣ Σ -> οδος σ
  EXPECT_EQ(ClipTokenizer::clean_text("\xC3\x9C" "BER Stra\xC3\x9F" "e"),
            "\xC3\xBC" "ber stra\xC3\x9F" "e"); // ÜBER Straße -> über straße
  // Invalid UTF-8 becomes U+FFFD; HTML entities are not unescaped.
  EXPECT_EQ(ClipTokenizer::clean_text("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(ClipTokenizer::clean_text("Fish &amp; Chips"), "fish &amp; chips");
}

TEST(ClipTokenizer, PiecesFollowClipsRegexAndEndInEndOfWord) {
  TempDir dir;
  const ClipTokenizer tok = tiny(dir);
  const auto sym = [&](const std::string& t) { return tok.token_id(t); };
  const auto eow = [&](const std::string& t) { return tok.token_id(t + "</w>"); };
  // Contractions split off, one digit a piece, punctuation runs stay together; only the last
  // symbol of each piece carries </w>.
  EXPECT_EQ(tok.encode("IT'S 42?!", false),
            (Ids{sym("i"), eow("t"), sym("'"), eow("s"), eow("4"), eow("2"), sym("?"), eow("!")}));
  // Non-ASCII letters are byte-level symbols: "é" is the two bytes C3 A9 ("Ã" "©").
  EXPECT_EQ(tok.encode("\xC3\x89", false), (Ids{sym("\xC3\x83"), eow("\xC2\xA9")}));
  // Special tokens in the text (any case, after lower-casing) are the special ids...
  EXPECT_EQ(tok.encode("a<|ENDOFTEXT|>B", false), (Ids{320, tok.eos_id(), eow("b")}));
  EXPECT_EQ(tok.encode("<|startoftext|>", false), (Ids{tok.bos_id()}));
  // ...but not when the punctuation branch has already swallowed their "<|".
  const Ids not_special = tok.encode("<<|endoftext|>", false);
  EXPECT_EQ(std::count(not_special.begin(), not_special.end(), tok.eos_id()), 0);
  EXPECT_EQ(not_special.front(), sym("<"));
}

// -- context 77 ---------------------------------------------------------------------------------

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ClipTokenizer, EncodeContextPadsShortTexts) {
  TempDir dir;
  const ClipTokenizer tok = tiny(dir);
  const Ids plain = tok.encode("a photo of a bag.");
  ASSERT_EQ(plain.size(), 8u);
  const auto e = tok.encode_context("a photo of a bag.");
  ASSERT_EQ(e.ids.size(), 77u);
  ASSERT_EQ(e.attention_mask.size(), 77u);
  EXPECT_FALSE(e.truncated);
  EXPECT_EQ(Ids(e.ids.begin(), e.ids.begin() + 8), plain);
  for (std::size_t i = 8; i < 77; ++i) EXPECT_EQ(e.ids[i], tok.pad_id()) << i;
  EXPECT_EQ(std::count(e.attention_mask.begin(), e.attention_mask.end(), 1), 8);
  EXPECT_EQ(e.attention_mask[7], 1);
  EXPECT_EQ(e.attention_mask[8], 0);
  // Pad is <|endoftext|> here: the pooling position is still the first one, as argmax finds.
  EXPECT_EQ(e.eot_position, 7);
  EXPECT_EQ(std::max_element(e.ids.begin(), e.ids.end()) - e.ids.begin(), 7);
  EXPECT_EQ(tok.eot_position(e.ids), 7);
}

TEST(ClipTokenizer, EncodeContextTruncatesKeepingEndOfText) {
  TempDir dir;
  const ClipTokenizer tok = tiny(dir);
  const auto fits = tok.encode_context(repeat("a ", 75)); // 75 + 2 = 77 tokens
  EXPECT_FALSE(fits.truncated);
  EXPECT_EQ(fits.ids.back(), tok.eos_id());
  EXPECT_EQ(fits.eot_position, 76);

  const auto cut = tok.encode_context(repeat("a ", 100)); // 102 tokens
  EXPECT_TRUE(cut.truncated);
  ASSERT_EQ(cut.ids.size(), 77u);
  EXPECT_EQ(cut.ids.front(), tok.bos_id());
  for (std::size_t i = 1; i < 76; ++i) EXPECT_EQ(cut.ids[i], 320) << i;
  EXPECT_EQ(cut.ids[76], tok.eos_id());
  EXPECT_EQ(cut.eot_position, 76);
  EXPECT_EQ(std::count(cut.attention_mask.begin(), cut.attention_mask.end(), 1), 77);

  const auto two = tok.encode_context("a photo", 2);
  EXPECT_EQ(two.ids, (Ids{tok.bos_id(), tok.eos_id()}));
  EXPECT_TRUE(two.truncated);
  EXPECT_THROW((void)tok.encode_context("a", 1), std::invalid_argument);
}

TEST(ClipTokenizer, PadTokenComesFromTheFiles) {
  TempDir dir;
  write_tiny_clip_tokenizer_json(dir / "tokenizer.json");
  // special_tokens_map.json beside tokenizer.json ('!' is id 0, as OpenAI's zero padding).
  write_text_file(dir / "special_tokens_map.json", R"({"pad_token": {"content": "!"}})");
  const ClipTokenizer bang = ClipTokenizer::load(dir.path());
  EXPECT_EQ(bang.pad_id(), 0);
  const auto e = bang.encode_context("a bag");
  EXPECT_EQ(e.ids[4], 0);
  EXPECT_EQ(e.eot_position, 3);
  EXPECT_EQ(std::max_element(e.ids.begin(), e.ids.end()) - e.ids.begin(), 3); // OpenAI's argmax

  // tokenizer.json's own "padding" wins over the map.
  json j = json::parse(read_text_file(dir / "tokenizer.json"));
  j["padding"] = {{"pad_id", 5}, {"pad_token", "&"}, {"strategy", "BatchLongest"}};
  write_text_file(dir / "tokenizer.json", j.dump());
  EXPECT_EQ(ClipTokenizer::load(dir.path()).pad_id(), 5);

  j["padding"] = nullptr;
  write_text_file(dir / "tokenizer.json", j.dump());
  write_text_file(dir / "special_tokens_map.json", R"({"pad_token": "<|pad|>"})");
  const std::string msg = error_of([&] { (void)ClipTokenizer::load(dir.path()); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'<|pad|>'"), std::string::npos) << msg;
}

// -- decode -------------------------------------------------------------------------------------

TEST(ClipTokenizer, DecodeTurnsEndOfWordIntoSpaces) {
  TempDir dir;
  const ClipTokenizer tok = tiny(dir);
  const Ids ids = tok.encode("A photo of a T-shirt/top.");
  EXPECT_EQ(tok.decode(ids), "a photo of a t - shirt / top .");
  EXPECT_EQ(tok.decode(ids, false),
            "<|startoftext|>a photo of a t - shirt / top . <|endoftext|>");
  EXPECT_EQ(tok.decode(tok.encode("Caf\xC3\xA9  \xE4\xB8\xAD\xE6\x96\x87!")),
            "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 !");
  EXPECT_THROW((void)tok.decode({-1}), std::out_of_range);
  EXPECT_THROW((void)tok.decode({tok.vocab_size()}), std::out_of_range);
  EXPECT_EQ(tok.id_to_token(320), "a</w>");
  EXPECT_THROW((void)tok.token_id("nope"), std::out_of_range);
}

// -- bad files ----------------------------------------------------------------------------------

TEST(ClipTokenizer, BadFilesNameTheFileAndTheProblem) {
  TempDir tmp;
  const auto expect_error = [](const fs::path& what, const std::vector<std::string>& parts) {
    const std::string msg = error_of([&] { (void)ClipTokenizer::load(what); });
    for (const auto& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in: " << msg;
    }
  };
  expect_error(tmp / "absent", {(tmp / "absent").string(), "not found"});

  const fs::path bad_json = tmp / "bad.json";
  write_text_file(bad_json, "{\"model\": [1, 2");
  expect_error(bad_json, {bad_json.string(), "malformed JSON"});

  write_tiny_clip_tokenizer_json(tmp / "tiny.json");
  const json good = json::parse(read_text_file(tmp / "tiny.json"));
  const auto write_variant = [&](const std::string& name, const json& j) {
    const fs::path f = tmp / name;
    write_text_file(f, j.dump());
    return f;
  };

  json no_eot = good;
  no_eot["model"]["vocab"].erase("<|endoftext|>");
  no_eot["added_tokens"].erase(1);
  expect_error(write_variant("no_eot.json", no_eot), {"no_eot.json", "'<|endoftext|>'"});

  json no_byte = good;
  no_byte["model"]["vocab"].erase("\xC4\x80</w>"); // byte 0's symbol "Ā" + </w>
  expect_error(write_variant("no_byte.json", no_byte), {"no_byte.json", "byte 0 with </w>"});

  json gpt2 = good;
  gpt2["model"]["end_of_word_suffix"] = "";
  expect_error(write_variant("gpt2.json", gpt2), {"gpt2.json", "end_of_word_suffix"});

  json bad_merge = good;
  bad_merge["model"]["merges"][3] = "a b c";
  expect_error(write_variant("bad_merge.json", bad_merge), {"bad_merge.json", "model.merges[3]"});

  // vocab.json + merges.txt: errors name merges.txt and the line (line 1 is the header).
  const std::size_t n_merges = good["model"]["merges"].size();
  const std::string bad_line = std::to_string(n_merges + 2);
  write_tiny_vocab_merges(tmp, tmp / "three", "p h o\n");
  expect_error(tmp / "three",
               {(tmp / "three" / "merges.txt").string() + ":" + bad_line + ":", "not two tokens"});
  write_tiny_vocab_merges(tmp, tmp / "unknown", "zq x\n");
  expect_error(tmp / "unknown", {"merges.txt:" + bad_line + ":", "'zq' is not in the vocabulary"});
  write_tiny_vocab_merges(tmp, tmp / "unmerged", "x y\n");
  expect_error(tmp / "unmerged", {"merges.txt:" + bad_line + ":", "merged token 'xy'"});
  fs::create_directories(tmp / "only_vocab");
  write_text_file(tmp / "only_vocab" / "vocab.json", "{}");
  expect_error(tmp / "only_vocab", {"merges.txt", "missing"});

  // The same files without the bad line load, and agree with the tokenizer.json form.
  write_tiny_vocab_merges(tmp, tmp / "ok");
  const ClipTokenizer slow = ClipTokenizer::load(tmp / "ok");
  const ClipTokenizer fast = ClipTokenizer::load(tmp / "tiny.json");
  EXPECT_EQ(slow.encode("a photo of a sneaker."), fast.encode("a photo of a sneaker."));
  EXPECT_EQ(slow.encode("a photo of a sneaker.").size(), 8u);
}

// -- cross-check against the independent Python reference --------------------------------------

struct Case {
  std::string text;
  Ids ids;
  Ids ids77;
};

std::vector<Case> read_cases(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    cases.push_back({j.at("text").get<std::string>(), j.at("ids").get<Ids>(),
                     j.at("ids77").get<Ids>()});
  }
  return cases;
}

std::string ids_text(const Ids& ids) {
  std::string s;
  for (const auto id : ids) s += std::to_string(id) + " ";
  return s;
}

// Strings whose ids from `tok` differ from the reference's.
std::size_t mismatches(const ClipTokenizer& tok, const std::vector<Case>& cases,
                       const char* label, std::size_t report = 0) {
  std::size_t bad = 0;
  for (const auto& c : cases) {
    const Ids got = tok.encode(c.text);
    if (got == c.ids) continue;
    if (++bad <= report) {
      ADD_FAILURE() << label << ": " << json(c.text).dump() << "\n  cleaned "
                    << json(ClipTokenizer::clean_text(c.text)).dump() << "\n  c++ "
                    << ids_text(got) << "\n  ref " << ids_text(c.ids);
    }
  }
  return bad;
}

// Strings whose encode_context() differs from the reference's clip.tokenize(truncate=True).
std::size_t context_mismatches(const ClipTokenizer& tok, const std::vector<Case>& cases) {
  std::size_t bad = 0;
  for (const auto& c : cases) {
    const auto e = tok.encode_context(c.text);
    if (e.ids != c.ids77 && ++bad <= 3) {
      ADD_FAILURE() << "context 77: " << json(c.text).dump() << "\n  c++ " << ids_text(e.ids)
                    << "\n  ref " << ids_text(c.ids77);
    }
  }
  return bad;
}

TEST(ClipTokenizerCrossCheck, MatchesAnIndependentPythonReferenceOnThousandsOfStrings) {
  if (::access(kPython, X_OK) != 0) {
    GTEST_SKIP() << kPython << " is missing: cannot run tests/fixtures/clip_tokenizer_reference.py";
  }
  TempDir dir("fedvlm-clip-ref");
  const std::string cmd = std::string(kPython) + " " + kReference + " fixture " +
                          dir.path().string() + " 4000";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::vector<Case> cases = read_cases(dir / "cases.jsonl");
  ASSERT_EQ(cases.size(), 4000u);

  // The reference wrote the same learned vocabulary both ways: tokenizer.json with [a, b]
  // merges, and vocab.json + merges.txt ("#version" header, "a b" lines).
  const ClipTokenizer fast = ClipTokenizer::load(dir / "tokenizer.json");
  fs::create_directories(dir / "slow");
  fs::copy_file(dir / "vocab.json", dir / "slow" / "vocab.json");
  fs::copy_file(dir / "merges.txt", dir / "slow" / "merges.txt");
  const ClipTokenizer slow = ClipTokenizer::load(dir / "slow");
  ASSERT_GT(fast.vocab_size(), 900); // 512 byte symbols + ~500 learned merges + 2

  EXPECT_EQ(mismatches(fast, cases, "tokenizer.json", 5), 0u);
  EXPECT_EQ(mismatches(slow, cases, "vocab.json + merges.txt", 5), 0u);
  EXPECT_EQ(context_mismatches(fast, cases), 0u);
  std::size_t truncated = 0, non_ascii = 0, tokens = 0;
  for (const auto& c : cases) {
    truncated += c.ids.size() > 77 ? 1 : 0;
    tokens += c.ids.size();
    for (const char ch : c.text) {
      if (static_cast<unsigned char>(ch) >= 0x80) {
        ++non_ascii;
        break;
      }
    }
  }
  // The corpus must exercise what it claims to: long texts and non-ASCII text.
  EXPECT_GT(truncated, 100u);
  EXPECT_GT(non_ascii, 1000u);
  std::cout << "[ cross-check ] " << cases.size() << " strings (" << non_ascii << " non-ASCII, "
            << truncated << " over 77 tokens, " << tokens << " reference tokens), vocab "
            << fast.vocab_size() << "\n";

  // Negative controls: the same check must notice a tokenizer that differs from the reference.
  // (1) The merges in reverse order.
  const std::string merges = read_text_file(dir / "merges.txt");
  std::vector<std::string> lines;
  for (std::size_t p = 0; p < merges.size();) {
    const auto nl = merges.find('\n', p);
    lines.push_back(merges.substr(p, nl - p));
    p = nl + 1;
  }
  ASSERT_GT(lines.size(), 400u);
  std::string reversed = lines[0] + "\n";
  for (std::size_t i = lines.size() - 1; i >= 1; --i) reversed += lines[i] + "\n";
  fs::create_directories(dir / "reversed");
  fs::copy_file(dir / "vocab.json", dir / "reversed" / "vocab.json");
  write_text_file(dir / "reversed" / "merges.txt", reversed);
  const std::size_t bad_reversed = mismatches(ClipTokenizer::load(dir / "reversed"), cases, "");
  EXPECT_GT(bad_reversed, cases.size() / 4);
  // (2) Only the first merge left out: a small change that still shows.
  std::string dropped = lines[0] + "\n";
  for (std::size_t i = 2; i < lines.size(); ++i) dropped += lines[i] + "\n";
  fs::create_directories(dir / "dropped");
  fs::copy_file(dir / "vocab.json", dir / "dropped" / "vocab.json");
  write_text_file(dir / "dropped" / "merges.txt", dropped);
  const std::size_t bad_dropped = mismatches(ClipTokenizer::load(dir / "dropped"), cases, "");
  EXPECT_GT(bad_dropped, 0u);
  std::cout << "[ cross-check ] negative controls: reversed merges differ on " << bad_reversed
            << " strings, the first merge left out on " << bad_dropped << "\n";
}

// CLIP's own vocabulary, when OpenAI's clip/bpe_simple_vocab_16e6.txt.gz (1.3 MB, not in the
// repository) is at hand — FEDVLM_CLIP_BPE_GZ, else ../shared/datasets/clip beside the
// repository: the reference builds vocab.json + merges.txt from it as SimpleTokenizer does, and
// the known ids of HF's CLIP documentation must come out.
TEST(ClipTokenizerCrossCheck, MatchesTheReferenceOnClipsOwnVocabularyWhenAvailable) {
  const char* env = std::getenv("FEDVLM_CLIP_BPE_GZ");
  const std::string gz = env != nullptr && *env != '\0'
                             ? std::string(env)
                             : std::string(FEDVLM_SOURCE_DIR "/../shared/datasets/clip/bpe_simple_vocab_16e6.txt.gz");
  if (!fs::is_regular_file(gz)) {
    GTEST_SKIP() << gz << " is absent: set FEDVLM_CLIP_BPE_GZ to OpenAI's clip/bpe_simple_vocab_16e6.txt.gz to "
                    "cross-check CLIP's real 49408-token vocabulary";
  }
  if (::access(kPython, X_OK) != 0) {
    GTEST_SKIP() << kPython << " is missing: cannot run tests/fixtures/clip_tokenizer_reference.py";
  }
  TempDir dir("fedvlm-clip-openai");
  const std::string cmd = std::string(kPython) + " " + kReference + " openai '" + gz + "' " +
                          dir.path().string() + " 4000";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const ClipTokenizer tok = ClipTokenizer::load(dir.path());
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  EXPECT_EQ(tok.encode("a photo of a cat"), (Ids{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(tok.encode("A photo of a dog"), (Ids{49406, 320, 1125, 539, 320, 1929, 49407}));
  const std::vector<Case> cases = read_cases(dir / "cases.jsonl");
  ASSERT_EQ(cases.size(), 4000u);
  EXPECT_EQ(mismatches(tok, cases, "CLIP vocabulary", 5), 0u);
  EXPECT_EQ(context_mismatches(tok, cases), 0u);
  // Not vacuous: the real vocabulary's long merges ran (many multi-letter tokens, ids far past
  // the 512 byte symbols) on strings of every kind.
  std::size_t tokens = 0, merged = 0, non_ascii = 0, long_texts = 0;
  for (const auto& c : cases) {
    for (const int64_t id : c.ids) {
      ++tokens;
      merged += id >= 512 && id < 49406 ? 1 : 0;
    }
    long_texts += c.ids.size() > 77 ? 1 : 0;
    non_ascii += std::any_of(c.text.begin(), c.text.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; });
  }
  EXPECT_GT(merged, tokens / 4);
  EXPECT_GT(non_ascii, 1000u);
  EXPECT_GT(long_texts, 100u);
  // Negative control: the same check notices one merge left out of 48,894.
  const std::string merges = read_text_file(dir / "merges.txt");
  const auto first = merges.find('\n') + 1;                 // after "#version"
  const auto second = merges.find('\n', first) + 1;         // drop the top-ranked merge ("i n")
  fs::create_directories(dir / "dropped");
  fs::copy_file(dir / "vocab.json", dir / "dropped" / "vocab.json");
  write_text_file(dir / "dropped" / "merges.txt", merges.substr(0, first) + merges.substr(second));
  EXPECT_GT(mismatches(ClipTokenizer::load(dir / "dropped"), cases, ""), 100u);
  std::cout << "[ cross-check ] CLIP vocabulary: " << cases.size() << " strings, " << tokens << " tokens ("
            << merged << " merged), " << non_ascii << " non-ASCII, " << long_texts << " over 77 tokens\n";
}

} // namespace
} // namespace fedvlm
