// fl/config/device_trace.cpp — the device-trace CSV reader.
#include "fl/config/device_trace.hpp"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fedvlm {

namespace {

const char* const kHeader = "client,speed_factor,down_mbps,up_mbps,latency_s,available";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

double number(const std::string& text, const std::string& where, const char* column, bool positive) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v) || v < 0 || (positive && v == 0))
    throw std::invalid_argument(where + ": column " + column + ": expected a " + (positive ? "positive" : "non-negative") +
                                " number, got '" + text + "'");
  return v;
}

std::vector<std::pair<double, double>> windows(const std::string& text, const std::string& where) {
  std::vector<std::pair<double, double>> out;
  if (text == "*") return out;
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    const auto dash = w.find('-');
    if (dash == std::string::npos || dash == 0)
      throw std::invalid_argument(where + ": column available: expected '*' or windows 'start-end' (simulated seconds), got '" + w + "'");
    const double a = number(w.substr(0, dash), where, "available", false);
    const double b = number(w.substr(dash + 1), where, "available", false);
    if (!(b > a)) throw std::invalid_argument(where + ": column available: window '" + w + "' must end after it starts");
    if (!out.empty() && a < out.back().second)
      throw std::invalid_argument(where + ": column available: windows must be ascending and disjoint ('" + w + "')");
    out.emplace_back(a, b);
  }
  if (out.empty()) throw std::invalid_argument(where + ": column available: empty (write '*' for always available)");
  return out;
}

} // namespace

std::vector<DeviceProfile> parse_device_trace(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  int number_of_line = 0;
  bool header = false;
  std::vector<DeviceProfile> out;
  while (std::getline(in, line)) {
    ++number_of_line;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const std::string where = name + ":" + std::to_string(number_of_line);
    if (!header) {
      std::string compact;
      for (char ch : t)
        if (ch != ' ') compact += ch;
      if (compact != kHeader)
        throw std::invalid_argument(where + ": expected the header '" + std::string(kHeader) + "', got '" + t + "'");
      header = true;
      continue;
    }
    std::vector<std::string> cols;
    std::string col;
    std::istringstream cells(t);
    while (std::getline(cells, col, ',')) cols.push_back(trim(col));
    if (cols.size() != 6)
      throw std::invalid_argument(where + ": expected 6 columns (" + kHeader + "), got " + std::to_string(cols.size()));
    if (cols[0] != std::to_string(out.size()))
      throw std::invalid_argument(where + ": column client: expected " + std::to_string(out.size()) +
                                  " (devices are numbered 0, 1, ... in order), got '" + cols[0] + "'");
    DeviceProfile d;
    d.speed_factor = number(cols[1], where, "speed_factor", true);
    d.down_mbps = number(cols[2], where, "down_mbps", false);
    d.up_mbps = number(cols[3], where, "up_mbps", false);
    d.latency_s = number(cols[4], where, "latency_s", false);
    d.windows = windows(cols[5], where);
    out.push_back(std::move(d));
  }
  if (out.empty()) throw std::invalid_argument(name + ": no devices (expected the header '" + std::string(kHeader) + "' and one row per device)");
  return out;
}

std::vector<DeviceProfile> read_device_trace(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::invalid_argument(file.string() + ": cannot be read (network.trace)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_device_trace(text.str(), file.string());
}

} // namespace fedvlm
