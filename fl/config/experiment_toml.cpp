// fl/config/experiment_toml.cpp — the experiment schema: one row per key (type, default, help, setter).
#include "fl/config/experiment_toml.hpp"
#include "support/join.hpp"
#include "support/byte_size.hpp"
#include "support/usable_cores.hpp"
#include "fl/runtime/compute_device.hpp"
#include "fl/config/model_family.hpp"
#include "fl/config/toml_text_check.hpp"
#include "fl/config/device_trace.hpp"

#include <toml++/toml.h>


#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <tuple>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace fedvlm {

std::string to_string(OptimizerKind kind) {
  switch (kind) {
  case OptimizerKind::sgd: return "sgd";
  case OptimizerKind::adamw: return "adamw";
  case OptimizerKind::adam: return "adam";
  }
  return "?";
}
std::string to_string(Weighting w) { return w == Weighting::samples ? "samples" : "uniform"; }
std::string to_string(FederationMode m) { return m == FederationMode::sync ? "sync" : "async"; }
std::string to_string(StalenessRule r) {
  switch (r) {
  case StalenessRule::inverse_sqrt: return "inverse_sqrt";
  case StalenessRule::constant: return "constant";
  case StalenessRule::polynomial: return "polynomial";
  }
  return "?";
}
std::string to_string(PrivacyMode m) { return m == PrivacyMode::central ? "central" : "local"; }
std::string to_string(CompressionKind kind) {
  switch (kind) {
  case CompressionKind::none: return "none";
  case CompressionKind::float16: return "float16";
  case CompressionKind::int8: return "int8";
  case CompressionKind::int8_row: return "int8_row";
  case CompressionKind::topk: return "topk";
  }
  return "none";
}
std::string to_string(DelayDistribution d) {
  switch (d) {
  case DelayDistribution::fixed: return "fixed";
  case DelayDistribution::exponential: return "exponential";
  case DelayDistribution::lognormal: return "lognormal";
  }
  return "fixed";
}

namespace {

enum class Kind { integer, real, boolean, string, string_list, int_list, int_matrix };

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

/// Where a key sits, for messages.
struct Where {
  std::string file;
  std::string key;
  toml::source_position pos{}; ///< line 0 for a value given on the command line
  /// "FILE:LINE:COL", or the `--set KEY=VALUE` option a value came from.
  [[nodiscard]] std::string location() const {
    std::ostringstream os;
    os << file;
    if (pos.line != 0) os << ":" << pos.line << ":" << pos.column;
    return os.str();
  }
  [[nodiscard]] std::string prefix() const { return location() + ": key '" + key + "'"; }
  [[noreturn]] void fail(const std::string& reason) const {
    throw ConfigError(prefix() + ": " + reason);
  }
};

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
template <class T> std::string fmt_list(const std::vector<T>& v) {
  if constexpr (std::is_same_v<T, std::string>) return "[" + join_with(v, ", ", quote) + "]";
  else return "[" + join(v) + "]";
}

using Setter = std::function<void(ExperimentConfig&, const toml::node&, const Where&)>;
using Getter = std::function<std::string(const ExperimentConfig&)>;

struct KeyDef {
  std::string path;
  Kind kind;
  const char* help;
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
  [[nodiscard]] bool has_range() const { return !std::isnan(lo); }
};

// Helpers that build a row from a member accessor, so each key is one line below.
template <class F> KeyDef int_key(std::string p, const char* help, F member) {
  return {p, Kind::integer, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) {
            auto& ref = member(c);
            using T = std::remove_reference_t<decltype(ref)>;
            const int64_t v = read_int(n, w);
            if constexpr (std::is_unsigned_v<T>) {
              if (v < 0) w.fail("must be >= 0 (got " + std::to_string(v) + ")");
            } else {
              if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                  v > static_cast<int64_t>(std::numeric_limits<T>::max()))
                w.fail("is out of range (got " + std::to_string(v) + ")");
            }
            ref = static_cast<T>(v);
          },
          [member](const ExperimentConfig& c) {
            return std::to_string(member(const_cast<ExperimentConfig&>(c)));
          }};
}
template <class F> KeyDef real_key(std::string p, const char* help, F member) {
  return {p, Kind::real, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_real(n, w); },
          [member](const ExperimentConfig& c) { return fmt_real(member(const_cast<ExperimentConfig&>(c))); }};
}
template <class F> KeyDef bool_key(std::string p, const char* help, F member) {
  return {p, Kind::boolean, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_bool(n, w); },
          [member](const ExperimentConfig& c) {
            return std::string(member(const_cast<ExperimentConfig&>(c)) ? "true" : "false");
          }};
}
template <class F> KeyDef string_key(std::string p, const char* help, F member) {
  return {p, Kind::string, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_string(n, w); },
          [member](const ExperimentConfig& c) {
            return quote(std::string(member(const_cast<ExperimentConfig&>(c))));
          }};
}
/// A string key holding a filesystem path.
template <class F> KeyDef path_key(std::string p, const char* help, F member) {
  return {p, Kind::string, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_string(n, w); },
          [member](const ExperimentConfig& c) { return quote(member(const_cast<ExperimentConfig&>(c)).string()); }};
}
/// A string key whose text maps to an enum through `parse` (which throws invalid_argument).
template <class Parse, class Print> KeyDef enum_key(std::string p, const char* help, Parse parse, Print print) {
  return {p, Kind::string, help,
          [parse](ExperimentConfig& c, const toml::node& n, const Where& w) {
            try {
              parse(c, read_string(n, w));
            } catch (const std::invalid_argument& e) {
              w.fail(e.what());
            }
          },
          [print](const ExperimentConfig& c) { return quote(print(c)); }};
}

// -- ranges ---------------------------------------------------------------------
// Each numeric key is bounded to what it can mean: a bound is not a limit of the type but the
// point beyond which the value is certainly a mistake (and would hang, overflow or exhaust).

constexpr double kUnbounded = std::numeric_limits<double>::infinity();
/// Durations: a simulated or real wait longer than a year is a typo, and far larger ones
/// overflow the clocks' nanosecond counts.
constexpr double kYearSeconds = 365.0 * 24 * 3600;
/// Rates and weights applied to float32 tensors (learning rates, decay, FedProx mu): larger
/// ones overflow float32 on the first step.
constexpr double kMaxRate = 1e4;
constexpr double kMaxBatch = 65536;
/// Each client is an actor holding its own share of the data.
constexpr double kMaxClients = 100000;

std::string cores_note() {
  const int n = usable_cores();
  return "4 x the " + std::to_string(n) + " core" + (n == 1 ? "" : "s") + " this process may use";
}

