// tests/model/bart_tokenizer_test.cpp — byte-level BPE on small hand-built tokenizers, checked by hand.
#include "model/bart_tokenizer.hpp"
#include "model/florence2_tokens.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using Merges = std::vector<std::pair<std::string, std::string>>;

// GPT-2's bytes_to_unicode written out independently of the implementation under test.
std::string byte_symbol(int b) {
  uint32_t cp = static_cast<uint32_t>(b);
  const auto printable = [](int x) {
    return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  };
  if (!printable(b)) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += printable(x) ? 0 : 1;
    cp = 256 + static_cast<uint32_t>(n);
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Ids: <s> <pad> </s> <unk> = 0..3, byte b = 4 + b, then one id per merge from 260.
constexpr int64_t B(unsigned char c) { return 4 + c; }

struct AddedSpec {
  std::string content;
  int64_t id;
  bool special;
  bool lstrip;
};

using fedvlm::testing::TempDir;

void write_text(const fs::path& f, const std::string& s) {
  std::ofstream out(f, std::ios::binary);
  out << s;
}

json base_vocab(const Merges& merges) {
  json vocab = json::object();
  vocab["<s>"] = 0;
  vocab["<pad>"] = 1;
  vocab["</s>"] = 2;
  vocab["<unk>"] = 3;
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = 4 + b;
  int64_t next = 260;
  for (const auto& [a, b] : merges) vocab[a + b] = next++;
  return vocab;
}

std::vector<AddedSpec> default_added(const std::vector<AddedSpec>& extra) {
  std::vector<AddedSpec> a{{"<s>", 0, true, false},
                           {"<pad>", 1, true, false},
                           {"</s>", 2, true, false},
                           {"<unk>", 3, true, false}};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Writes a tokenizer.json; merges as "a b" strings or, with pair_merges, as [a, b] arrays.
fs::path write_tokenizer_json(const fs::path& dir, const Merges& merges,
                              const std::vector<AddedSpec>& extra_added = {},
                              bool pair_merges = false) {
  json vocab = base_vocab(merges);
  json added = json::array();
  for (const auto& t : default_added(extra_added)) {
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"single_word", false},
                     {"lstrip", t.lstrip},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", t.special}});
  }
  json m = json::array();
  for (const auto& [a, b] : merges) {
    if (pair_merges) {
      m.push_back(json::array({a, b}));
    } else {
      m.push_back(a + " " + b);
    }
  }
  const json j = {{"version", "1.0"},
                  {"added_tokens", added},
                  {"normalizer", nullptr},
                  {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                  {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}}};
  const fs::path f = dir / "tokenizer.json";
  write_text(f, j.dump(1));
  return f;
}

// The merges used by most tests; ids 260.. in this order.
const Merges& hello_merges() {
  static const Merges m = {
      {"l", "l"},        // 260
      {"e", "ll"},       // 261
      {"H", "ell"},      // 262
      {"Hell", "o"},     // 263
      {"Ġ", "w"},        // 264
      {"o", "r"},        // 265
      {"Ġw", "or"},      // 266
      {"Ġ", "Ġ"},        // 267
      {"Ċ", "Ċ"},        // 268
      {"\xC3\x83", "\xC2\xA9"}, // 269  "Ã©" = the bytes of é
      {"1", "2"},        // 270
  };
  return m;
}

const std::vector<AddedSpec>& hello_added() {
  static const std::vector<AddedSpec> a = {
      {"<mask>", 271, true, true},     // lstrip, like BART's <mask>
      {"<od>", 272, true, false},
      {"<loc_5>", 273, true, false},
      {"<loc_12>", 274, true, false},
      {"ab", 275, false, false},       // non-special, for longest-match checks
      {"abc", 276, false, false},
  };
  return a;
}

BartTokenizer hello_tokenizer(const TempDir& dir) {
  return BartTokenizer::load(write_tokenizer_json(dir.path(), hello_merges(), hello_added()));
}

TEST(BartTokenizer, ByteSymbolsAndSpecialIds) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  EXPECT_EQ(tok.token_id("Ġ"), B(' '));
  EXPECT_EQ(tok.token_id("Ċ"), B('\n'));
  EXPECT_EQ(tok.token_id("A"), B('A'));
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.pad_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.vocab_size(), 277);
  EXPECT_EQ(tok.id_to_token(263), "Hello");
  EXPECT_TRUE(tok.has_token("<loc_5>"));
  EXPECT_FALSE(tok.has_token("<loc_6>"));
  EXPECT_THROW((void)tok.token_id("<loc_6>"), std::out_of_range);
}

