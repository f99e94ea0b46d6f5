// model/name_affixes.hpp — prefix and suffix tests on parameter, module and file names.
#pragma once

#include <string_view>

namespace fedvlm {

[[nodiscard]] inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

[[nodiscard]] inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace fedvlm
