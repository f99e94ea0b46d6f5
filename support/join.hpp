// support/join.hpp — a list as text ("0, 3, 7"): the one way lists of ids, names and labels are written.
#pragma once

#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
#include <algorithm>
#include <cstddef>

namespace fedvlm {

/// `items` as text, `sep` between them; each item through `text(item)`.
template <class Range, class Text>
[[nodiscard]] std::string join_with(const Range& items, std::string_view sep, Text&& text) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += sep;
    first = false;
    out += text(item);
  }
  return out;
}

/// `items` (strings or numbers) as text, `sep` between them.
template <class Range>
[[nodiscard]] std::string join(const Range& items, std::string_view sep = ", ") {
  return join_with(items, sep, [](const auto& item) {
    using T = std::decay_t<decltype(item)>;
    if constexpr (std::is_arithmetic_v<T>) return std::to_string(item);
    else return std::string(item);
  });
}

/// "a, b or c": `items` as a sentence offers choices, each through `text(item)`.
template <class Range, class Text> [[nodiscard]] std::string join_choices(const Range& items, Text&& text) {
  std::string out;
  const std::size_t n = static_cast<std::size_t>(std::distance(std::begin(items), std::end(items)));
  std::size_t i = 0;
  for (const auto& item : items) {
    out += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(text(item));
    ++i;
  }
  return out;
}

/// "name (meaning)", or "name" where the meaning is empty: a choice in a help text.
[[nodiscard]] inline std::string named_with_meaning(const char* name, const char* meaning) {
  return *meaning == '\0' ? std::string(name) : std::string(name) + " (" + meaning + ")";
}

/// "; 3 missing: a, b, c" (at most five names, then "... (n more)"); "" for no items: enough
/// names to act on without flooding a log line.
[[nodiscard]] inline std::string excerpt_of(const char* what, const std::vector<std::string>& items) {
  constexpr std::size_t kShown = 5;
  if (items.empty()) return "";
  const std::vector<std::string> shown(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), kShown)));
  std::string out = "; " + std::to_string(items.size()) + " " + what + ": " + join(shown);
  if (items.size() > kShown) out += ", ... (" + std::to_string(items.size() - kShown) + " more)";
  return out;
}

} // namespace fedvlm
