// fl/config/toml_values.hpp — reading typed values out of TOML nodes, and printing them back, with the key's place in messages.
//
// Internal to fl/config: the experiment schema and its checks use it; nothing past the edge sees TOML.
#pragma once

#include "fl/config/config_error.hpp"
#include "support/join.hpp"

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm::config_detail {

enum class Kind { integer, real, boolean, string, string_list, int_list, int_matrix };

/// "an integer", "an array of strings": what a key of this kind expects, for messages.
[[nodiscard]] const char* kind_name(Kind k);
[[nodiscard]] bool is_scalar(Kind k);

/// Where a key sits, for messages.
struct Where {
  std::string file;
  std::string key;
  toml::source_position pos{}; ///< line 0 for a value given on the command line
  /// "FILE:LINE:COL", or the `--set KEY=VALUE` option a value came from.
  [[nodiscard]] std::string location() const;
  [[nodiscard]] std::string prefix() const { return location() + ": key '" + key + "'"; }
  [[noreturn]] void fail(const std::string& reason) const { throw ConfigError(prefix() + ": " + reason); }
};

// Typed readers: each fails naming the key when the node holds another type.
[[nodiscard]] int64_t read_int(const toml::node& n, const Where& w);
[[nodiscard]] double read_real(const toml::node& n, const Where& w); ///< finite only; integers accepted
[[nodiscard]] bool read_bool(const toml::node& n, const Where& w);
[[nodiscard]] std::string read_string(const toml::node& n, const Where& w);
[[nodiscard]] std::vector<std::string> read_strings(const toml::node& n, const Where& w);
[[nodiscard]] std::vector<int> read_ints(const toml::node& n, const Where& w);
[[nodiscard]] std::vector<std::vector<int64_t>> read_int_matrix(const toml::node& n, const Where& w);

// Printers for the resolved file: each writes TOML that reads back as the same value.
[[nodiscard]] std::string quote(const std::string& s);
[[nodiscard]] std::string shortest(double v); ///< the shortest text that reads back as exactly v
[[nodiscard]] std::string fmt_real(double v);  ///< shortest, always with a '.' or exponent
template <class T> std::string fmt_list(const std::vector<T>& v) {
  if constexpr (std::is_same_v<T, std::string>) return "[" + join_with(v, ", ", quote) + "]";
  else return "[" + join(v) + "]";
}

} // namespace fedvlm::config_detail
