// model/bpe_files.cpp — file reading and regex compilation shared by the BPE tokenizers.
#include "model/bpe_files.hpp"

#include "model/json_error.hpp"

#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fedvlm {

std::string read_tokenizer_file(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open (" + what + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(file.string() + ": read error");
  return ss.str();
}

nlohmann::json parse_tokenizer_json(const std::filesystem::path& file, const char* what) {
  const std::string text = read_tokenizer_file(file, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(file.string() + ": malformed JSON (" + what + "): " + json_error_text(e));
  }
}

void for_each_vocab_entry(const nlohmann::json& vocab, const std::string& where,
                          const std::function<void(const std::string&, int64_t)>& set_token) {
  if (!vocab.is_object()) throw std::runtime_error(where + " must be an object mapping token to id");
  for (const auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer()) throw std::runtime_error(where + ": the id of token '" + tok + "' is not an integer");
    set_token(tok, id.get<int64_t>());
  }
}

namespace {

/// "a b" split at its one space; false when it is not two tokens separated by one space.
bool split_merge(const std::string& s, std::string& a, std::string& b) {
  const auto sp = s.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos) return false;
  a = s.substr(0, sp);
  b = s.substr(sp + 1);
  return true;
}

} // namespace

TokenizerSource locate_tokenizer(const std::filesystem::path& file_or_dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(file_or_dir, ec)) {
    const std::filesystem::path tj = file_or_dir / "tokenizer.json";
    if (std::filesystem::is_regular_file(tj)) return {tj, true};
    return {file_or_dir, false};
  }
  if (!std::filesystem::exists(file_or_dir, ec))
    throw std::runtime_error(file_or_dir.string() +
                             ": not found; expected a tokenizer.json file or a directory with "
                             "tokenizer.json or vocab.json + merges.txt");
  return {file_or_dir, true};
}

void for_each_json_merge(const nlohmann::json& merges, const std::string& source, const AddMerge& add) {
  std::string a, b;
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& m = merges[i];
    const std::string where = source + ": model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      if (!split_merge(m.get<std::string>(), a, b))
        throw std::runtime_error(where + " \"" + printable_ascii(m.get<std::string>()) +
                                 "\" is not two tokens separated by one space");
      add(a, b, i, where);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      add(m[0].get<std::string>(), m[1].get<std::string>(), i, where);
    } else {
      throw std::runtime_error(where + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
}

void for_each_merges_txt_line(const std::filesystem::path& file, const AddMerge& add) {
  std::istringstream lines(read_tokenizer_file(file, "expected merges.txt"));
  std::string line, a, b;
  std::size_t line_no = 0;
  std::size_t rank = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const std::string where = file.string() + ":" + std::to_string(line_no);
    if (!split_merge(line, a, b))
      throw std::runtime_error(where + ": \"" + printable_ascii(line) + "\" is not two tokens separated by one space");
    add(a, b, rank++, where);
  }
}

std::shared_ptr<pcre2_code> compile_pretokenizer_regex(const char* pattern, uint32_t options, const std::string& who_what) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, options, &err, &err_off, nullptr);
  if (code == nullptr) {
    std::array<PCRE2_UCHAR, 256> msg{};
    pcre2_get_error_message(err, msg.data(), msg.size());
    throw std::runtime_error(who_what + ": " + reinterpret_cast<const char*>(msg.data()));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); // best effort: falls back to the interpreter
  return {code, [](pcre2_code* c) { pcre2_code_free(c); }};
}

void read_vocab(TokenTable& table, const nlohmann::json& vocab, const std::string& where, uint8_t kind) {
  for_each_vocab_entry(vocab, where, [&table, kind](const std::string& tok, int64_t id) { table.set_token(id, tok, kind); });
}

std::filesystem::path read_vocab_json(TokenTable& table, const std::filesystem::path& dir, uint8_t kind) {
  const std::filesystem::path vocab_file = dir / "vocab.json", merges_file = dir / "merges.txt";
  table.source = vocab_file.string();
  if (!std::filesystem::is_regular_file(vocab_file))
    throw std::runtime_error(dir.string() + ": no tokenizer.json and no vocab.json; expected a Hugging Face "
                                            "tokenizer.json or vocab.json + merges.txt");
  if (!std::filesystem::is_regular_file(merges_file))
    throw std::runtime_error(merges_file.string() + ": missing; expected merges.txt next to vocab.json (or a "
                                                    "tokenizer.json)");
  read_vocab(table, parse_tokenizer_json(vocab_file, "expected vocab.json: {token: id}"), table.source, kind);
  return merges_file;
}

void read_merges_txt(TokenTable& table, const std::filesystem::path& merges_file) {
  for_each_merges_txt_line(merges_file, [&table](const std::string& a, const std::string& b, std::size_t rank,
                                                 const std::string& where) { table.add_merge(a, b, rank, where); });
}

} // namespace fedvlm