std::string bound_text(Kind kind, double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Whole bounds read as integers (1000000, not 1e+06), for real keys too.
  if (kind == Kind::integer || kind == Kind::int_list || (v == std::floor(v) && std::fabs(v) < 1e15))
    return std::to_string(static_cast<int64_t>(v));
  return shortest(v);
}
/// "[1, 100000]", "(0, 1]", ">= 0".
std::string range_text(const KeyDef& k) {
  if (std::isinf(k.hi)) return (k.lo_open ? "> " : ">= ") + bound_text(k.kind, k.lo);
  return (k.lo_open ? "(" : "[") + bound_text(k.kind, k.lo) + ", " + bound_text(k.kind, k.hi) + (k.hi_open ? ")" : "]");
}
bool in_range(const KeyDef& k, double v) {
  return (k.lo_open ? v > k.lo : v >= k.lo) && (k.hi_open ? v < k.hi : v <= k.hi);
}
void check_range_of(const KeyDef& k, const toml::node& n, const Where& w) {
  std::string got;
  double v = 0;
  if (auto i = n.value_exact<int64_t>()) v = static_cast<double>(*i), got = std::to_string(*i);
  else if (auto d = n.value_exact<double>()) v = *d, got = shortest(*d);
  else return; // not a number: the setter has judged it
  if (!in_range(k, v))
    w.fail("must be in " + range_text(k) + (k.range_note.empty() ? "" : " (" + k.range_note + ")") + ", got " + got);
}
/// Sets key `k` from `n`, then checks the value (or each element of an array) against k's range.
void assign(const KeyDef& k, ExperimentConfig& c, const toml::node& n, const Where& w) {
  k.set(c, n, w);
  if (!k.has_range()) return;
  if (const toml::array* a = n.as_array())
    for (const auto& e : *a) check_range_of(k, e, w);
  else
    check_range_of(k, n, w);
}

#define M(expr) [](ExperimentConfig& c) -> auto& { return expr; }

/// Whether the strategy trains LoRA adapters (full fine-tuning and linear probes do not).
bool trains_lora(const ExperimentConfig& c) {
  const StrategySpec& spec = strategy_spec(c.strategy);
  return !spec.train_base && !spec.train_head;
}

/// The arch list of fl/config/model_family, kept alive for the key table's help pointer.
const char* arch_help() {
  static const std::string help = model_arch_list();
  return help.c_str();
}

