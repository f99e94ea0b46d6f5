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

} // namespace fedvlm
