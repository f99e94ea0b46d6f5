// model/json_section.hpp — typed reads from one object of a JSON config file, errors naming the file and the key path.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

namespace fedvlm {

/// The whole file parsed. Throws std::runtime_error "FILE: cannot be opened" or
/// "FILE: not valid JSON (...)" (also for a number out of range, like 1e999).
[[nodiscard]] nlohmann::json read_json_file(const std::filesystem::path& file);

/// One JSON object of a file, with the key path kept for messages ("text_config.hidden_size").
/// Every read returns `fallback` when the key is absent or null, and otherwise checks the type
/// and range, throwing std::runtime_error "FILE: key 'PATH': expected WHAT, got VALUE".
/// Holds references: the file path and the object must outlive it.
class JsonSection {
public:
  JsonSection(const std::filesystem::path& file, const nlohmann::json& object, std::string prefix = "")
      : file_(file), object_(object), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& expected) const;
  [[nodiscard]] bool has(const std::string& key) const { return object_.contains(key) && !object_[key].is_null(); }

  [[nodiscard]] int64_t integer(const std::string& key, int64_t fallback, int64_t min = 0) const;
  [[nodiscard]] double number(const std::string& key, double fallback) const;       ///< any number
  [[nodiscard]] double non_negative(const std::string& key, double fallback) const; ///< >= 0
  [[nodiscard]] double positive(const std::string& key, double fallback) const;     ///< > 0
  [[nodiscard]] std::string text(const std::string& key, const std::string& fallback) const;
  [[nodiscard]] bool flag(const std::string& key, bool fallback) const;
  /// A list of exactly `size` booleans, integers or numbers (by T).
  template <typename T>
  [[nodiscard]] std::vector<T> list(const std::string& key, std::vector<T> fallback, size_t size) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = object_[key];
    const std::string what = "a list of " + std::to_string(size) + (std::is_same_v<T, bool> ? " booleans" : " numbers");
    if (!v.is_array() || v.size() != size) fail(key, what + ", got " + v.dump());
    std::vector<T> out;
    for (const nlohmann::json& e : v) {
      const bool ok = std::is_same_v<T, bool> ? e.is_boolean() : std::is_integral_v<T> ? e.is_number_integer() : e.is_number();
      if (!ok) fail(key, what + ", got " + v.dump());
      out.push_back(e.get<T>());
    }
    return out;
  }
  /// The object under `key` (which must be one), its path prefixed with "key.".
  [[nodiscard]] JsonSection child(const std::string& key) const;
  [[nodiscard]] const nlohmann::json& raw(const std::string& key) const { return object_[key]; }

private:
  const std::filesystem::path& file_;
  const nlohmann::json& object_;
  std::string prefix_;
};

} // namespace fedvlm
