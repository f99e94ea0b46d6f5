// fl/config/toml_values.cpp — typed TOML readers and TOML value printers for the experiment schema.
#include "fl/config/toml_values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace fedvlm::config_detail {

const char* kind_name(Kind k) {
  switch (k) {
  case Kind::integer: return "an integer";
  case Kind::real: return "a number";
  case Kind::boolean: return "a boolean";
  case Kind::string: return "a string";
  case Kind::string_list: return "an array of strings";
  case Kind::int_list: return "an array of integers";
  case Kind::int_matrix: return "an array of arrays of integers";
  }
  return "?";
}

bool is_scalar(Kind k) {
  return k == Kind::integer || k == Kind::real || k == Kind::boolean || k == Kind::string;
}

std::string Where::location() const {
  std::ostringstream os;
  os << file;
  if (pos.line != 0) os << ":" << pos.line << ":" << pos.column;
  return os.str();
}

// -- typed readers ------------------------------------------------------------

int64_t read_int(const toml::node& n, const Where& w) {
  if (auto v = n.value_exact<int64_t>()) return *v;
  w.fail(std::string("expects ") + kind_name(Kind::integer) + ", got " +
         std::string(toml::impl::node_type_friendly_names[static_cast<int>(n.type())]));
}
double read_real(const toml::node& n, const Where& w) {
  if (auto v = n.value_exact<double>()) {
    // TOML allows inf and nan; no key here has a use for them, and they slip past range
    // checks written as `v < 0 || v >= 1` (every comparison with nan is false).
    if (!std::isfinite(*v)) w.fail("must be a finite number, got " + std::string(std::isnan(*v) ? "nan" : *v > 0 ? "inf" : "-inf"));
    return *v;
  }
  if (auto v = n.value_exact<int64_t>()) return static_cast<double>(*v);
  w.fail(std::string("expects ") + kind_name(Kind::real) + ", got " +
         std::string(toml::impl::node_type_friendly_names[static_cast<int>(n.type())]));
}
bool read_bool(const toml::node& n, const Where& w) {
  if (auto v = n.value_exact<bool>()) return *v;
  w.fail(std::string("expects ") + kind_name(Kind::boolean));
}
std::string read_string(const toml::node& n, const Where& w) {
  if (auto v = n.value_exact<std::string>()) return *v;
  w.fail(std::string("expects ") + kind_name(Kind::string));
}
std::vector<std::string> read_strings(const toml::node& n, const Where& w) {
  const toml::array* a = n.as_array();
  if (a == nullptr) w.fail(std::string("expects ") + kind_name(Kind::string_list));
  std::vector<std::string> out;
  for (const auto& e : *a) out.push_back(read_string(e, w));
  return out;
}
std::vector<int> read_ints(const toml::node& n, const Where& w) {
  const toml::array* a = n.as_array();
  if (a == nullptr) w.fail(std::string("expects ") + kind_name(Kind::int_list));
  std::vector<int> out;
  for (const auto& e : *a) {
    const int64_t v = read_int(e, w);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      w.fail("holds an out-of-range value (" + std::to_string(v) + ")");
    out.push_back(static_cast<int>(v));
  }
  return out;
}
std::vector<std::vector<int64_t>> read_int_matrix(const toml::node& n, const Where& w) {
  const toml::array* a = n.as_array();
  if (a == nullptr) w.fail(std::string("expects ") + kind_name(Kind::int_matrix));
  std::vector<std::vector<int64_t>> out;
  for (const auto& row : *a) {
    const toml::array* r = row.as_array();
    if (r == nullptr) w.fail(std::string("expects ") + kind_name(Kind::int_matrix));
    out.emplace_back();
    for (const auto& e : *r) out.back().push_back(read_int(e, w));
  }
  return out;
}

// -- value printers for the resolved file --------------------------------------

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\t': out += "\\t"; break;
    case '\r': out += "\\r"; break;
    default:
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        out += buf;
      } else {
        out += c;
      }
    }
  }
  return out + "\"";
}
/// Shortest text that reads back as exactly `v`.
std::string shortest(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string fmt_real(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  std::string s = shortest(v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

} // namespace fedvlm::config_detail
