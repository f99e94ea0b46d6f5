// fl/tasks/lora_target_globs.cpp — brace expansion and `*` / `**` matching of module names.
#include "fl/tasks/lora_target_globs.hpp"

#include <algorithm>
#include <stdexcept>

namespace fedvlm {
namespace {

[[noreturn]] void unbalanced(const std::string& pattern, const char* what) {
  throw std::invalid_argument("lora.targets: pattern '" + pattern + "' has " + what +
                              " (braces take alternatives: {q,k,v}_proj)");
}

// Index of the '}' closing the '{' at `open`, honouring nesting; npos when there is none.
std::size_t closing_brace(const std::string& p, std::size_t open) {
  int depth = 0;
  for (std::size_t i = open; i < p.size(); ++i) {
    if (p[i] == '{') ++depth;
    if (p[i] == '}' && --depth == 0) return i;
  }
  return std::string::npos;
}

// Pattern without braces against name: `*` stays within a component, `**` crosses dots.
bool match_plain(const std::string& p, std::size_t pi, const std::string& n, std::size_t ni) {
  while (pi < p.size()) {
    if (p[pi] == '*') {
      const bool deep = pi + 1 < p.size() && p[pi + 1] == '*';
      const std::size_t rest = pi + (deep ? 2 : 1);
      for (std::size_t k = ni;; ++k) { // try every length of the run, shortest first
        if (match_plain(p, rest, n, k)) return true;
        if (k == n.size() || (!deep && n[k] == '.')) return false;
      }
    }
    if (ni == n.size() || p[pi] != n[ni]) return false;
    ++pi;
    ++ni;
  }
  return ni == n.size();
}

} // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  const std::size_t open = pattern.find('{');
  const std::size_t stray = pattern.find('}');
  if (open == std::string::npos) {
    if (stray != std::string::npos) unbalanced(pattern, "a '}' without its '{'");
    return {pattern};
  }
  if (stray < open) unbalanced(pattern, "a '}' without its '{'");
  const std::size_t close = closing_brace(pattern, open);
  if (close == std::string::npos) unbalanced(pattern, "a '{' without its '}'");
  // Split the body at top-level commas.
  std::vector<std::string> alternatives;
  int depth = 0;
  std::size_t start = open + 1;
  for (std::size_t i = open + 1; i < close; ++i) {
    if (pattern[i] == '{') ++depth;
    if (pattern[i] == '}') --depth;
    if (pattern[i] == ',' && depth == 0) {
      alternatives.push_back(pattern.substr(start, i - start));
      start = i + 1;
    }
  }
  alternatives.push_back(pattern.substr(start, close - start));
  const std::string head = pattern.substr(0, open), tail = pattern.substr(close + 1);
  std::vector<std::string> out;
  for (const auto& alt : alternatives)
    for (auto& expanded : expand_braces(head + alt + tail)) out.push_back(std::move(expanded));
  return out;
}

bool lora_target_glob_match(const std::string& pattern, const std::string& name) {
  for (const auto& p : expand_braces(pattern))
    if (match_plain(p, 0, name, 0)) return true;
  return false;
}

std::map<std::string, AdaptableLayer> match_lora_targets(const std::map<std::string, AdaptableLayer>& adaptable,
                                                         const std::vector<std::string>& patterns) {
  std::map<std::string, AdaptableLayer> out;
  for (const auto& pattern : patterns) {
    const std::vector<std::string> expanded = expand_braces(pattern);
    bool any = false;
    for (const auto& [name, layer] : adaptable) {
      const bool hit = std::any_of(expanded.begin(), expanded.end(),
                                   [&](const std::string& p) { return match_plain(p, 0, name, 0); });
      if (!hit) continue;
      out.emplace(name, layer);
      any = true;
    }
    if (any) continue;
    // Examples: names sharing the literal prefix (up to the first wildcard or brace), else any.
    const std::string prefix = pattern.substr(0, pattern.find_first_of("*{"));
    std::vector<std::string> examples;
    for (std::size_t keep = prefix.size();; keep = keep > 0 ? keep - 1 : 0) {
      for (const auto& entry : adaptable)
        if (examples.size() < 4 && entry.first.compare(0, keep, prefix, 0, keep) == 0) examples.push_back(entry.first);
      if (!examples.empty() || keep == 0) break;
    }
    std::string message = "lora.targets: pattern '" + pattern + "' matches no adaptable layer (" +
                          std::to_string(adaptable.size()) + " offered";
    for (std::size_t i = 0; i < examples.size(); ++i) message += (i ? ", " : ", e.g. ") + examples[i];
    message += "; '*' stays within one dotted component, '**' crosses dots)";
    throw std::invalid_argument(message);
  }
  return out;
}

} // namespace fedvlm
