// fl/results_reader.cpp — strict parsing of run directories, with file:line in every error.
#include "fl/results_reader.hpp"

#include "model/json_error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <system_error>

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

// Calls `each(object, origin)` for every non-blank line of a JSON lines file.
template <typename F>
void for_each_json_line(const fs::path& path, F each) {
  std::istringstream in(read_file_text(path));
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const Origin at{path, number};
    each(parse_object(line, at), at);
  }
}

ClientRoundRecord parse_record(const json& j, const Origin& at) {
  ClientRoundRecord r;
  r.run = get_string(j, "run", at);
  r.strategy = get_string(j, "strategy", at);
  r.client = get_int32(j, "client", at);
  r.round = get_int32(j, "round", at);
  r.phase = get_string(j, "phase", at);
  r.accuracy = get_double(j, "accuracy", at);
  r.precision = get_double(j, "precision", at);
  r.recall = get_double(j, "recall", at);
  r.f1 = get_double(j, "f1", at);
  r.loss = get_double(j, "loss", at);
  r.train_loss = get_double(j, "train_loss", at);
  r.test_samples = get_int(j, "test_samples", at);
  r.train_samples = get_int(j, "train_samples", at);
  r.bytes_up = get_int(j, "bytes_up", at);
  r.bytes_down = get_int(j, "bytes_down", at);
  r.participated = get_bool(j, "participated", at);
  r.round_seconds = get_double(j, "round_seconds", at);
  // Results written before exact_match existed lack it: NaN, as for a classification run.
  r.exact_match = j.contains("exact_match") ? get_double(j, "exact_match", at)
                                            : std::numeric_limits<double>::quiet_NaN();
  r.drift = j.contains("drift") ? get_double(j, "drift", at) : std::numeric_limits<double>::quiet_NaN();
  r.staleness = j.contains("staleness") ? get_double(j, "staleness", at) : std::numeric_limits<double>::quiet_NaN();
  return r;
}

RoundSummary parse_summary(const json& j, const Origin& at) {
  RoundSummary s;
  s.run = get_string(j, "run", at);
  s.strategy = get_string(j, "strategy", at);
  s.round = get_int32(j, "round", at);
  s.total_rounds = get_int32(j, "total_rounds", at);
  s.clients_answered = get_int32(j, "clients_answered", at);
  s.clients_selected = get_int32(j, "clients_selected", at);
  s.mean_accuracy = get_double(j, "mean_accuracy", at);
  s.min_accuracy = get_double(j, "min_accuracy", at);
  s.max_accuracy = get_double(j, "max_accuracy", at);
  s.seconds = get_double(j, "seconds", at);
  // Results written before fault counts existed lack them.
  s.clients_failed = j.contains("clients_failed") ? get_int32(j, "clients_failed", at) : 0;
  s.clients_late = j.contains("clients_late") ? get_int32(j, "clients_late", at) : 0;
  // Older results lack the aggregation error and ε: NaN, as for a run that did not measure them.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.aggregation_error = j.contains("aggregation_error") ? get_double(j, "aggregation_error", at) : nan;
  s.epsilon = j.contains("epsilon") ? get_double(j, "epsilon", at) : nan;
  s.virtual_seconds = j.contains("virtual_seconds") ? get_double(j, "virtual_seconds", at) : nan;
  s.mean_staleness = j.contains("mean_staleness") ? get_double(j, "mean_staleness", at) : nan;
  s.max_staleness = j.contains("max_staleness") ? get_double(j, "max_staleness", at) : nan;
  s.global_accuracy = j.contains("global_accuracy") ? get_double(j, "global_accuracy", at) : nan;
  s.global_loss = j.contains("global_loss") ? get_double(j, "global_loss", at) : nan;
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
  out.info.experiment = get_string(j, "experiment", at);
  out.info.run = get_string(j, "run", at);
  out.info.strategy = get_string(j, "strategy", at);
  out.info.clients = get_int32(j, "clients", at);
  out.info.rounds = get_int32(j, "rounds", at);
  const json& seed = field(j, "seed", at);
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
    fail(at, "field \"seed\" must be a non-negative integer, got " + seed.dump());
  out.info.seed = seed.get<uint64_t>();
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