TEST(BartTokenizer, HelloWorldByHand) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  // "Hello" fully merged; " world" → "Ġwor" then the unmerged bytes l, d.
  EXPECT_EQ(tok.encode("Hello world"), (Ids{0, 263, 266, B('l'), B('d'), 2}));
  EXPECT_EQ(tok.encode("Hello world", false), (Ids{263, 266, B('l'), B('d')}));
  // No leading space → "world" has no "Ġw" merge, "o r" still applies.
  EXPECT_EQ(tok.encode("world", false), (Ids{B('w'), 265, B('l'), B('d')}));
  EXPECT_EQ(tok.encode("", true), (Ids{0, 2}));
  EXPECT_EQ(tok.encode("", false), Ids{});
}

TEST(BartTokenizer, MergeRankOrderDecides) {
  TempDir dir;
  // "b c" ranks before "a b": "abc" → a, bc even though "a b" comes first in the text.
  const auto tok =
      BartTokenizer::load(write_tokenizer_json(dir.path(), {{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(tok.encode("abc", false), (Ids{B('a'), 260}));
  EXPECT_EQ(tok.encode("abd", false), (Ids{261, B('d')}));
  // Repeated pairs merge left to right without overlap.
  const TempDir dir2;
  const auto tok2 = BartTokenizer::load(write_tokenizer_json(dir2.path(), {{"a", "a"}}));
  EXPECT_EQ(tok2.encode("aaa", false), (Ids{260, B('a')}));
  EXPECT_EQ(tok2.encode("aaaa", false), (Ids{260, 260}));
}

TEST(BartTokenizer, DigitsAndPunctuation) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  // " 123" is one piece: Ġ, "12" merged, 3.
  EXPECT_EQ(tok.encode("x 123", false), (Ids{B('x'), B(' '), 270, B('3')}));
  // Letters and digits are separate pieces: "x1" "2" would be wrong, "12" must merge.
  EXPECT_EQ(tok.encode("x12y", false), (Ids{B('x'), 270, B('y')}));
  // Punctuation runs are one piece; with no merges each byte is a token.
  EXPECT_EQ(tok.encode("Hi!! ok?", false),
            (Ids{B('H'), B('i'), B('!'), B('!'), B(' '), B('o'), B('k'), B('?')}));
  // Contractions split off: "don" "'t".
  EXPECT_EQ(tok.encode("don't", false), (Ids{B('d'), B('o'), B('n'), B('\''), B('t')}));
}

TEST(BartTokenizer, WhitespaceRuns) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  // Two spaces: " " then " b" — never "ĠĠ" (267), since \s+(?!\S) leaves the last space.
  EXPECT_EQ(tok.encode("a  b", false), (Ids{B('a'), B(' '), B(' '), B('b')}));
  // Three spaces: "  " (→ ĠĠ) then " b".
  EXPECT_EQ(tok.encode("a   b", false), (Ids{B('a'), 267, B(' '), B('b')}));
  // Trailing whitespace is one piece.
  EXPECT_EQ(tok.encode("a  ", false), (Ids{B('a'), 267}));
  // "\n\n" before a letter splits into "\n" "\n"; at the end it stays together (ĊĊ).
  EXPECT_EQ(tok.encode("a\n\nb", false), (Ids{B('a'), B('\n'), B('\n'), B('b')}));
  EXPECT_EQ(tok.encode("a\n\n", false), (Ids{B('a'), 268}));
  // Space then newline then word: " \n" → "Ġ" piece? \s+(?!\S) takes " " (followed by \n),
  // then "\n" before 'b' is matched by \s+.
  EXPECT_EQ(tok.encode("a \nb", false), (Ids{B('a'), B(' '), B('\n'), B('b')}));
}

TEST(BartTokenizer, UnicodeBecomesByteSymbols) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  // é = C3 A9, merged by "Ã ©".
  EXPECT_EQ(tok.encode("café", false), (Ids{B('c'), B('a'), B('f'), 269}));
  // 中文 = E4 B8 AD E6 96 87: letters, one piece, six byte tokens.
  EXPECT_EQ(tok.encode("中文", false),
            (Ids{B(0xE4), B(0xB8), B(0xAD), B(0xE6), B(0x96), B(0x87)}));
  // 😀 = F0 9F 98 80 is not a letter: " 😀" is one punctuation-like piece with its space.
  EXPECT_EQ(tok.encode("a 😀", false), (Ids{B('a'), B(' '), B(0xF0), B(0x9F), B(0x98), B(0x80)}));
  // Non-breaking space U+00A0 (C2 A0) is whitespace under Unicode rules: "a" | NBSP | "b".
  EXPECT_EQ(tok.encode("a\xC2\xA0" "b", false), (Ids{B('a'), B(0xC2), B(0xA0), B('b')}));
  EXPECT_EQ(tok.decode(tok.encode("café 中文 😀")), "café 中文 😀");
}

TEST(BartTokenizer, AddedTokensAreNeverSplit) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  EXPECT_EQ(tok.encode("Hello <loc_5> world", false),
            (Ids{263, B(' '), 273, 266, B('l'), B('d')}));
  EXPECT_EQ(tok.encode("<loc_5><loc_12>", false), (Ids{273, 274}));
  EXPECT_EQ(tok.encode("x<loc_12>y"), (Ids{0, B('x'), 274, B('y'), 2}));
  // A partial tag is plain text.
  EXPECT_EQ(tok.encode("<loc_", false),
            (Ids{B('<'), B('l'), B('o'), B('c'), B('_')}));
  // Leftmost-longest: "abc" wins over "ab"; "abd" falls back to "ab".
  EXPECT_EQ(tok.encode("abcd", false), (Ids{276, B('d')}));
  EXPECT_EQ(tok.encode("abd", false), (Ids{275, B('d')}));
  // <s> typed in the text is the special token, not bytes.
  EXPECT_EQ(tok.encode("<s>Hello</s>", false), (Ids{0, 263, 2}));
  // <mask> has lstrip: the space before it is absorbed.
  EXPECT_EQ(tok.encode("Hello <mask> world", false), (Ids{263, 271, 266, B('l'), B('d')}));
}

