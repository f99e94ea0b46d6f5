// fl/config/toml_text_check.hpp — checks on TOML text made before toml++ parses it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fedvlm {

/// TOML allows characters beyond ASCII only inside strings and comments. toml++ 3.3 (Debian's)
/// reaches undefined behaviour on one elsewhere (its whitespace test; upstream issue #295,
/// found by tests/fuzz), so every TOML text is checked before it is parsed. Returns
/// "LINE:COLUMN: reason" for the first such character, or nothing.
[[nodiscard]] std::optional<std::string> non_ascii_outside_strings(std::string_view text);

} // namespace fedvlm