const std::vector<KeyDef>& schema() {
  static const std::vector<KeyDef> keys = {
      string_key("name", "experiment name; results go to OUTPUT_DIR/NAME/RUN", M(c.name)),
      path_key("output_dir", "directory for results (relative to the working directory)", M(c.output_dir)),
      bool_key("strict", "a key that has no effect in the chosen configuration is an error (otherwise a warning); also --strict",
               M(c.strict)),
      int_key("seed", "seed of every random choice (partitions, inits, shuffles, dropout)", M(c.seed)).in(0, kUnbounded),
      string_key("device",
                 "\"cpu\", \"cuda\" or \"cuda:N\": where the models run (falls back to cpu with a message "
                 "when this build or machine has no such GPU)",
                 M(c.device)),
      KeyDef{"threads", Kind::integer,
       "LibTorch intra-op threads of each scheduler worker: \"auto\" (cores / scheduler.concurrency, at least 1; "
       "cores from the process's CPU affinity) or an integer >= 1",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) {
         if (auto s = n.value_exact<std::string>()) {
           if (*s != "auto") w.fail("expects \"auto\" or an integer >= 1, got \"" + *s + "\"");
           c.threads = 0;
           return;
         }
         if (!n.value_exact<int64_t>()) w.fail("expects \"auto\" or an integer >= 1");
         const int64_t v = read_int(n, w);
         if (v < 1 || v > std::numeric_limits<int>::max())
           w.fail("expects \"auto\" or an integer >= 1, got " + std::to_string(v));
         c.threads = static_cast<int>(v);
       },
       [](const ExperimentConfig& c) { return c.threads == 0 ? std::string("\"auto\"") : std::to_string(c.threads); }}
          .in(1, 4.0 * usable_cores(), cores_note()),

      string_key("model.arch", arch_help(), M(c.model.arch)),
      path_key("model.weights", "optional .safetensors with torchvision parameter names", M(c.model.weights)),
      path_key("model.tokenizer", "Florence-2: tokenizer.json or its folder (default: beside model.weights)", M(c.model.tokenizer))
          .when("model.arch is a florence2_* model (the others read no text)", {"model.arch"},
                [](const ExperimentConfig& c) { return model_arch(c.model.arch).data == ModelData::vqa; }),
      real_key("model.dropout", "classifier dropout probability", M(c.model.dropout)).in(0, 1).open_hi(),
      string_key("model.precision", "Florence-2: float32 | bfloat16 (frozen weights and activations; adapters stay float32)",
                 M(c.model.precision)),

      string_key("data.dataset", "fashion_mnist | mnist | cifar10 | vqa_folder (metadata.jsonl + images) | synthetic_vqa", M(c.data.dataset)),
      path_key("data.path", "directory holding the dataset files (default: /usr/share/datasets/fashion-mnist, for mnist /usr/share/datasets/mnist)", M(c.data.path)),
      int_key("data.max_samples", "cap on the federated sample pool (0 = all)", M(c.data.max_samples)).in(0, 1e8),
      real_key("data.test_fraction", "share of each client's data held out as its test split", M(c.data.test_fraction)).in(0, 1).open_hi(),
      string_key("data.domain_field", "VQA: metadata.jsonl field naming each sample's domain", M(c.data.domain_field))
          .when("data.dataset = \"vqa_folder\"", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.dataset == "vqa_folder"; }),
      string_key("data.prompt_prefix", "VQA: text put before every question", M(c.data.prompt_prefix))
          .when("a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.is_vqa(); }),
      int_key("data.max_answer_tokens", "VQA: answer tokens kept as labels", M(c.data.max_answer_tokens)).in(2, 1024, "<s> and </s> at least; Florence-2 reads at most 1024 positions")
          .when("a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.is_vqa(); }),
      int_key("data.max_new_tokens", "VQA: tokens generated when scoring exact match", M(c.data.max_new_tokens)).in(1, 1024, "Florence-2 reads at most 1024 positions")
          .when("a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.is_vqa(); }),
      int_key("data.num_beams", "VQA: beam width for generated answers (1 = greedy; Florence-2 uses 3)", M(c.data.num_beams)).in(1, 64)
          .when("a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.is_vqa(); }),
      int_key("data.no_repeat_ngram_size", "VQA: ban repeated n-grams when generating (Florence-2 uses 3; 0 = off)",
              M(c.data.no_repeat_ngram_size)).in(0, 1024)
          .when("a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.is_vqa(); }),
      int_key("data.synthetic_domains", "synthetic_vqa: number of domains generated", M(c.data.synthetic_domains)).in(1, 1000)
          .when("data.dataset = \"synthetic_vqa\"", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.dataset == "synthetic_vqa"; }),
      int_key("data.synthetic_per_domain", "synthetic_vqa: samples per domain", M(c.data.synthetic_per_domain)).in(2, 100000, "a train and a test sample at least")
          .when("data.dataset = \"synthetic_vqa\"", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.dataset == "synthetic_vqa"; }),
      {"data.class_names", Kind::string_list, "CLIP: the classes' names in label order (default: the dataset's)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.data.class_names = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.data.class_names); }},

      bool_key("pretrain.enabled", "train the whole backbone centrally on a public split first (cached)", M(c.pretrain.enabled)),
      int_key("pretrain.public_samples", "size of the public split, disjoint from client data", M(c.pretrain.public_samples)).in(0, 1e7)
          .when("pretrain.enabled = true", {"pretrain.enabled"},
                [](const ExperimentConfig& c) { return c.pretrain.enabled; }),
      int_key("pretrain.epochs", "pretraining epochs", M(c.pretrain.epochs)).in(1, 10000)
          .when("pretrain.enabled = true", {"pretrain.enabled"},
                [](const ExperimentConfig& c) { return c.pretrain.enabled; }),
      real_key("pretrain.lr", "pretraining learning rate (SGD, momentum 0.9)", M(c.pretrain.lr)).in(0, kMaxRate).open_lo()
          .when("pretrain.enabled = true", {"pretrain.enabled"},
                [](const ExperimentConfig& c) { return c.pretrain.enabled; }),
      int_key("pretrain.batch_size", "pretraining batch size", M(c.pretrain.batch_size)).in(1, kMaxBatch)
          .when("pretrain.enabled = true", {"pretrain.enabled"},
                [](const ExperimentConfig& c) { return c.pretrain.enabled; }),
      path_key("pretrain.cache_dir", "where pretrained checkpoints are cached (relative to output_dir)", M(c.pretrain.cache_dir)),

      enum_key("partition.scheme", "iid | shards | dirichlet | by_label_group | by_domain (VQA)",
               [](ExperimentConfig& c, const std::string& s) { c.partition.scheme = partition_scheme_from_string(s); },
               [](const ExperimentConfig& c) { return to_string(c.partition.scheme); }),
      int_key("partition.shards", "shards: total number of label-sorted shards", M(c.partition.shards)).in(0, 1e7)
          .when("partition.scheme = \"shards\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::shards; }),
      int_key("partition.shards_per_client", "shards: shards per client", M(c.partition.shards_per_client)).in(1, 100000)
          .when("partition.scheme = \"shards\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::shards; }),
      real_key("partition.beta", "dirichlet: concentration (smaller = more skewed)", M(c.partition.beta)).in(0, 1e6).open_lo()
          .when("partition.scheme = \"dirichlet\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::dirichlet; }),
      KeyDef{"partition.label_groups", Kind::int_matrix, "by_label_group: label groups, client c takes group c % n",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.partition.label_groups = read_int_matrix(n, w); },
       [](const ExperimentConfig& c) {
         std::string out = "[";
         for (std::size_t i = 0; i < c.partition.label_groups.size(); ++i)
           out += (i ? ", " : "") + fmt_list(c.partition.label_groups[i]);
         return out + "]";
       }}
          .when("partition.scheme = \"by_label_group\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::by_label_group; }),

      int_key("federation.clients", "number of simulated clients", M(c.federation.clients)).in(1, kMaxClients, "each client is an actor with data of its own; also at most the samples in the dataset"),
      int_key("federation.rounds", "communication rounds", M(c.federation.rounds)).in(1, 1e6),
      int_key("federation.clients_per_round", "clients sampled each round (0 = all)", M(c.federation.clients_per_round)).in(0, kMaxClients),
      enum_key("federation.weighting", "samples (FedAvg by sample count) | uniform (1/K, as the FedVLM equations)",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "samples") c.federation.weighting = Weighting::samples;
                 else if (s == "uniform") c.federation.weighting = Weighting::uniform;
                 else throw std::invalid_argument("unknown weighting '" + s + "' (expected samples or uniform)");
               },
               [](const ExperimentConfig& c) { return to_string(c.federation.weighting); }),
      real_key("federation.quorum", "fraction of selected clients that must answer before the timeout", M(c.federation.quorum)).in(0, 1).open_lo(),
      real_key("federation.round_timeout_s", "wall seconds a round waits for a client that does not answer at all (a lost node); simulated stragglers: round_deadline_s", M(c.federation.round_timeout_s)).in(0, kYearSeconds, "one year").open_lo(),
      enum_key("federation.mode", "sync (rounds) | async (FedBuff: buffered asynchronous aggregation on a virtual clock)",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "sync") c.federation.mode = FederationMode::sync;
                 else if (s == "async") c.federation.mode = FederationMode::async;
                 else throw std::invalid_argument("unknown mode '" + s + "' (expected sync or async)");
               },
               [](const ExperimentConfig& c) { return to_string(c.federation.mode); }),
      int_key("federation.buffer_size", "async: updates per server aggregation (0 = half the clients, at least 1)",
              M(c.federation.buffer_size)).in(0, kMaxClients)
          .when("federation.mode = \"async\"", {"federation.mode"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async; }),
      enum_key("federation.staleness", "async: weight of an update s versions old: inverse_sqrt 1/sqrt(1+s) | constant | polynomial 1/(1+s)^a",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "inverse_sqrt") c.federation.staleness = StalenessRule::inverse_sqrt;
                 else if (s == "constant") c.federation.staleness = StalenessRule::constant;
                 else if (s == "polynomial") c.federation.staleness = StalenessRule::polynomial;
                 else throw std::invalid_argument("unknown staleness rule '" + s + "' (expected inverse_sqrt, constant or polynomial)");
               },
               [](const ExperimentConfig& c) { return to_string(c.federation.staleness); })
          .when("federation.mode = \"async\"", {"federation.mode"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async; }),
      real_key("federation.staleness_exponent", "async, polynomial staleness: the exponent a", M(c.federation.staleness_exponent)).in(0, 100)
          .when("federation.mode = \"async\" and federation.staleness = \"polynomial\"", {"federation.mode", "federation.staleness"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async && c.federation.staleness == StalenessRule::polynomial; }),
      real_key("federation.server_lr", "async: server learning rate on the buffered mean update", M(c.federation.server_lr)).in(0, kMaxRate).open_lo()
          .when("federation.mode = \"async\"", {"federation.mode"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async; }),
      real_key("federation.client_seconds", "virtual clock: simulated seconds of one local epoch on a client of mean data size",
               M(c.federation.client_seconds)).in(0, kYearSeconds, "one year").open_lo(),
      real_key("federation.speed_sigma", "virtual clock: clients' lasting speed factors, lognormal with mean 1 and this log-space std (0 = equal)",
               M(c.federation.speed_sigma)).in(0, 10),
      real_key("federation.round_deadline_s", "sync: simulated seconds after which a round closes; clients that would finish later are dropped (0 = none)",
               M(c.federation.round_deadline_s)).in(0, kYearSeconds, "one year")
          .when("federation.mode = \"sync\"", {"federation.mode"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::sync; }),
      real_key("federation.overcommit", "sync: select ceil(clients_per_round x this) available clients, keep the first clients_per_round to finish",
               M(c.federation.overcommit)).in(1, 10)
          .when("federation.mode = \"sync\" and federation.clients_per_round > 0", {"federation.mode", "federation.clients_per_round"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::sync && c.federation.clients_per_round > 0; }),
      real_key("network.down_mbps", "virtual clock: clients' mean download bandwidth, Mbit/s (0 = unlimited)", M(c.network.down_mbps)).in(0, 1e6),
      real_key("network.up_mbps", "virtual clock: clients' mean upload bandwidth, Mbit/s (0 = unlimited)", M(c.network.up_mbps)).in(0, 1e6),
      real_key("network.latency_s", "virtual clock: one-way latency of each transfer, seconds", M(c.network.latency_s)).in(0, 3600),
      real_key("network.bandwidth_sigma", "virtual clock: clients' lasting bandwidth factors, lognormal with mean 1 and this log-space std (0 = equal)",
               M(c.network.bandwidth_sigma)).in(0, 10),
      path_key("network.trace", "CSV of devices: speed factor, down/up Mbit/s, latency, availability windows (README); replaces the keys above and federation.speed_sigma",
               M(c.network.trace)),
      real_key("network.trace_period_s", "network.trace: its availability windows repeat with this period (0 = they do not)",
               M(c.network.trace_period_s)).in(0, kYearSeconds, "one year")
          .when("network.trace is set", {"network.trace"}, [](const ExperimentConfig& c) { return !c.network.trace.empty(); }),
      enum_key("compression.up", "what clients send up: none | float16 | int8 (one scale per tensor) | int8_row (a scale per row) | topk (the largest entries of the update)",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "none") c.compression.up = CompressionKind::none;
                 else if (s == "float16") c.compression.up = CompressionKind::float16;
                 else if (s == "int8") c.compression.up = CompressionKind::int8;
                 else if (s == "int8_row") c.compression.up = CompressionKind::int8_row;
                 else if (s == "topk") c.compression.up = CompressionKind::topk;
                 else throw std::invalid_argument("unknown compression '" + s + "' (expected none, float16, int8, int8_row or topk)");
               },
               [](const ExperimentConfig& c) { return to_string(c.compression.up); }),
      real_key("compression.topk_fraction", "topk: the share of each tensor's update entries sent", M(c.compression.topk_fraction)).in(0, 1).open_lo()
          .when("compression.up = \"topk\"", {"compression.up"},
                [](const ExperimentConfig& c) { return c.compression.up == CompressionKind::topk; }),
      bool_key("compression.error_feedback", "topk: keep what was not sent on the client and add it to the next update", M(c.compression.error_feedback))
          .when("compression.up = \"topk\"", {"compression.up"},
                [](const ExperimentConfig& c) { return c.compression.up == CompressionKind::topk; }),

      enum_key("strategy.name", "plora | flora | ffa_lora | fedsa_lora | rolora | fedex_lora | stacking | flexlora | hetlora | full | linear_probe | local | centralized",
               [](ExperimentConfig& c, const std::string& s) { c.strategy = strategy_from_string(s); },
               [](const ExperimentConfig& c) { return to_string(c.strategy); }),
      real_key("strategy.mu", "FedProx proximal term weight, usable with any strategy (0 = off)", M(c.train.prox_mu)).in(0, kMaxRate),
      {"strategy.trainable", Kind::string_list,
       "full: the modules whose weights and biases clients train and average, e.g. [\"text_model.**\"] for CLIP's whole text encoder (globs allowed as in lora.targets; default: lora.targets)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.strategy_trainable = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.strategy_trainable); }},

      int_key("lora.rank", "LoRA rank r", M(c.lora.rank)).in(1, 4096)
          .when("the strategy trains LoRA adapters (not full, linear_probe)", {"strategy.name"},
                [](const ExperimentConfig& c) { return trains_lora(c); }),
      real_key("lora.alpha", "LoRA alpha (scale = alpha / r)", M(c.lora.alpha)).in(0, 1e6).open_lo()
          .when("the strategy trains LoRA adapters (not full, linear_probe)", {"strategy.name"},
                [](const ExperimentConfig& c) { return trains_lora(c); }),
      real_key("lora.dropout", "dropout on the LoRA input", M(c.lora.dropout)).in(0, 1).open_hi()
          .when("the strategy trains LoRA adapters (not full, linear_probe)", {"strategy.name"},
                [](const ExperimentConfig& c) { return trains_lora(c); }),
      {"lora.targets", Kind::string_list, "module names to adapt, e.g. [\"classifier.0\", \"classifier.3\"]",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.lora_targets = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.lora_targets); }},
      KeyDef{"lora.client_ranks", Kind::int_list,
       "heterogeneous ranks: client k gets client_ranks[k % n] (stacking, flexlora, hetlora, local); replaces rank",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.lora_client_ranks = read_ints(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.lora_client_ranks); }}.in(1, 4096),

      int_key("train.local_epochs", "local epochs per round", M(c.train.local_epochs)).in(1, 10000),
      int_key("train.batch_size", "local batch size (0 = the client's whole local set: FedSGD's B = infinity)", M(c.train.batch_size)).in(0, kMaxBatch, "0 for the client's whole local set"),
      real_key("train.lr", "local learning rate", M(c.train.lr)).in(0, kMaxRate).open_lo(),
      enum_key("train.optimizer", "sgd | adam | adamw",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "sgd") c.train.optimizer = OptimizerKind::sgd;
                 else if (s == "adamw") c.train.optimizer = OptimizerKind::adamw;
                 else if (s == "adam") c.train.optimizer = OptimizerKind::adam;
                 else throw std::invalid_argument("unknown optimizer '" + s + "' (expected sgd, adam or adamw)");
               },
               [](const ExperimentConfig& c) { return to_string(c.train.optimizer); }),
      real_key("train.momentum", "SGD momentum", M(c.train.momentum)).in(0, 1).open_hi()
          .when("train.optimizer = \"sgd\"", {"train.optimizer"},
                [](const ExperimentConfig& c) { return c.train.optimizer == OptimizerKind::sgd; }),
      real_key("train.weight_decay", "weight decay (L2 in the gradient for sgd and adam, decoupled for adamw)", M(c.train.weight_decay)).in(0, kMaxRate),
      real_key("train.adam_eps", "Adam / AdamW epsilon", M(c.train.adam_eps)).in(0, 1).open_lo()
          .when("train.optimizer = \"adam\" or \"adamw\"", {"train.optimizer"},
                [](const ExperimentConfig& c) { return c.train.optimizer != OptimizerKind::sgd; }),
      bool_key("train.fresh_optimizer", "start every local training with a fresh optimizer (no momentum kept across rounds)",
               M(c.train.fresh_optimizer)),
      int_key("train.eval_batch_size", "evaluation batch size", M(c.train.eval_batch_size)).in(1, kMaxBatch),

      int_key("scheduler.concurrency", "jobs the device scheduler runs at once", M(c.scheduler.concurrency)).in(1, 4.0 * usable_cores(), cores_note()),
      int_key("scheduler.batch_clients",
              "clients whose local training runs as one pass (the frozen base once over their batches, each "
              "client's adapters on its own rows; full and linear_probe on cnn_mnist, mlp_2nn and probes: the "
              "clients' own tensors stacked, grouped convolutions and batched matmuls); 1 = one client at a time",
              M(c.scheduler.batch_clients)).in(1, 1024),
      enum_key("scheduler.memory_budget",
               "memory for the frozen base plus running jobs, e.g. \"20GiB\" (0 = no limit); jobs wait in the queue "
               "while more would not fit, each job's cost measured on the first ones",
               [](ExperimentConfig& c, const std::string& s) { c.scheduler.memory_budget = parse_byte_size(s); },
               [](const ExperimentConfig& c) { return byte_size_text(c.scheduler.memory_budget); }),

      string_key("monitoring.prometheus", "host:port of the Prometheus exporter (absent = off)", M(c.monitoring.prometheus)),
      string_key("monitoring.pushgateway", "Pushgateway URL pushed at each round end (absent = off)", M(c.monitoring.pushgateway)),
      real_key("monitoring.linger_seconds", "keep the exporter up this long after the run", M(c.monitoring.linger_seconds)).in(0, kYearSeconds, "one year")
          .when("monitoring.prometheus is set (an exporter to keep up)", {"monitoring.prometheus"},
                [](const ExperimentConfig& c) { return !c.monitoring.prometheus.empty(); }),

      {"clip.templates", Kind::string_list, "CLIP: prompt templates, each with one {} for the class name",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.clip.templates = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.clip.templates); }},
      {"clip.pretrain_templates", Kind::string_list,
       "CLIP pretraining here: caption templates (default: clip.templates); other ones leave the prompts to learn",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.clip.pretrain_templates = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.clip.pretrain_templates); }},

      {"faults.failing_clients", Kind::int_list, "clients that fail every round (simulated drop-outs)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.faults.failing_clients = read_ints(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.faults.failing_clients); }},
      {"faults.slow_clients", Kind::int_list, "clients that answer late (simulated stragglers)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.faults.slow_clients = read_ints(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.faults.slow_clients); }},
      real_key("faults.slow_seconds", "mean delay of a slow client's answer", M(c.faults.slow_seconds)).in(0, kYearSeconds, "one year")
          .when("faults.slow_clients is not empty or faults.slow_fraction > 0", {"faults.slow_clients", "faults.slow_fraction"},
                [](const ExperimentConfig& c) { return !c.faults.slow_clients.empty() || c.faults.slow_fraction > 0; }),
      real_key("faults.slow_fraction", "each selected client is slow in a round with this probability", M(c.faults.slow_fraction)).in(0, 1),
      enum_key("faults.slow_distribution", "fixed (exactly slow_seconds) | exponential | lognormal (mean slow_seconds)",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "fixed") c.faults.slow_distribution = DelayDistribution::fixed;
                 else if (s == "exponential") c.faults.slow_distribution = DelayDistribution::exponential;
                 else if (s == "lognormal") c.faults.slow_distribution = DelayDistribution::lognormal;
                 else throw std::invalid_argument("unknown distribution '" + s + "' (expected fixed, exponential or lognormal)");
               },
               [](const ExperimentConfig& c) { return to_string(c.faults.slow_distribution); })
          .when("faults.slow_clients is not empty or faults.slow_fraction > 0", {"faults.slow_clients", "faults.slow_fraction"},
                [](const ExperimentConfig& c) { return !c.faults.slow_clients.empty() || c.faults.slow_fraction > 0; }),
      real_key("faults.slow_sigma", "lognormal: standard deviation of log(delay)", M(c.faults.slow_sigma)).in(0, 10).open_lo()
          .when("faults.slow_distribution = \"lognormal\"", {"faults.slow_distribution"},
                [](const ExperimentConfig& c) { return c.faults.slow_distribution == DelayDistribution::lognormal; }),
      real_key("faults.dropout_probability", "each selected client drops out of a round with this probability",
               M(c.faults.dropout_probability)).in(0, 1),
      {"faults.crash_clients", Kind::int_list, "clients whose actor crashes (throws) in crash_rounds; respawned from their last state",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.faults.crash_clients = read_ints(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.faults.crash_clients); }},
      {"faults.crash_rounds", Kind::int_list, "rounds in which the crash_clients crash",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.faults.crash_rounds = read_ints(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.faults.crash_rounds); }},

      bool_key("evaluation.global_test",
               "score the global model on the dataset's official test split each round (image datasets)",
               M(c.evaluation.global_test)),
      real_key("evaluation.target_accuracy",
               "record the (interpolated) round at which the global test and the mean client accuracy first reach "
               "this, in (0, 1] (0 = off)",
               M(c.evaluation.target_accuracy)).in(0, 1, "0 = off"),
      bool_key("evaluation.stop_at_target",
               "end the run once evaluation.target_accuracy is reached (global test where on, else mean client accuracy)",
               M(c.evaluation.stop_at_target)),

      int_key("checkpoint.every", "write a checkpoint after every N-th round and the last (0 = never); see `resume`",
              M(c.checkpoint.every)).in(0, 1e6),
      int_key("checkpoint.keep", "newest checkpoints kept per run", M(c.checkpoint.keep)).in(1, 1000)
          .when("checkpoint.every > 0", {"checkpoint.every"},
                [](const ExperimentConfig& c) { return c.checkpoint.every > 0; }),

      real_key("privacy.clip_norm", "DP: clip each client's shared update (change from the global) to this L2 norm (0 = off)",
               M(c.privacy.clip_norm)).in(0, 1e6),
      real_key("privacy.noise_multiplier", "DP: Gaussian noise std = noise_multiplier x clip_norm (0 = clipping only)",
               M(c.privacy.noise_multiplier)).in(0, 1000),
      enum_key("privacy.mode", "central (noise once on the average: std sigma C / K) | local (noise on every update)",
               [](ExperimentConfig& c, const std::string& s) {
                 if (s == "central") c.privacy.mode = PrivacyMode::central;
                 else if (s == "local") c.privacy.mode = PrivacyMode::local;
                 else throw std::invalid_argument("unknown privacy mode '" + s + "' (expected central or local)");
               },
               [](const ExperimentConfig& c) { return to_string(c.privacy.mode); })
          .when("privacy.noise_multiplier > 0 (the mode places the noise)", {"privacy.noise_multiplier"},
                [](const ExperimentConfig& c) { return c.privacy.noise_multiplier > 0; }),
      real_key("privacy.delta", "DP: the delta at which epsilon is reported", M(c.privacy.delta)).in(0, 1).open_lo().open_hi()
          .when("privacy.noise_multiplier > 0 (epsilon is reported at delta)", {"privacy.noise_multiplier"},
                [](const ExperimentConfig& c) { return c.privacy.noise_multiplier > 0; }),
      real_key("privacy.target_epsilon", "DP: stop the run before epsilon would exceed this (0 = no budget)",
               M(c.privacy.target_epsilon)).in(0, 1e6),
  };
  return keys;
}

