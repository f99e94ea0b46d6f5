// fl/results/results_reader.cpp — strict parsing of run directories, with file:line in every error.
#include "fl/results/results_reader.hpp"

#include "fl/results/record_fields.hpp"
#include "model/json_error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <type_traits>

namespace fedvlm {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Where a value came from, for error messages: "dir/metrics.jsonl:3" or "dir/run.json".
struct Origin {
  const fs::path& file;
  std::size_t line = 0; // 0: whole-file JSON
  std::string text() const {
    return line ? file.string() + ":" + std::to_string(line) : file.string();
  }
};

[[noreturn]] void fail(const Origin& at, const std::string& what) {
  throw std::runtime_error(at.text() + ": " + what);
}

const json& field(const json& obj, const char* name, const Origin& at) {
  const auto it = obj.find(name);
  if (it == obj.end()) fail(at, std::string("missing field \"") + name + "\"");
  return *it;
}

std::string get_string(const json& obj, const char* name, const Origin& at) {
  const json& v = field(obj, name, at);
  if (!v.is_string()) fail(at, std::string("field \"") + name + "\" must be a string, got " + v.dump());
  return v.get<std::string>();
}

int64_t get_int(const json& obj, const char* name, const Origin& at) {
  const json& v = field(obj, name, at);
  if (!v.is_number_integer())
    fail(at, std::string("field \"") + name + "\" must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

uint64_t get_uint64(const json& obj, const char* name, const Origin& at) {
  const json& v = field(obj, name, at);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail(at, std::string("field \"") + name + "\" must be a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

int get_int32(const json& obj, const char* name, const Origin& at) {
  const int64_t v = get_int(obj, name, at);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    fail(at, std::string("field \"") + name + "\" out of range: " + std::to_string(v));
  return static_cast<int>(v);
}

double get_double(const json& obj, const char* name, const Origin& at) {
  const json& v = field(obj, name, at);
  // nlohmann writes NaN and infinities as null; the writer's loss can legitimately be NaN.
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!v.is_number()) fail(at, std::string("field \"") + name + "\" must be a number, got " + v.dump());
  return v.get<double>();
}

bool get_bool(const json& obj, const char* name, const Origin& at) {
  const json& v = field(obj, name, at);
  if (!v.is_boolean()) fail(at, std::string("field \"") + name + "\" must be true/false, got " + v.dump());
  return v.get<bool>();
}

std::string read_file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + path.string());
  return ss.str();
}

json parse_object(const std::string& text, const Origin& at) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) { // out_of_range too: a number like 1e999
    fail(at, "malformed JSON: " + json_error_text(e));
  }
  if (!j.is_object()) fail(at, "expected a JSON object, got " + j.dump());
  return j;
}

// Calls `each(object, origin)` for every non-blank line of a JSON lines file. A last line
// without its newline that does not parse is cut off: the writer appends each round's lines,
// and a crash in the middle of an append leaves such a torn line (it is not a record yet).
template <typename F>
void for_each_json_line(const fs::path& path, F each) {
  const std::string text = read_file_text(path);
  std::size_t number = 0;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t newline = text.find('\n', start);
    const bool torn = newline == std::string::npos;
    std::string line = text.substr(start, torn ? std::string::npos : newline - start);
    start = torn ? text.size() : newline + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const Origin at{path, number};
    if (torn && !json::accept(line)) return;
    each(parse_object(line, at), at);
  }
}

template <class Record>
Record parse_fields(const json& j, const std::vector<RecordField<Record>>& fields, const Origin& at) {
  Record out;
  for (const auto& f : fields) {
    if (f.optional && !j.contains(f.name)) continue; // an older file: the struct's default
    std::visit(
        [&](auto member) {
          auto& v = out.*member;
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) v = get_string(j, f.name, at);
          else if constexpr (std::is_same_v<T, int>) v = get_int32(j, f.name, at);
          else if constexpr (std::is_same_v<T, int64_t>) v = get_int(j, f.name, at);
          else if constexpr (std::is_same_v<T, uint64_t>) v = get_uint64(j, f.name, at);
          else if constexpr (std::is_same_v<T, double>) v = get_double(j, f.name, at);
          else v = get_bool(j, f.name, at);
        },
        f.member);
  }
  return out;
}

ClientRoundRecord parse_record(const json& j, const Origin& at) {
  ClientRoundRecord r = parse_fields(j, client_record_field_list(), at);
  // Every other key is a task metric. null (NaN: not measured) is left out, as the writer
  // does; results from before named metrics wrote "exact_match": null for classification runs.
  std::set<std::string> known;
  for (const auto& f : client_record_field_list()) known.insert(f.name);
  for (const auto& [key, value] : j.items())
    if (!known.count(key) && !value.is_null()) r.task_metrics[key] = get_double(j, key.c_str(), at);
  return r;
}

