// model/json_error.hpp — a nlohmann::json failure as plain text, for messages that name a file.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace fedvlm {

/// `e.what()` without nlohmann's "[json.exception.parse_error.101] " tag, made printable: a
/// parse error quotes the bytes it read, and an invalid UTF-8 byte copied into a message would
/// garble the terminal and make every JSON writer of that message (run.json) throw in turn.
[[nodiscard]] std::string json_error_text(const std::exception& e);

/// `text` with every byte outside printable ASCII (controls, bytes >= 0x80) written as \xNN.
[[nodiscard]] std::string printable_ascii(std::string_view text);

} // namespace fedvlm
