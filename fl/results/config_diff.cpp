// fl/results/config_diff.cpp — flattening TOML into key/value pairs and comparing them.
#include "fl/results/config_diff.hpp"

#include "fl/results/run_checkpoint.hpp"
#include "fl/config/toml_text_check.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <sstream>
#include <stdexcept>

namespace fedvlm {

namespace {

void flatten(const toml::table& table, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(*sub, key, out);
      continue;
    }
    if (const auto* f = node.as_floating_point()) {
      // Shortest text that reads back as the same double: "0.05", not toml++'s 0.050000000000000003.
      char buf[64];
      const auto res = std::to_chars(buf, buf + sizeof buf, f->get());
      out[key] = std::string(buf, res.ptr);
      continue;
    }
    std::ostringstream os;
    node.visit([&os](const auto& v) { os << v; });
    out[key] = os.str();
  }
}

} // namespace

std::map<std::string, std::string> config_values(std::string_view text, const std::string& origin) {
  if (auto bad = non_ascii_outside_strings(text)) throw std::runtime_error(origin + ":" + *bad);
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw std::runtime_error(os.str());
  }
  std::map<std::string, std::string> out;
  flatten(table, "", out);
  return out;
}

std::vector<std::string> config_differences(const std::map<std::string, std::string>& before,
                                            const std::map<std::string, std::string>& after) {
  std::vector<std::string> out;
  auto a = before.begin();
  auto b = after.begin();
  while (a != before.end() || b != after.end()) {
    if (b == after.end() || (a != before.end() && a->first < b->first)) {
      out.push_back(a->first + ": " + a->second + " -> (absent)");
      ++a;
    } else if (a == before.end() || b->first < a->first) {
      out.push_back(b->first + ": (absent) -> " + b->second);
      ++b;
    } else {
      if (a->second != b->second) out.push_back(a->first + ": " + a->second + " -> " + b->second);
      ++a;
      ++b;
    }
  }
  return out;
}

std::vector<std::string> state_meaning_differences(const std::map<std::string, std::string>& before,
                                                   const std::map<std::string, std::string>& after) {
  static const char* const kSections[] = {"strategy.", "model.", "data.", "partition.", "lora.", "pretrain.", "clip."};
  static const char* const kKeys[] = {"seed", "federation.clients", "federation.mode"};
  static const char* const kLocations[] = {"data.path", "model.weights", "model.tokenizer", "pretrain.cache_dir"};
  auto decides = [](const std::string& key) {
    for (const char* l : kLocations)
      if (key == l) return false;
    for (const char* k : kKeys)
      if (key == k) return true;
    for (const char* s : kSections)
      if (key.rfind(s, 0) == 0) return true;
    return false;
  };
  std::vector<std::string> out;
  for (const auto& d : config_differences(before, after))
    if (decides(d.substr(0, d.find(':')))) out.push_back(d);
  return out;
}

uint64_t config_fingerprint(const std::map<std::string, std::string>& values) {
  std::string listing;
  for (const auto& [k, v] : values) listing += k + " = " + v + "\n";
  return config_hash(listing);
}

} // namespace fedvlm
