// fl/config/experiment_schema.hpp — the table of experiment keys: type, default, help, range, when it applies, setter.
//
// Internal to fl/config. One row per key (fl/config/experiment_schema.cpp): reading, `--keys`,
// the resolved config.toml and the "has no effect" warnings all walk this table.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/config/toml_values.hpp"

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace fedvlm::config_detail {

using Setter = std::function<void(ExperimentConfig&, const toml::node&, const Where&)>;
using Getter = std::function<std::string(const ExperimentConfig&)>;

struct KeyDef {
  std::string path;
  Kind kind;
  std::string help;
  Setter set;
  Getter get;
  /// The values a numeric key can mean (both ends included), checked as the value is read, so the
  /// message points at it; `--keys` prints it. Unset (nan) for keys with no numeric value.
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  std::string range_note{}; ///< why the bound is what it is, where that is not obvious
  bool lo_open = false, hi_open = false; ///< an end that is excluded: (0, 1]
  /// The configurations in which the key acts, e.g. "federation.mode = async" ("" = always);
  /// `--keys` prints it and validate() warns about (or, strict, refuses) a key set outside them.
  const char* applies = "";
  std::vector<std::string> deciding_keys{};
  std::function<bool(const ExperimentConfig&)> applies_if{}; ///< empty: always

  KeyDef in(double low, double high, std::string note = "") && {
    lo = low;
    hi = high;
    range_note = std::move(note);
    return std::move(*this);
  }
  KeyDef open_lo() && {
    lo_open = true;
    return std::move(*this);
  }
  KeyDef open_hi() && {
    hi_open = true;
    return std::move(*this);
  }
  /// The key acts only where `holds` (on the validated config): `condition` says so in words,
  /// and `deciding` names the keys whose values it depends on, quoted in the warning.
  KeyDef when(const char* condition, std::vector<std::string> deciding,
              std::function<bool(const ExperimentConfig&)> holds) && {
    applies = condition;
    deciding_keys = std::move(deciding);
    applies_if = std::move(holds);
    return std::move(*this);
  }
  /// The same from a named condition shared by several keys.
  template <class Condition> KeyDef when(const Condition& c) && {
    return std::move(*this).when(c.condition, c.deciding, c.holds);
  }
  [[nodiscard]] bool has_range() const { return !std::isnan(lo); }
};

/// Every key, in the order `--keys` and config.toml list them.
[[nodiscard]] const std::vector<KeyDef>& schema();
/// The row of `path` ("federation.clients"), or nullptr.
[[nodiscard]] const KeyDef* find_key(const std::string& path);
/// "a, b, c": the keys directly in `section` ("" = top level), for "unknown key" messages.
[[nodiscard]] std::string known_keys_under(const std::string& section);
/// "[1, 100000]", "(0, 1]", ">= 0".
[[nodiscard]] std::string range_text(const KeyDef& k);
/// Sets key `k` from `n`, then checks the value (or each element of an array) against k's range.
void assign(const KeyDef& k, ExperimentConfig& c, const toml::node& n, const Where& w);

} // namespace fedvlm::config_detail