RoundSummary parse_summary(const json& j, const Origin& at) {
  RoundSummary s = parse_fields(j, round_summary_field_list(), at);
  if (j.contains("aggregation_error_by_layer")) {
    const json& layers = j.at("aggregation_error_by_layer");
    if (!layers.is_object()) fail(at, "field \"aggregation_error_by_layer\" must be an object, got " + layers.dump());
    for (const auto& [layer, v] : layers.items())
      s.aggregation_error_by_layer[layer] = get_double(layers, layer.c_str(), at);
  }
  return s;
}

std::string last_component(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

} // namespace

std::string RunResults::incomplete_note() const {
  if (status == kStatusCompleted) return "";
  const int reached = std::max(0, last_round());
  const std::string verb = status == kStatusRunning ? "running or stopped" : status;
  return verb + " at round " + std::to_string(reached) + " of " + std::to_string(info.rounds);
}

RunResults load_run(const fs::path& run_dir) {
  RunResults out;
  out.dir = run_dir;

  const fs::path run_json = run_dir / "run.json";
  const Origin at{run_json};
  const json j = parse_object(read_file_text(run_json), at);
  out.info = parse_fields(j, run_info_field_list(), at);
  const json& sweep = field(j, "sweep", at);
  if (!sweep.is_object()) fail(at, "field \"sweep\" must be an object, got " + sweep.dump());
  for (const auto& [key, value] : sweep.items()) {
    // Hand-edited files may hold numbers; the writer always stores text.
    if (value.is_string()) out.info.sweep[key] = value.get<std::string>();
    else if (value.is_number() || value.is_boolean()) out.info.sweep[key] = value.dump();
    else fail(at, "sweep value of \"" + key + "\" must be a string, got " + value.dump());
  }
  out.status = get_string(j, "status", at);

  for_each_json_line(run_dir / "metrics.jsonl", [&](const json& obj, const Origin& line_at) {
    out.records.push_back(parse_record(obj, line_at));
  });
  for_each_json_line(run_dir / "rounds.jsonl", [&](const json& obj, const Origin& line_at) {
    out.rounds.push_back(parse_summary(obj, line_at));
  });
  return out;
}

std::vector<RunResults> load_results(const std::vector<fs::path>& paths) {
  std::vector<fs::path> dirs;
  for (const auto& path : paths) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error(path.string() + ": no such file or directory");
    if (fs::is_regular_file(path / "run.json", ec)) {
      dirs.push_back(path);
      continue;
    }
    // A run.json given directly names its run directory.
    if (path.filename() == "run.json" && fs::is_regular_file(path, ec)) {
      dirs.push_back(path.parent_path().empty() ? fs::path(".") : path.parent_path());
      continue;
    }
    if (!fs::is_directory(path, ec))
      throw std::runtime_error(path.string() + ": not a run directory (no run.json) nor a folder");
    std::size_t found = 0;
    fs::recursive_directory_iterator it(path, fs::directory_options::follow_directory_symlink |
                                              fs::directory_options::skip_permission_denied,
                                          ec);
    if (ec) throw std::runtime_error("cannot list " + path.string() + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) throw std::runtime_error("cannot list " + path.string() + ": " + ec.message());
      if (it->path().filename() == "run.json" && it->is_regular_file(ec)) {
        dirs.push_back(it->path().parent_path());
        ++found;
      }
    }
    if (found == 0) throw std::runtime_error(path.string() + ": holds no run (no run.json found)");
  }

  // The same run reached through two arguments (a folder and one of its runs) counts once.
  std::vector<std::pair<fs::path, fs::path>> keyed; // (canonical, as given)
  for (const auto& d : dirs) {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(d, ec);
    keyed.emplace_back(ec ? d.lexically_normal() : canon, d);
  }
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.second.lexically_normal() < b.second.lexically_normal(); });
  std::vector<RunResults> runs;
  std::set<fs::path> seen;
  for (const auto& [canon, given] : keyed) {
    if (!seen.insert(canon).second) continue;
    runs.push_back(load_run(given));
  }
  return runs;
}

bool is_seed_key(const std::string& key) { return last_component(key) == "seed"; }

bool is_strategy_key(const std::string& key) { return last_component(key) == "strategy"; }

std::map<std::string, std::string> short_sweep_names(const std::set<std::string>& keys) {
  std::map<std::string, int> uses;
  for (const auto& k : keys) ++uses[last_component(k)];
  std::map<std::string, std::string> names;
  for (const auto& k : keys) names[k] = uses[last_component(k)] > 1 ? k : last_component(k);
  return names;
}

} // namespace fedvlm