TEST(BartTokenizer, DecodeRoundTrips) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  const std::vector<std::string> texts = {
      "Hello world",
      "  leading and trailing  ",
      "tabs\tand\nnewlines\n\n\nend\n",
      "digits 0123456789 and 3.14159, -42",
      "punctuation!?.,;:'\"()[]{}<>/\\|@#$%^&*_+=~`",
      "it's we're they've I'm you'll he'd",
      "café naïve façade Übergröße",
      "中文字符 日本語 한국어",
      "emoji 😀👍🏽 🇫🇷 family 👨‍👩‍👧",
      "mixed <loc_5> tags <od> and ab abc",
      "\r\n windows \r\n",
      "",
      " ",
      "a",
  };
  for (const auto& t : texts) {
    const bool has_special = t.find("<loc_5>") != std::string::npos;
    if (!has_special) {
      EXPECT_EQ(tok.decode(tok.encode(t), true), t) << "text: " << t;
    }
    EXPECT_EQ(tok.decode(tok.encode(t, false), false), t) << "text: " << t;
  }
}

TEST(BartTokenizer, SkipSpecialTokens) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  const Ids ids = tok.encode("Hi <od> there");
  EXPECT_EQ(tok.decode(ids, false), "<s>Hi <od> there</s>");
  EXPECT_EQ(tok.decode(ids, true), "Hi  there");
  // Non-special added tokens are kept either way.
  EXPECT_EQ(tok.decode(tok.encode("abc"), true), "abc");
  EXPECT_EQ(tok.decode({1, 1, 263, 2}, true), "Hello");
  EXPECT_THROW((void)tok.decode({9999}), std::out_of_range);
  EXPECT_THROW((void)tok.decode({-1}), std::out_of_range);
}