#undef M

const KeyDef* find_key(const std::string& path) {
  for (const auto& k : schema())
    if (k.path == path) return &k;
  return nullptr;
}

std::string known_keys_under(const std::string& section) {
  std::vector<std::string> keys;
  for (const auto& k : schema()) {
    const auto dot = k.path.rfind('.');
    const std::string sec = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (sec == section) keys.push_back(k.path.substr(dot == std::string::npos ? 0 : dot + 1));
  }
  return join(keys);
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

/// Why `s` cannot be one directory name under output_dir ("" when it can): the run name and
/// the sweep labels become OUTPUT_DIR/NAME/LABEL, which must stay inside OUTPUT_DIR.
std::string dir_name_problem(const std::string& s) {
  if (s.empty()) return "it is empty";
  if (s == "." || s == "..") return "'.' and '..' name no directory of their own";
  if (s.find_first_of("/\\") != std::string::npos) return "it holds a path separator";
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return "it holds a control character";
  if (s.size() > 255) return "it is longer than 255 bytes, the limit of a file name";
  return "";
}

/// A key that does nothing in some run: the message, and in how many of the plan's runs.
struct NoEffect {
  std::string message;
  std::size_t runs = 0;
};

/// Keys set (to other than their default) where they do nothing in run `c`: "key X has no
/// effect because Y", counted per key into `found`. Runs on the validated config, so every
/// condition reads settled values.
void check_keys_have_effect(const ExperimentConfig& c, const std::map<std::string, Where>& where,
                            std::map<std::string, NoEffect>& found) {
  const ExperimentConfig defaults;
  for (const auto& k : schema()) {
    if (!k.applies_if || !where.count(k.path) || k.applies_if(c)) continue;
    // A resolved config.toml (resume) writes every key: a default value is no one's intent.
    if (k.get(c) == k.get(defaults)) continue;
    std::string because;
    for (const auto& d : k.deciding_keys)
      if (const KeyDef* dk = find_key(d)) because += (because.empty() ? "" : " and ") + d + " = " + dk->get(c);
    NoEffect& ne = found[k.path];
    if (ne.message.empty())
      ne.message = where.at(k.path).prefix() + " has no effect because " + because + " (it applies when " + k.applies + ")";
    ++ne.runs;
  }
}

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

/// Cross-key checks. Each names the key at fault.
void validate(ExperimentConfig& c, const std::map<std::string, Where>& where, const std::string& file) {
  auto fail = [&](const std::string& key, const std::string& reason) {
    auto it = where.find(key);
    Where w = it != where.end() ? it->second : Where{file, key, {}};
    w.fail(reason);
  };
  auto positive = [&](const std::string& key, double v) {
    if (!(v > 0)) fail(key, "must be > 0 (got " + fmt_real(v) + ")");
  };
  if (const std::string why = dir_name_problem(c.name); !why.empty())
    fail("name", "must be one directory name inside output_dir, got " + quote(c.name) + " (" + why + ")");
  if (!valid_device_name(c.device))
    fail("device", "expected \"cpu\", \"cuda\" or \"cuda:N\", got \"" + c.device + "\"");
  if (c.threads < 0) fail("threads", "expects \"auto\" or an integer >= 1");
  const ModelArch* arch = nullptr;
  try {
    arch = &model_arch(c.model.arch);
  } catch (const std::invalid_argument&) {
    fail("model.arch", "expected one of " + model_arch_list(", ") + ", got \"" + c.model.arch + "\"");
  }
  if (c.model.dropout < 0 || c.model.dropout >= 1) fail("model.dropout", "must be in [0, 1)");
  if (c.model.precision != "float32" && c.model.precision != "bfloat16")
    fail("model.precision", "expected float32 or bfloat16, got \"" + c.model.precision + "\"" +
                                (c.model.precision == "float16" ? " (float16 needs CUDA, which the models do not use yet)" : ""));
  if (c.model.precision != "float32" && !arch->bfloat16)
    fail("model.precision", "bfloat16 is supported for the florence2_* models only");
  static const std::set<std::string> datasets = {"fashion_mnist", "mnist", "cifar10", "vqa_folder", "synthetic_vqa"};
  if (!datasets.count(c.data.dataset))
    fail("data.dataset", "expected fashion_mnist, mnist, cifar10, vqa_folder or synthetic_vqa, got \"" + c.data.dataset + "\"");
  // MNIST's files sit where Debian puts Fashion-MNIST's, under their own name.
  if (c.data.dataset == "mnist" && !where.count("data.path")) c.data.path = "/usr/share/datasets/mnist";
  if ((arch->data == ModelData::vqa) != c.data.is_vqa())
    fail("data.dataset", arch->data == ModelData::vqa
                             ? "model.arch " + c.model.arch + " needs a VQA dataset (vqa_folder or synthetic_vqa)"
                             : "a VQA dataset needs a florence2_* model.arch");
  if (c.data.is_vqa()) {
    if (c.pretrain.enabled) fail("pretrain.enabled", "pretraining is for the image classifiers only");
    if (c.data.max_answer_tokens < 2) fail("data.max_answer_tokens", "must be >= 2 (<s> and </s>)");
    if (c.data.max_new_tokens < 1) fail("data.max_new_tokens", "must be >= 1");
    if (c.data.num_beams < 1) fail("data.num_beams", "must be >= 1");
    if (c.data.no_repeat_ngram_size < 0) fail("data.no_repeat_ngram_size", "must be >= 0");
    if (c.data.synthetic_domains < 1) fail("data.synthetic_domains", "must be >= 1");
    if (c.data.synthetic_per_domain < 2) fail("data.synthetic_per_domain", "must be >= 2");
    // The classifier-head default makes no sense for Florence-2: the paper's placement instead.
    if (!where.count("lora.targets")) c.lora_targets = {"last_decoder_layer"};
    if (!where.count("lora.dropout")) c.lora.dropout = 0.1; // the paper's setting
  } else if (c.partition.scheme == PartitionScheme::by_domain) {
    fail("partition.scheme", "by_domain needs a VQA dataset with domains");
  }
  if (strategy_spec(c.strategy).train_head && arch->data == ModelData::vqa)
    fail("strategy.name", "linear_probe classifies images; " + c.model.arch + " answers questions (VQA)");
  if (arch->family == ModelFamily::clip) {
    // FLoRA's placement: the text encoder's attention projections.
    if (!where.count("lora.targets")) c.lora_targets = {"text_model.encoder.layers.*.self_attn.{q,k,v,out}_proj"};
    if (c.clip.templates.empty()) fail("clip.templates", "needs at least one template, e.g. [\"a photo of a {}.\"]");
    for (const char* key : {"clip.templates", "clip.pretrain_templates"})
      for (const auto& t : std::string(key) == "clip.templates" ? c.clip.templates : c.clip.pretrain_templates) {
        const auto first = t.find("{}");
        if (first == std::string::npos || t.find("{}", first + 2) != std::string::npos)
          fail(key, "each template needs exactly one {} for the class name; got \"" + t + "\"");
      }
    for (const auto& n : c.data.class_names)
      if (n.empty()) fail("data.class_names", "a class name is empty");
  } else {
    // Set to something else than the default (a resolved config.toml writes every key).
    if (c.clip.templates != ClipSettings{}.templates)
      fail("clip.templates", "applies to CLIP models (model.arch = clip_*) only");
    if (!c.data.class_names.empty()) fail("data.class_names", "applies to CLIP models (model.arch = clip_*) only");
    if (!c.clip.pretrain_templates.empty()) fail("clip.pretrain_templates", "applies to CLIP models (model.arch = clip_*) only");
  }
  if (c.data.max_samples < 0) fail("data.max_samples", "must be >= 0");
  if (c.evaluation.target_accuracy < 0 || c.evaluation.target_accuracy > 1)
    fail("evaluation.target_accuracy", "must be in (0, 1] (0 = off), got " + fmt_real(c.evaluation.target_accuracy));
  if (c.evaluation.stop_at_target && c.evaluation.target_accuracy == 0)
    fail("evaluation.stop_at_target", "needs evaluation.target_accuracy, the accuracy to stop at");
  if (c.evaluation.global_test) {
    if (c.data.is_vqa()) fail("evaluation.global_test", "needs an image dataset with an official test split (fashion_mnist, mnist, cifar10)");
    if (c.data.test_fraction < 0 || c.data.test_fraction >= 1)
      fail("data.test_fraction", "must be in [0, 1) (0: clients train on all their data; the global test scores the model)");
  } else if (c.data.test_fraction <= 0 || c.data.test_fraction >= 1) {
    fail("data.test_fraction", c.data.test_fraction == 0 ? "must be in (0, 1); 0 is allowed with evaluation.global_test = true"
                                                         : "must be in (0, 1)");
  }
  if (c.pretrain.enabled) {
    if (c.pretrain.public_samples < 1) fail("pretrain.public_samples", "must be >= 1");
    if (c.pretrain.epochs < 1) fail("pretrain.epochs", "must be >= 1");
    positive("pretrain.lr", c.pretrain.lr);
    if (c.pretrain.batch_size < 1) fail("pretrain.batch_size", "must be >= 1");
    if (!c.model.weights.empty())
      fail("pretrain.enabled", "cannot be combined with model.weights: pretraining starts from random weights");
  }
  if (c.federation.clients < 1) fail("federation.clients", "must be >= 1");
  {
    // Every client holds samples of its own: there cannot be more clients than samples in the
    // federated pool. The pool's size is known here for the built-in datasets (their training
    // splits) and the synthetic one; a vqa_folder's is checked when it is read.
    int64_t pool = c.data.dataset == "fashion_mnist" ? 60000
                   : c.data.dataset == "cifar10"     ? 50000
                   : c.data.dataset == "synthetic_vqa"
                       ? int64_t{c.data.synthetic_domains} * c.data.synthetic_per_domain
                       : 0;
    std::string what = pool > 0 ? "the " + std::to_string(pool) + " training samples of " + c.data.dataset : "";
    if (pool > 0 && c.pretrain.enabled) {
      pool -= c.pretrain.public_samples;
      what += " less pretrain.public_samples (" + std::to_string(c.pretrain.public_samples) + ")";
    }
    if (c.data.max_samples > 0 && (pool <= 0 || c.data.max_samples < pool)) {
      pool = c.data.max_samples;
      what = "data.max_samples (" + std::to_string(pool) + ")";
    }
    if (pool > 0 && c.federation.clients > pool)
      fail("federation.clients", "is " + std::to_string(c.federation.clients) + ", more clients than samples to give them: " +
                                     what + " (each client needs at least one)");
  }
  if (c.federation.rounds < 1) fail("federation.rounds", "must be >= 1");
  if (c.federation.clients_per_round < 0 || c.federation.clients_per_round > c.federation.clients)
    fail("federation.clients_per_round", "must be between 0 (all) and federation.clients (" +
                                             std::to_string(c.federation.clients) + ")");
  if (c.federation.quorum <= 0 || c.federation.quorum > 1) fail("federation.quorum", "must be in (0, 1]");
  positive("federation.round_timeout_s", c.federation.round_timeout_s);
  if (c.federation.round_deadline_s < 0) fail("federation.round_deadline_s", "must be >= 0 simulated seconds (0 = no deadline)");
  if (!(c.federation.overcommit >= 1) || c.federation.overcommit > 10) fail("federation.overcommit", "must be in [1, 10]");
  if (!(c.compression.topk_fraction > 0) || c.compression.topk_fraction > 1) fail("compression.topk_fraction", "must be in (0, 1]");
  if (!c.network.trace.empty()) {
    // Relative to the experiment file (resolved, so the run's config.toml names the same file).
    if (c.network.trace.is_relative() && !std::filesystem::path(file).parent_path().empty())
      c.network.trace = std::filesystem::absolute(std::filesystem::path(file).parent_path() / c.network.trace).lexically_normal();
    try {
      c.network.devices = read_device_trace(c.network.trace);
    } catch (const std::invalid_argument& e) {
      fail("network.trace", e.what());
    }
  }
  if (c.partition.scheme == PartitionScheme::shards) {
    if (c.partition.shards == 0) c.partition.shards = c.federation.clients * c.partition.shards_per_client;
    if (c.partition.shards_per_client < 1) fail("partition.shards_per_client", "must be >= 1");
    if (c.partition.shards != c.federation.clients * c.partition.shards_per_client)
      fail("partition.shards", "must equal federation.clients (" + std::to_string(c.federation.clients) +
                                   ") x partition.shards_per_client (" +
                                   std::to_string(c.partition.shards_per_client) + ") = " +
                                   std::to_string(c.federation.clients * c.partition.shards_per_client) +
                                   ", got " + std::to_string(c.partition.shards));
  }
  if (c.partition.scheme == PartitionScheme::dirichlet) positive("partition.beta", c.partition.beta);
  if (c.partition.scheme == PartitionScheme::by_label_group && c.partition.label_groups.empty())
    fail("partition.label_groups", "by_label_group needs at least one group, e.g. [[0, 1], [2, 3]]");
  if (c.lora.rank < 1) fail("lora.rank", "must be >= 1");
  for (int r : c.lora_client_ranks)
    if (r < 1) fail("lora.client_ranks", "every rank must be >= 1 (got " + std::to_string(r) + ")");
  if (!c.lora_client_ranks.empty() && !supports_client_ranks(strategy_spec(c.strategy)))
    fail("lora.client_ranks", "strategy '" + to_string(c.strategy) +
                                  "' adds factors of every client, which needs one rank for all; strategies that "
                                  "accept heterogeneous ranks: stacking, flexlora, hetlora, local");
  positive("lora.alpha", c.lora.alpha);
  if (c.lora.dropout < 0 || c.lora.dropout >= 1) fail("lora.dropout", "must be in [0, 1)");
  if (!c.strategy_trainable.empty()) {
    if (!strategy_spec(c.strategy).train_base)
      fail("strategy.trainable", "names the modules full fine-tuning trains; strategy '" + to_string(c.strategy) +
                                     (strategy_spec(c.strategy).train_head ? "' trains a linear probe"
                                                                           : "' trains LoRA adapters on lora.targets"));
    c.lora_targets = c.strategy_trainable; // the modules this run adapts, whatever the strategy
  }
  if (c.lora_targets.empty()) fail("lora.targets", "needs at least one module name");
  if (c.train.local_epochs < 1) fail("train.local_epochs", "must be >= 1");
  if (c.train.batch_size < 0) fail("train.batch_size", "must be >= 1, or 0 for the client's whole local set (full batch)");
  if (c.train.eval_batch_size < 1) fail("train.eval_batch_size", "must be >= 1");
  positive("train.lr", c.train.lr);
  positive("train.adam_eps", c.train.adam_eps);
  if (c.train.momentum < 0 || c.train.momentum >= 1) fail("train.momentum", "must be in [0, 1)");
  if (c.train.weight_decay < 0) fail("train.weight_decay", "must be >= 0");
  if (c.train.prox_mu < 0) fail("strategy.mu", "must be >= 0");
  if (c.scheduler.concurrency < 1) fail("scheduler.concurrency", "must be >= 1");
  if (c.scheduler.batch_clients < 1) fail("scheduler.batch_clients", "must be >= 1");
  if (c.monitoring.linger_seconds < 0) fail("monitoring.linger_seconds", "must be >= 0");
  if (!c.monitoring.prometheus.empty()) {
    const auto colon = c.monitoring.prometheus.rfind(':');
    const std::string port = colon == std::string::npos ? "" : c.monitoring.prometheus.substr(colon + 1);
    if (colon == 0 || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stol(port) > 65535)
      fail("monitoring.prometheus", "expected host:port, e.g. \"127.0.0.1:9464\", got \"" +
                                        c.monitoring.prometheus + "\"");
  }
  for (int id : c.faults.failing_clients)
    if (id < 0 || id >= c.federation.clients) fail("faults.failing_clients", "client " + std::to_string(id) + " does not exist");
  for (int id : c.faults.slow_clients)
    if (id < 0 || id >= c.federation.clients) fail("faults.slow_clients", "client " + std::to_string(id) + " does not exist");
  if (c.faults.slow_seconds < 0) fail("faults.slow_seconds", "must be >= 0");
  auto probability = [&](const char* key, double v) {
    if (!(v >= 0 && v <= 1)) fail(key, "must be a probability in [0, 1] (got " + fmt_real(v) + ")");
  };
  probability("faults.slow_fraction", c.faults.slow_fraction);
  probability("faults.dropout_probability", c.faults.dropout_probability);
  if (c.faults.slow_fraction > 0 && c.faults.slow_seconds <= 0)
    fail("faults.slow_fraction", "needs faults.slow_seconds > 0 (the mean delay)");
  if (!(c.faults.slow_sigma > 0) || c.faults.slow_sigma > 10) fail("faults.slow_sigma", "must be in (0, 10]");
  for (int id : c.faults.crash_clients)
    if (id < 0 || id >= c.federation.clients) fail("faults.crash_clients", "client " + std::to_string(id) + " does not exist");
  for (int r : c.faults.crash_rounds)
    if (r < 1 || r > c.federation.rounds)
      fail("faults.crash_rounds", "round " + std::to_string(r) + " is not in 1.." + std::to_string(c.federation.rounds));
  if (c.faults.crash_rounds.empty() != c.faults.crash_clients.empty())
    fail(c.faults.crash_rounds.empty() ? "faults.crash_clients" : "faults.crash_rounds",
         "faults.crash_clients and faults.crash_rounds go together: which clients crash, and in which rounds");
  if (c.checkpoint.every < 0) fail("checkpoint.every", "must be >= 0 (0 = never)");
  if (c.privacy.clip_norm < 0) fail("privacy.clip_norm", "must be >= 0 (0 = off)");
  if (c.privacy.noise_multiplier < 0) fail("privacy.noise_multiplier", "must be >= 0");
  if (c.privacy.noise_multiplier > 0 && c.privacy.clip_norm <= 0)
    fail("privacy.noise_multiplier", "needs privacy.clip_norm > 0: the noise is calibrated to the clipped update's norm");
  if (!(c.privacy.delta > 0 && c.privacy.delta < 1)) fail("privacy.delta", "must be in (0, 1)");
  if (c.privacy.target_epsilon < 0) fail("privacy.target_epsilon", "must be >= 0 (0 = no budget)");
  if (c.privacy.target_epsilon > 0 && c.privacy.noise_multiplier <= 0)
    fail("privacy.target_epsilon", "needs privacy.noise_multiplier > 0: without noise no epsilon is spent, it is infinite");
  if (c.privacy.enabled()) {
    const StrategySpec& spec = strategy_spec(c.strategy);
    if (spec.centralized || !shares_anything(spec))
      fail("privacy.clip_norm", "differential privacy protects what clients share; strategy '" + to_string(c.strategy) +
                                    "' shares nothing with a server");
    if (spec.rule != AggregationRule::average)
      fail("privacy.clip_norm", "differential privacy is calibrated to an average of the shared tensors; strategy '" +
                                    to_string(c.strategy) + "' aggregates by another rule (use flora, ffa_lora, plora, "
                                    "fedsa_lora or rolora)");
    if (c.privacy.mode == PrivacyMode::central && c.privacy.noise_multiplier > 0 &&
        c.federation.weighting != Weighting::uniform)
      fail("privacy.mode", "central noise is calibrated to an average with weights 1/K: set federation.weighting = "
                           "\"uniform\" (sample weights change each client's influence and the accounting)");
  }
  if (c.federation.mode == FederationMode::async) {
    const StrategySpec& spec = strategy_spec(c.strategy);
    if (spec.centralized || !shares_anything(spec) || spec.rule != AggregationRule::average || spec.alternating)
      fail("federation.mode", "async (FedBuff) averages buffered updates of the shared tensors; strategy '" +
                                  to_string(c.strategy) + "' has no such average (use plora, flora, ffa_lora, fedsa_lora or full)");
    if (c.federation.buffer_size < 0 || c.federation.buffer_size > c.federation.clients)
      fail("federation.buffer_size", "must be between 0 (half the clients) and federation.clients (" +
                                         std::to_string(c.federation.clients) + ")");
    positive("federation.server_lr", c.federation.server_lr);
    positive("federation.client_seconds", c.federation.client_seconds);
    if (c.federation.staleness_exponent < 0) fail("federation.staleness_exponent", "must be >= 0");
    if (c.federation.speed_sigma < 0 || c.federation.speed_sigma > 10) fail("federation.speed_sigma", "must be in [0, 10]");
    if (c.privacy.enabled())
      fail("privacy.clip_norm", "the privacy accountant assumes synchronous rounds with sampled clients; it is not "
                                "available with federation.mode = \"async\"");
    if (!c.faults.failing_clients.empty() || c.faults.dropout_probability > 0 || !c.faults.crash_clients.empty())
      fail("federation.mode", "async runs model slow clients (faults.slow_*, federation.speed_sigma) but not failing, "
                              "dropping out or crashing ones");
    if (c.federation.quorum != 1.0) fail("federation.quorum", "has no meaning in async mode (no rounds wait for clients)");
    if (c.compression.up != CompressionKind::none) fail("compression.up", "is for synchronous rounds; async updates travel uncompressed");
  }
  if (c.checkpoint.keep < 1) fail("checkpoint.keep", "must be >= 1");
  c.partition.clients = c.federation.clients;
  c.partition.seed = c.seed;
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

  std::map<std::string, Where> where;
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
