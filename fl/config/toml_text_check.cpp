// fl/config/toml_text_check.cpp — a small TOML lexer that only tracks strings and comments.
#include "fl/config/toml_text_check.hpp"

namespace fedvlm {

std::optional<std::string> non_ascii_outside_strings(std::string_view text) {
  std::size_t line = 1, column = 0;
  enum class In { code, comment, basic, literal, ml_basic, ml_literal } in = In::code;
  auto at = [&](std::size_t i, const char* three) { return text.substr(i, 3) == three; };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    ++column;
    if (ch == '\n') {
      ++line;
      column = 0;
      if (in == In::comment || in == In::basic || in == In::literal) in = In::code;
      continue;
    }
    switch (in) {
    case In::code:
      if (at(i, "\xEF\xBB\xBF")) {
        // Editors on Windows start UTF-8 files with a byte-order mark; TOML readers accept it
        // there. Anywhere else it is invisible junk, most likely from files joined together.
        if (i == 0) {
          i += 2;
          column = 0;
          break;
        }
        return std::to_string(line) + ":" + std::to_string(column) +
               ": a byte-order mark (U+FEFF) in the middle of the file, where nothing can be seen; "
               "delete it (save the file as UTF-8 without BOM)";
      }
      if (static_cast<unsigned char>(ch) >= 0x80)
        return std::to_string(line) + ":" + std::to_string(column) +
               ": a non-ASCII character outside a string or comment (TOML allows them only there; quote the value)";
      if (ch == '#') in = In::comment;
      else if (at(i, "\"\"\"")) in = In::ml_basic, i += 2, column += 2;
      else if (at(i, "'''")) in = In::ml_literal, i += 2, column += 2;
      else if (ch == '"') in = In::basic;
      else if (ch == '\'') in = In::literal;
      break;
    case In::comment:
      break;
    case In::basic:
      if (ch == '\\') ++i, ++column;
      else if (ch == '"') in = In::code;
      break;
    case In::literal:
      if (ch == '\'') in = In::code;
      break;
    case In::ml_basic:
      if (ch == '\\') ++i, ++column;
      else if (at(i, "\"\"\"")) in = In::code, i += 2, column += 2;
      break;
    case In::ml_literal:
      if (at(i, "'''")) in = In::code, i += 2, column += 2;
      break;
    }
  }
  return std::nullopt;
}

} // namespace fedvlm