TEST(BartTokenizer, InvalidUtf8IsKeptOnEncodeAndReplacedOnDecode) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  const Ids ids = tok.encode("a\xFF" "b", false);
  EXPECT_EQ(ids, (Ids{B('a'), B(0xFF), B('b')}));
  EXPECT_EQ(tok.decode(ids), "a\xEF\xBF\xBD" "b");
  // A lone lead byte of é (a truncated generation) becomes U+FFFD too.
  EXPECT_EQ(tok.decode({B('x'), B(0xC3)}), "x\xEF\xBF\xBD");
}

TEST(BartTokenizer, PairMergesAndVocabMergesFilesMatch) {
  const std::vector<std::string> texts = {"Hello world", "a   b\n\n", "café 12 <loc_5>x",
                                          "Hello <mask> world", "abcd"};
  TempDir a;
  const auto from_json = hello_tokenizer(a);
  TempDir b;
  const auto from_pairs = BartTokenizer::load(
      write_tokenizer_json(b.path(), hello_merges(), hello_added(), /*pair_merges=*/true));

  TempDir c;
  write_text(c.path() / "vocab.json", base_vocab(hello_merges()).dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& [x, y] : hello_merges()) merges += x + " " + y + "\n";
  write_text(c.path() / "merges.txt", merges);
  json added = json::object();
  for (const auto& t : hello_added()) added[t.content] = t.id;
  write_text(c.path() / "added_tokens.json", added.dump());
  write_text(c.path() / "special_tokens_map.json",
             json({{"additional_special_tokens", {"<od>", "<loc_5>", "<loc_12>"}}}).dump());
  const auto from_files = BartTokenizer::load(c.path());

  for (const auto& t : texts) {
    EXPECT_EQ(from_pairs.encode(t), from_json.encode(t)) << t;
    EXPECT_EQ(from_files.encode(t), from_json.encode(t)) << t;
  }
  EXPECT_EQ(from_files.vocab_size(), from_json.vocab_size());
  EXPECT_EQ(from_files.decode(from_files.encode("x <od> y")), "x  y");
}

TEST(BartTokenizer, DirectoryPrefersTokenizerJson) {
  TempDir dir;
  write_tokenizer_json(dir.path(), hello_merges(), hello_added());
  const auto tok = BartTokenizer::load(dir.path());
  EXPECT_EQ(tok.encode("Hello", false), (Ids{263}));
}

TEST(BartTokenizer, CopiesShareNothingMutable) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  auto extended = tok;
  extended.add_special_tokens({"<new>", "<od>"});
  EXPECT_EQ(extended.token_id("<new>"), 277);
  EXPECT_EQ(extended.token_id("<od>"), 272); // already present: keeps its id
  EXPECT_EQ(extended.vocab_size(), 278);
  EXPECT_FALSE(tok.has_token("<new>"));
  EXPECT_EQ(extended.encode("a<new>b", false), (Ids{B('a'), 277, B('b')}));
  EXPECT_EQ(extended.decode({B('a'), 277, B('b')}, true), "ab");
}

