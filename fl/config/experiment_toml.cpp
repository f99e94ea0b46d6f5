// fl/config/experiment_toml.cpp — an experiment file (and its --set options) into validated runs: sweeps, rows, overrides.
//
// The keys themselves are the schema's rows (fl/config/experiment_schema.cpp); the checks across
// keys are fl/config/experiment_checks.cpp. Here: walking the file, expanding sweep axes and
// [[rows]], merging --set, and the texts made from the schema (--keys, config.toml).
#include "fl/config/experiment_toml.hpp"
#include "fl/config/experiment_checks.hpp"
#include "fl/config/toml_text_check.hpp"
#include "support/join.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

namespace fedvlm {

using namespace config_detail;

namespace {

/// The warnings for keys that do nothing in every run of the plan (in a sweep, a key that acts
/// in some runs, e.g. lora.rank beside strategy.name = ["plora", "full"], is meant for those),
/// each once; under `strict` the first is a ConfigError instead.
void report_keys_without_effect(ExperimentPlan& plan, const std::map<std::string, NoEffect>& found) {
  for (const auto& [path, ne] : found) {
    if (ne.runs < plan.runs.size()) continue;
    const std::string message = ne.message + (plan.runs.size() > 1 ? " in every run of the sweep" : "");
    if (plan.runs.front().strict)
      throw ConfigError(message + "; remove the key, or set strict = false to only be warned");
    plan.warnings.push_back(message);
  }
}

/// Where `node` was written: its file position, or, for a `--set` value (parsed from its own
/// text, so positions in it mean nothing to the user), the option itself.
Where where_of(const std::string& file, const std::string& path, const toml::node& node,
               const toml::key* key = nullptr) {
  const toml::source_region& src = node.source();
  if (src.path && *src.path != file) return Where{*src.path, path, {}};
  return Where{file, path, key != nullptr && key->source().begin.line != 0 ? key->source().begin : src.begin};
}

struct Assignment {
  const KeyDef* def;
  const toml::node* node;
  Where where;
};
struct Axis {
  const KeyDef* def;
  std::vector<const toml::node*> values;
  Where where;
};

void collect(const toml::table& table, const std::string& prefix, const std::string& file,
             std::vector<Assignment>& fixed, std::vector<Axis>& axes) {
  for (const auto& [k, node] : table) {
    const std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    const Where w = where_of(file, path, node, &k);
    const KeyDef* def = find_key(path);
    if (def == nullptr && node.is_table()) {
      bool known_section = false;
      for (const auto& d : schema())
        if (d.path.rfind(path + ".", 0) == 0) known_section = true;
      if (!known_section) {
        std::set<std::string> sections;
        for (const auto& d : schema())
          if (auto dot = d.path.find('.'); dot != std::string::npos) sections.insert(d.path.substr(0, dot));
        std::string list;
        for (const auto& s : sections) list += (list.empty() ? "[" : ", [") + s + "]";
        throw ConfigError(w.location() + ": unknown section [" + path + "] (known sections: " + list + ")");
      }
      collect(*node.as_table(), path, file, fixed, axes);
      continue;
    }
    if (def == nullptr) {
      const auto dot = path.rfind('.');
      const std::string sec = dot == std::string::npos ? "" : path.substr(0, dot);
      w.fail(std::string("unknown key") + " (known keys" +
             (sec.empty() ? " at top level" : " in [" + sec + "]") + ": " + known_keys_under(sec) + ")");
    }
    if (is_scalar(def->kind) && node.is_array()) {
      Axis axis{def, {}, w};
      for (const auto& e : *node.as_array()) axis.values.push_back(&e);
      if (axis.values.empty()) w.fail("a sweep needs at least one value");
      axes.push_back(std::move(axis));
    } else if (def->kind == Kind::int_matrix || def->kind == Kind::string_list || def->kind == Kind::int_list ||
               !node.is_array()) {
      fixed.push_back({def, &node, w});
    }
  }
}

std::string short_key(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

/// Name of a swept key in run labels: "strategy.name" reads better as "strategy".
std::string label_key(const std::string& path) {
  const std::string k = short_key(path);
  if (k == "name" && path != "name") return path.substr(0, path.rfind('.'));
  return k;
}

std::string value_text(const toml::node& n) {
  if (auto s = n.value_exact<std::string>()) return *s;
  if (auto v = n.value_exact<int64_t>()) return std::to_string(*v);
  if (auto d = n.value_exact<double>()) return shortest(*d);
  if (auto b = n.value_exact<bool>()) return *b ? "true" : "false";
  return {};
}

std::string resolved_toml(const ExperimentConfig& c) {
  std::ostringstream os;
  os << "# Resolved configuration of run '" << c.run_label << "' (every key, defaults included).\n";
  std::string section;
  for (const auto& k : schema()) {
    const auto dot = k.path.rfind('.');
    const std::string sec = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (sec != section) {
      os << "\n[" << sec << "]\n";
      section = sec;
    }
    os << short_key(k.path) << " = " << k.get(c) << "\n";
  }
  return os.str();
}


/// toml++ reports a number beyond a double's range (1e400) as one it "could not interpret",
/// which reads like a typo: say what is wrong with it instead.
std::string number_error(const std::string& description) {
  const auto open = description.find('\'');
  const auto close = open == std::string::npos ? open : description.find('\'', open + 1);
  if (description.find("could not be interpreted") == std::string::npos || close == std::string::npos)
    return description;
  std::string number = description.substr(open + 1, close - open - 1);
  number.erase(std::remove(number.begin(), number.end(), '_'), number.end());
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(number.c_str(), &end);
  if (end == number.c_str() || *end != '\0' || errno != ERANGE || !std::isinf(v)) return description;
  return "the number " + number + " is too large: the largest a number can be is about 1.8e308 "
         "(and every key's range is far below that; see fedvlm-sim --keys)";
}

toml::table parse_toml(std::string_view text, const std::string& file) {
  if (auto bad = non_ascii_outside_strings(text)) throw ConfigError(file + ":" + *bad);
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(file + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                      ": TOML syntax error: " + number_error(std::string(e.description())));
  }
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

/// One `--set KEY=VALUE` as a table of its own, every node's source named "--set KEY=VALUE".
/// VALUE is a TOML value; a bare word that is not one is taken as a string, so that
/// `--set strategy.name=flora` works without shell-quoted TOML quotes.
toml::table parse_override(const std::string& text) {
  const std::string source = "--set " + text;
  const auto eq = text.find('=');
  if (text.find_first_of("\r\n") != std::string::npos)
    throw ConfigError(source + ": a --set value must be one line");
  if (eq == std::string::npos || trim(text.substr(0, eq)).empty())
    throw ConfigError(source + ": expected KEY=VALUE, e.g. --set federation.rounds=3");
  const std::string key = trim(text.substr(0, eq));
  const std::string value = trim(text.substr(eq + 1));
  if (value.empty()) throw ConfigError(source + ": no value after '=' (an empty string is --set '" + key + "=\"\"')");
  if (auto bad = non_ascii_outside_strings(key)) throw ConfigError(source + ": the key: " + bad->substr(bad->find(' ') + 1));
  if (non_ascii_outside_strings(value) && value.find_first_of("\"'[{") != 0)
    return toml::parse(key + " = " + quote(value), source); // a bare word with accents: a string
  if (auto bad = non_ascii_outside_strings(value)) throw ConfigError(source + ": the value: " + bad->substr(bad->find(' ') + 1));
  try {
    return toml::parse(key + " = " + value, source);
  } catch (const toml::parse_error& e) {
    if (value.find_first_of("\"'[{") != 0) {
      try {
        return toml::parse(key + " = " + quote(value), source);
      } catch (const toml::parse_error&) {
        // the key itself is bad: report the first error
      }
    }
    throw ConfigError(source + ": expected KEY=VALUE with a TOML value (" + std::string(e.description()) +
                      "), e.g. --set federation.rounds=3 or --set 'federation.clients=[2, 4]'");
  }
}

/// Puts `over` over `doc`, key by key: tables merge, anything else replaces what the file said.
void merge_override(toml::table& doc, toml::table&& over) {
  for (auto&& [k, v] : over) {
    toml::node* existing = doc.get(k.str());
    if (existing != nullptr && existing->is_table() && v.is_table()) {
      merge_override(*existing->as_table(), std::move(*v.as_table()));
    } else {
      doc.insert_or_assign(k, std::move(v));
    }
  }
}

ExperimentPlan grid_plan(toml::table doc, const std::filesystem::path& source_name,
                         const std::vector<std::string>& overrides, const std::string& row = {}) {
  const std::string file = source_name.string();
  std::vector<std::string> override_sources;
  for (const auto& o : overrides) {
    merge_override(doc, parse_override(o));
    override_sources.push_back("--set " + o);
  }
  std::vector<Assignment> fixed;
  std::vector<Axis> axes;
  collect(doc, "", file, fixed, axes);

  // toml++ keeps keys sorted; the grid follows the file's order instead, then that of the
  // --set options.
  auto rank = [&](const Axis& a) {
    const auto it = std::find(override_sources.begin(), override_sources.end(), a.where.file);
    return it == override_sources.end() ? std::size_t{0} : 1 + static_cast<std::size_t>(it - override_sources.begin());
  };
  std::stable_sort(axes.begin(), axes.end(), [&](const Axis& a, const Axis& b) {
    return std::make_tuple(rank(a), a.where.pos.line, a.where.pos.column) <
           std::make_tuple(rank(b), b.where.pos.line, b.where.pos.column);
  });

  KeyPlaces where;
  for (const auto& a : fixed) where.emplace(a.def->path, a.where);
  for (const auto& a : axes) where.emplace(a.def->path, a.where);

  ExperimentPlan plan;
  std::map<std::string, int> short_uses;
  for (const auto& a : axes) {
    plan.sweep_keys.push_back(a.def->path);
    ++short_uses[label_key(a.def->path)];
  }
  // Labels use short names ("clients=4") unless two swept keys share one (train.lr, pretrain.lr).
  auto axis_label = [&](const std::string& path) {
    return short_uses[label_key(path)] > 1 ? path : label_key(path);
  };
  auto label_value = [](std::string v) {
    // Labels name directories: nothing in a value may leave OUTPUT_DIR/NAME or cut the name short.
    for (char& ch : v)
      if (ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '_';
    return v;
  };

  // A few hundred bytes of axes can describe 10^8 runs: refuse before building any of them.
  std::size_t grid = 1;
  for (const auto& a : axes) {
    grid *= a.values.size();
    if (grid > kMaxSweepRuns)
      a.where.fail("the sweep grid reaches more than " + std::to_string(kMaxSweepRuns) +
                   " runs at this axis (each axis multiplies the runs); split the study into several files");
  }

  // Walk the grid like an odometer: the last axis varies fastest.
  std::vector<std::size_t> pos(axes.size(), 0);
  std::set<std::string> labels;
  std::map<std::string, NoEffect> no_effect;
  for (;;) {
    ExperimentConfig c;
    c.source_file = source_name;
    for (const auto& a : fixed) assign(*a.def, c, *a.node, a.where);
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < axes.size(); ++i) {
      const toml::node& v = *axes[i].values[pos[i]];
      assign(*axes[i].def, c, v, where_of(file, axes[i].def->path, v));
      c.sweep[axes[i].def->path] = value_text(v);
      parts.push_back(axis_label(axes[i].def->path) + "=" + label_value(value_text(v)));
    }
    if (!row.empty()) {
      c.sweep["row"] = row;
      parts.insert(parts.begin(), row);
    }
    c.run_label = parts.empty() ? "run" : join(parts, ",");
    if (const std::string why = dir_name_problem(c.run_label); !why.empty())
      throw ConfigError(file + ": the sweep label '" + c.run_label + "' cannot be a directory name (" + why +
                        "); shorten the swept values");
    if (!labels.insert(c.run_label).second)
      throw ConfigError(file + ": the sweep produces run '" + c.run_label +
                        "' twice: sweep values must be distinct");
    validate(c, where, file);
    check_keys_have_effect(c, where, no_effect);
    c.resolved_toml = resolved_toml(c);
    plan.runs.push_back(std::move(c));

    std::size_t i = axes.size();
    while (i > 0) {
      --i;
      if (++pos[i] < axes[i].values.size()) break;
      pos[i] = 0;
      if (i == 0) {
        report_keys_without_effect(plan, no_effect);
        return plan;
      }
    }
    if (axes.empty()) {
      report_keys_without_effect(plan, no_effect);
      return plan;
    }
  }
}

/// `[[rows]]`: runs that differ in several keys at once (a paper's table), each a table with a
/// `label` and the keys it sets over the rest of the file (then --set); a grid of the file's
/// other axes runs within each row. Without rows, the grid alone.
ExperimentPlan plan_from_table(toml::table doc, const std::filesystem::path& source_name,
                               const std::vector<std::string>& overrides) {
  const std::string file = source_name.string();
  const toml::node* rows_node = doc.get("rows");
  if (rows_node == nullptr) return grid_plan(std::move(doc), source_name, overrides);
  const Where rows_where{file, "rows", rows_node->source().begin};
  const toml::array* rows = rows_node->as_array();
  if (rows == nullptr || rows->empty() || !rows->is_array_of_tables())
    rows_where.fail("expects one or more [[rows]] tables, each with a label and the keys the row sets");
  toml::table rest = doc; // positions are read from `doc`'s own nodes: copies lose them
  rest.erase("rows");
  ExperimentPlan plan;
  std::set<std::string> labels;
  for (const auto& r : *rows) {
    toml::table row = *r.as_table();
    const Where row_where{file, "rows", r.source().begin};
    const toml::node* label_node = r.as_table()->get("label");
    if (label_node == nullptr) row_where.fail("a row needs a label = \"...\" (its run's name)");
    const std::string label = read_string(*label_node, Where{file, "rows.label", label_node->source().begin});
    if (label.empty() || label.find_first_of("=,/\\ ") != std::string::npos || dir_name_problem(label) != "")
      Where{file, "rows.label", label_node->source().begin}.fail("a row label must be a non-empty directory name without '=', ',', '/' or spaces, got \"" + label + "\"");
    if (!labels.insert(label).second) Where{file, "rows.label", label_node->source().begin}.fail("row '" + label + "' appears twice");
    row.erase("label");
    toml::table merged = rest;
    merge_override(merged, std::move(row));
    ExperimentPlan part = grid_plan(std::move(merged), source_name, overrides, label);
    for (auto& c : part.runs) plan.runs.push_back(std::move(c));
    for (const auto& k : part.sweep_keys)
      if (std::find(plan.sweep_keys.begin(), plan.sweep_keys.end(), k) == plan.sweep_keys.end()) plan.sweep_keys.push_back(k);
  }
  return plan;
}

} // namespace

ExperimentPlan parse_experiment(std::string_view text, const std::filesystem::path& source_name,
                                const std::vector<std::string>& overrides) {
  return plan_from_table(parse_toml(text, source_name.string()), source_name, overrides);
}

ExperimentPlan load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (std::filesystem::is_directory(status))
    throw ConfigError(file.string() + ": is a directory, expected an experiment .toml file");
  // Judged from its type, before opening: opening a FIFO for reading blocks until a writer
  // comes, and a device or socket never ends.
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    const auto t = status.type();
    const char* what = t == std::filesystem::file_type::fifo        ? "a FIFO (named pipe)"
                       : t == std::filesystem::file_type::socket    ? "a socket"
                       : t == std::filesystem::file_type::character ? "a character device"
                       : t == std::filesystem::file_type::block     ? "a block device"
                                                                    : "a special file";
    throw ConfigError(file.string() + ": is not a regular file (it is " + what +
                      "), expected an experiment .toml file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot open the experiment file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(file.string() + ": read error");
  toml::table doc = parse_toml(ss.str(), file.string());
  // An empty file would run every default, which nobody means: most likely the wrong file.
  if (doc.empty())
    throw ConfigError(file.string() + ": no settings (the file is empty or holds only comments); expected an "
                                      "experiment .toml file such as experiments/quickstart.toml");
  return plan_from_table(std::move(doc), file, overrides);
}

std::string string_override(const std::string& key, const std::string& value) { return key + "=" + quote(value); }

std::string describe_experiment_keys() {
  std::ostringstream os;
  const ExperimentConfig defaults;
  std::string section = "-";
  for (const auto& k : schema()) {
    const auto dot = k.path.rfind('.');
    const std::string sec = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (sec != section) {
      os << (sec.empty() ? "\n(top level)\n" : "\n[" + sec + "]\n");
      section = sec;
    }
    os << "  " << short_key(k.path) << " (" << kind_name(k.kind) << ", default " << k.get(defaults);
    if (k.has_range()) os << ", range " << range_text(k) << (k.range_note.empty() ? "" : ": " + k.range_note);
    os << ")\n      " << k.help << "\n";
    if (*k.applies != '\0') os << "      applies when " << k.applies << "\n";
  }
  os << "\nA scalar key written as an array is a sweep axis: clients = [2, 4, 6, 8] runs four\n"
        "experiments; several axes run their full grid.\n"
        "\nOn the command line, --set SECTION.KEY=VALUE sets any key over the file (VALUE is TOML;\n"
        "a bare word is a string), e.g. --set federation.rounds=3 --set 'federation.clients=[2, 4]'.\n";
  return os.str();
}

std::string default_resolved_toml() { return resolved_toml(ExperimentConfig{}); }

} // namespace fedvlm
