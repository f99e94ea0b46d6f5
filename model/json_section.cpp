// model/json_section.cpp — typed, range-checked reads from config.json-like files.
#include "model/json_section.hpp"

#include "model/json_error.hpp"

#include <fstream>
#include <stdexcept>

namespace fedvlm {

using nlohmann::json;

json read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot be opened");
  try {
    return json::parse(in);
  } catch (const json::exception& e) { // out_of_range too: a number like 1e999
    throw std::runtime_error(file.string() + ": not valid JSON (" + json_error_text(e) + ")");
  }
}

void JsonSection::fail(const std::string& key, const std::string& expected) const {
  throw std::runtime_error(file_.string() + ": key '" + prefix_ + key + "': expected " + expected);
}

int64_t JsonSection::integer(const std::string& key, int64_t fallback, int64_t min) const {
  if (!has(key)) return fallback;
  const json& v = object_[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min) fail(key, "an integer >= " + std::to_string(min) + ", got " + v.dump());
  return v.get<int64_t>();
}

double JsonSection::number(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  if (!object_[key].is_number()) fail(key, "a number, got " + object_[key].dump());
  return object_[key].get<double>();
}

double JsonSection::non_negative(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const json& v = object_[key];
  if (!v.is_number() || v.get<double>() < 0.0) fail(key, "a number >= 0, got " + v.dump());
  return v.get<double>();
}

double JsonSection::positive(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const json& v = object_[key];
  if (!v.is_number() || !(v.get<double>() > 0.0)) fail(key, "a number > 0, got " + v.dump());
  return v.get<double>();
}

std::string JsonSection::text(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  if (!object_[key].is_string()) fail(key, "a string, got " + object_[key].dump());
  return object_[key].get<std::string>();
}

bool JsonSection::flag(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  if (!object_[key].is_boolean()) fail(key, "true or false, got " + object_[key].dump());
  return object_[key].get<bool>();
}

JsonSection JsonSection::child(const std::string& key) const {
  if (!has(key) || !object_[key].is_object()) fail(key, "an object");
  return JsonSection(file_, object_[key], prefix_ + key + ".");
}

} // namespace fedvlm