TEST(BartTokenizer, ConcurrentEncodeIsSafe) {
  TempDir dir;
  const auto tok = hello_tokenizer(dir);
  const Ids expected = tok.encode("Hello world <loc_5> café 12");
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string extra = " w" + std::to_string(t * 1000 + i);
        (void)tok.encode(extra);
        if (tok.encode("Hello world <loc_5> café 12") == expected) ++ok[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 200);
}

TEST(BartTokenizer, Errors) {
  TempDir dir;
  const auto msg = [](const auto& f) -> std::string {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "<no error>";
  };
  // Malformed JSON names the file.
  write_text(dir.path() / "bad.json", "{\"model\": {\"vocab\": ");
  auto m = msg([&] { (void)BartTokenizer::load(dir.path() / "bad.json"); });
  EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
  EXPECT_NE(m.find("malformed JSON"), std::string::npos) << m;
  // Invalid UTF-8: file named, no raw byte or nlohmann tag in the message.
  write_text(dir.path() / "utf8.json", "{\"model\": {\"vocab\": {\"\xC3(\": 0}}}");
  m = msg([&] { (void)BartTokenizer::load(dir.path() / "utf8.json"); });
  EXPECT_NE(m.find("utf8.json: malformed JSON"), std::string::npos) << m;
  EXPECT_NE(m.find("ill-formed UTF-8"), std::string::npos) << m;
  EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
  EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) << m;
  // A pre_tokenizer "type" that is no string used to escape as a raw nlohmann type_error.
  write_text(dir.path() / "pretok.json",
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": {\"type\": 5}}");
  m = msg([&] { (void)BartTokenizer::load(dir.path() / "pretok.json"); });
  EXPECT_NE(m.find("pretok.json: pre_tokenizer is not ByteLevel"), std::string::npos) << m;
  // A token id near 2^31 used to size the id table to two billion strings first.
  write_text(dir.path() / "bigid.json",
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2147483000}, \"merges\": []}}");
  m = msg([&] { (void)BartTokenizer::load(dir.path() / "bigid.json"); });
  EXPECT_NE(m.find("bigid.json: token 'a' has invalid id 2147483000; expected 0 to 4194303"), std::string::npos) << m;
  // Not a tokenizer.json.
  write_text(dir.path() / "other.json", "{\"a\": 1}");
  m = msg([&] { (void)BartTokenizer::load(dir.path() / "other.json"); });
  EXPECT_NE(m.find("\"model\""), std::string::npos) << m;
  // Missing file.
  m = msg([&] { (void)BartTokenizer::load(dir.path() / "nope.json"); });
  EXPECT_NE(m.find("nope.json: not found"), std::string::npos) << m;
  // vocab.json without merges.txt.
  TempDir d2;
  write_text(d2.path() / "vocab.json", base_vocab({}).dump());
  m = msg([&] { (void)BartTokenizer::load(d2.path()); });
  EXPECT_NE(m.find("merges.txt: missing"), std::string::npos) << m;
  // Empty directory.
  TempDir d3;
  m = msg([&] { (void)BartTokenizer::load(d3.path()); });
  EXPECT_NE(m.find("no tokenizer.json and no vocab.json"), std::string::npos) << m;
  // A merge whose result is not in the vocabulary.
  TempDir d4;
  {
    json vocab = base_vocab({});
    const json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}}};
    write_text(d4.path() / "tokenizer.json", j.dump());
  }
  m = msg([&] { (void)BartTokenizer::load(d4.path()); });
  EXPECT_NE(m.find("model.merges[0]: merge 'a' 'b'"), std::string::npos) << m;
  EXPECT_NE(m.find("the merged token 'ab' is not in the vocabulary"), std::string::npos) << m;
  // A malformed merges.txt line names file and line.
  TempDir d5;
  write_text(d5.path() / "vocab.json", base_vocab({}).dump());
  write_text(d5.path() / "merges.txt", "#version: 0.2\nab\n");
  m = msg([&] { (void)BartTokenizer::load(d5.path()); });
  EXPECT_NE(m.find("merges.txt:2"), std::string::npos) << m;
  // Not BPE.
  TempDir d6;
  write_text(d6.path() / "tokenizer.json",
             json({{"model", {{"type", "WordPiece"}, {"vocab", json::object()}}}}).dump());
  m = msg([&] { (void)BartTokenizer::load(d6.path()); });
  EXPECT_NE(m.find("expected \"BPE\""), std::string::npos) << m;
  // Missing <s>.
  TempDir d7;
  {
    json vocab = base_vocab({});
    vocab.erase("<s>");
    const json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
    write_text(d7.path() / "tokenizer.json", j.dump());
  }
  m = msg([&] { (void)BartTokenizer::load(d7.path()); });
  EXPECT_NE(m.find("no '<s>' token"), std::string::npos) << m;
}

TEST(BartTokenizer, Florence2AddedTokens) {
  const auto t = florence2_added_tokens();
  ASSERT_EQ(t.size(), 1024U);
  EXPECT_EQ(t[0], "<od>");
  EXPECT_EQ(t[3], "</ocr>");
  EXPECT_EQ(t[4], "<loc_0>");
  EXPECT_EQ(t[1003], "<loc_999>");
  EXPECT_EQ(t[1004], "<cap>");
  EXPECT_EQ(t[1017], "<region_to_desciption>");
  EXPECT_EQ(t[1023], "<and>");
  // Appended to a 50265-entry vocabulary they land on Florence-2's ids.
  constexpr int64_t kFirst = 50265;
  EXPECT_EQ(kFirst + 4 + 0, 50269);          // <loc_0>
  EXPECT_EQ(kFirst + 1004, 51269);           // <cap>
  EXPECT_EQ(kFirst + 1023 + 1, 51289);       // vocab size
  // On a real (smaller) tokenizer: consecutive ids after the existing ones, never split.
  TempDir dir;
  write_tiny_tokenizer_json(dir.path() / "tokenizer.json");
  auto tok = BartTokenizer::load(dir.path());
  const int64_t base = tok.vocab_size();
  tok.add_special_tokens(t);
  EXPECT_EQ(tok.vocab_size(), base + 1024);
  EXPECT_EQ(tok.token_id("<loc_0>"), base + 4);
  EXPECT_EQ(tok.token_id("<loc_999>"), base + 1003);
  EXPECT_EQ(tok.encode("<od><loc_1><loc_10><loc_100>", false),
            (Ids{base, base + 5, base + 14, base + 104}));
}

TEST(BartTokenizer, TinyTokenizerForTheVqaExperiment) {
  TempDir dir;
  write_tiny_tokenizer_json(dir.path() / "tokenizer.json");
  const auto tok = BartTokenizer::load(dir.path() / "tokenizer.json");
  EXPECT_LE(tok.vocab_size(), 300);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.token_id("H"), B('H'));
  for (const char* w : {"red", "green", "blue", "yellow", "white", "black"}) {
    const Ids ids = tok.encode(w);
    ASSERT_EQ(ids.size(), 3U) << w;
    EXPECT_EQ(ids[1], tok.token_id(w)) << w;
    EXPECT_EQ(tok.decode(ids), w);
  }
  EXPECT_EQ(tok.encode("What color is the square?"),
            (Ids{0, tok.token_id("What"), tok.token_id("Ġcolor"), tok.token_id("Ġis"),
                 tok.token_id("Ġthe"), tok.token_id("Ġsquare"), B('?'), 2}));
  for (const std::string t : {"What color is the background?", "<VQA>What color?", "é 中"}) {
    EXPECT_EQ(tok.decode(tok.encode(t)), t);
  }
}

} // namespace
} // namespace fedvlm
