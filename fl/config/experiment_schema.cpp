// fl/config/experiment_schema.cpp — the experiment keys, one row each, and the ranges they are read against.
#include "fl/config/experiment_schema.hpp"
#include "fl/config/model_family.hpp"
#include "fl/runtime/compute_device.hpp"
#include "support/byte_size.hpp"
#include "support/usable_cores.hpp"

#include <cmath>
#include <type_traits>

namespace fedvlm::config_detail {
namespace {

// Helpers that build a row from a member accessor, so each key is one line below.
template <class F> KeyDef int_key(std::string p, std::string help, F member) {
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
template <class F> KeyDef real_key(std::string p, std::string help, F member) {
  return {p, Kind::real, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_real(n, w); },
          [member](const ExperimentConfig& c) { return fmt_real(member(const_cast<ExperimentConfig&>(c))); }};
}
template <class F> KeyDef bool_key(std::string p, std::string help, F member) {
  return {p, Kind::boolean, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_bool(n, w); },
          [member](const ExperimentConfig& c) {
            return std::string(member(const_cast<ExperimentConfig&>(c)) ? "true" : "false");
          }};
}
template <class F> KeyDef string_key(std::string p, std::string help, F member) {
  return {p, Kind::string, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_string(n, w); },
          [member](const ExperimentConfig& c) {
            return quote(std::string(member(const_cast<ExperimentConfig&>(c))));
          }};
}
/// A string key holding a filesystem path.
template <class F> KeyDef path_key(std::string p, std::string help, F member) {
  return {p, Kind::string, help,
          [member](ExperimentConfig& c, const toml::node& n, const Where& w) { member(c) = read_string(n, w); },
          [member](const ExperimentConfig& c) { return quote(member(const_cast<ExperimentConfig&>(c)).string()); }};
}
/// A string key read by `parse` (which throws invalid_argument) and written by `print`.
template <class Parse, class Print> KeyDef text_key(std::string p, std::string help, Parse parse, Print print) {
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
/// A string key naming a value of an enum with a name table: the help text is `lead` followed
/// by the table's names and meanings, an unknown name is refused with the names as choices.
template <class F> KeyDef enum_key(std::string p, const std::string& lead, const char* what, F member) {
  using E = std::remove_reference_t<decltype(member(std::declval<ExperimentConfig&>()))>;
  const std::string noun = what;
  return {p, Kind::string, lead + names_help(enum_names(E{})),
          [member, noun](ExperimentConfig& c, const toml::node& n, const Where& w) {
            try {
              member(c) = parse_name(enum_names(E{}), read_string(n, w), noun);
            } catch (const std::invalid_argument& e) {
              w.fail(e.what());
            }
          },
          [member](const ExperimentConfig& c) { return quote(to_string(member(const_cast<ExperimentConfig&>(c)))); }};
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

#define M(expr) [](ExperimentConfig& c) -> auto& { return expr; }

/// Whether the strategy trains LoRA adapters (full fine-tuning and linear probes do not).
bool trains_lora(const ExperimentConfig& c) {
  const StrategySpec& spec = strategy_spec(c.strategy);
  return !spec.train_base && !spec.train_head;
}


/// A condition under which keys act, shared by several rows.
struct Applies {
  const char* condition;
  std::vector<std::string> deciding;
  std::function<bool(const ExperimentConfig&)> holds;
};

const Applies kVqaData{"a VQA dataset (vqa_folder, synthetic_vqa)", {"data.dataset"},
                 [](const ExperimentConfig& c) { return c.data.is_vqa(); }};
const Applies kSyntheticVqa{"data.dataset = \"synthetic_vqa\"", {"data.dataset"},
                 [](const ExperimentConfig& c) { return c.data.dataset == "synthetic_vqa"; }};
const Applies kPretraining{"pretrain.enabled = true", {"pretrain.enabled"},
                 [](const ExperimentConfig& c) { return c.pretrain.enabled; }};
const Applies kShards{"partition.scheme = \"shards\"", {"partition.scheme"},
                 [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::shards; }};
const Applies kAsync{"federation.mode = \"async\"", {"federation.mode"},
                 [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async; }};
const Applies kTopk{"compression.up = \"topk\"", {"compression.up"},
                 [](const ExperimentConfig& c) { return c.compression.up == CompressionKind::topk; }};
const Applies kTrainsLora{"the strategy trains LoRA adapters (not full, linear_probe)", {"strategy.name"},
                 [](const ExperimentConfig& c) { return trains_lora(c); }};
const Applies kSlowClients{"faults.slow_clients is not empty or faults.slow_fraction > 0", {"faults.slow_clients", "faults.slow_fraction"},
                 [](const ExperimentConfig& c) { return !c.faults.slow_clients.empty() || c.faults.slow_fraction > 0; }};
const Applies kHoldout{"evaluation.holdout_clients > 0", {"evaluation.holdout_clients"},
                 [](const ExperimentConfig& c) { return c.evaluation.holdout_clients > 0; }};
const Applies kCheckpoints{"checkpoint.every > 0", {"checkpoint.every"},
                 [](const ExperimentConfig& c) { return c.checkpoint.every > 0; }};

} // namespace

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

      string_key("model.arch", model_arch_list(), M(c.model.arch)),
      path_key("model.weights", "optional .safetensors with torchvision parameter names", M(c.model.weights)),
      path_key("model.tokenizer", "Florence-2: tokenizer.json or its folder (default: beside model.weights)", M(c.model.tokenizer))
          .when("model.arch is a florence2_* model (the others read no text)", {"model.arch"},
                [](const ExperimentConfig& c) { return model_arch(c.model.arch).data == ModelData::vqa; }),
      real_key("model.dropout", "classifier dropout probability", M(c.model.dropout)).in(0, 1).open_hi(),
      string_key("model.precision", "Florence-2: float32 | bfloat16 (frozen weights and activations; adapters stay float32)",
                 M(c.model.precision)),

      string_key("data.dataset", dataset_help(), M(c.data.dataset)),
      path_key("data.path", "directory holding the dataset files (default: /usr/share/datasets/fashion-mnist, for mnist /usr/share/datasets/mnist)", M(c.data.path)),
      int_key("data.max_samples", "cap on the federated sample pool (0 = all)", M(c.data.max_samples)).in(0, 1e8),
      real_key("data.test_fraction", "share of each client's data held out as its test split", M(c.data.test_fraction)).in(0, 1).open_hi(),
      string_key("data.domain_field", "VQA: metadata.jsonl field naming each sample's domain", M(c.data.domain_field))
          .when("data.dataset = \"vqa_folder\"", {"data.dataset"},
                [](const ExperimentConfig& c) { return c.data.dataset == "vqa_folder"; }),
      string_key("data.prompt_prefix", "VQA: text put before every question", M(c.data.prompt_prefix))
          .when(kVqaData),
      int_key("data.max_answer_tokens", "VQA: answer tokens kept as labels", M(c.data.max_answer_tokens)).in(2, 1024, "<s> and </s> at least; Florence-2 reads at most 1024 positions")
          .when(kVqaData),
      int_key("data.max_new_tokens", "VQA: tokens generated when scoring exact match", M(c.data.max_new_tokens)).in(1, 1024, "Florence-2 reads at most 1024 positions")
          .when(kVqaData),
      int_key("data.num_beams", "VQA: beam width for generated answers (1 = greedy; Florence-2 uses 3)", M(c.data.num_beams)).in(1, 64)
          .when(kVqaData),
      int_key("data.no_repeat_ngram_size", "VQA: ban repeated n-grams when generating (Florence-2 uses 3; 0 = off)",
              M(c.data.no_repeat_ngram_size)).in(0, 1024)
          .when(kVqaData),
      int_key("data.synthetic_domains", "synthetic_vqa: number of domains generated", M(c.data.synthetic_domains)).in(1, 1000)
          .when(kSyntheticVqa),
      int_key("data.synthetic_per_domain", "synthetic_vqa: samples per domain", M(c.data.synthetic_per_domain)).in(2, 100000, "a train and a test sample at least")
          .when(kSyntheticVqa),
      {"data.class_names", Kind::string_list, "CLIP: the classes' names in label order (default: the dataset's)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.data.class_names = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.data.class_names); }},

      bool_key("pretrain.enabled", "train the whole backbone centrally on a public split first (cached)", M(c.pretrain.enabled)),
      int_key("pretrain.public_samples", "size of the public split, disjoint from client data", M(c.pretrain.public_samples)).in(0, 1e7)
          .when(kPretraining),
      int_key("pretrain.epochs", "pretraining epochs", M(c.pretrain.epochs)).in(1, 10000)
          .when(kPretraining),
      real_key("pretrain.lr", "pretraining learning rate (SGD, momentum 0.9)", M(c.pretrain.lr)).in(0, kMaxRate).open_lo()
          .when(kPretraining),
      int_key("pretrain.batch_size", "pretraining batch size", M(c.pretrain.batch_size)).in(1, kMaxBatch)
          .when(kPretraining),
      path_key("pretrain.cache_dir", "where pretrained checkpoints are cached (relative to output_dir)", M(c.pretrain.cache_dir)),

      enum_key("partition.scheme", "", "partition scheme", M(c.partition.scheme)),
      int_key("partition.shards", "shards: total number of label-sorted shards", M(c.partition.shards)).in(0, 1e7)
          .when(kShards),
      int_key("partition.shards_per_client", "shards: shards per client", M(c.partition.shards_per_client)).in(1, 100000)
          .when(kShards),
      real_key("partition.beta", "dirichlet: concentration (smaller = more skewed)", M(c.partition.beta)).in(0, 1e6).open_lo()
          .when("partition.scheme = \"dirichlet\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::dirichlet; }),
      int_key("partition.samples_per_client",
              "sampled: samples each client draws at random from the whole pool, independently of the other "
              "clients (a sample may be held by several; there may be more clients than samples); required "
              "with scheme = \"sampled\" (0 = not set)",
              M(c.partition.samples_per_client)).in(0, 1e7)
          .when("partition.scheme = \"sampled\"", {"partition.scheme"},
                [](const ExperimentConfig& c) { return c.partition.scheme == PartitionScheme::sampled; }),
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

      int_key("federation.clients", "number of simulated clients", M(c.federation.clients)).in(1, kMaxClients, "each client is an actor with data of its own; also at most the samples in the dataset, unless partition.scheme = \"sampled\""),
      int_key("federation.rounds", "communication rounds", M(c.federation.rounds)).in(1, 1e6),
      int_key("federation.clients_per_round", "clients sampled each round (0 = all)", M(c.federation.clients_per_round)).in(0, kMaxClients),
      enum_key("federation.weighting", "", "weighting", M(c.federation.weighting)),
      real_key("federation.quorum", "fraction of selected clients that must answer before the timeout", M(c.federation.quorum)).in(0, 1).open_lo(),
      real_key("federation.round_timeout_s", "wall seconds a round waits for a client that does not answer at all (a lost node); simulated stragglers: round_deadline_s", M(c.federation.round_timeout_s)).in(0, kYearSeconds, "one year").open_lo(),
      enum_key("federation.mode", "", "mode", M(c.federation.mode)),
      int_key("federation.buffer_size", "async: updates per server aggregation (0 = half the clients, at least 1)",
              M(c.federation.buffer_size)).in(0, kMaxClients)
          .when(kAsync),
      enum_key("federation.staleness", "async: weight of an update s versions old: ", "staleness rule", M(c.federation.staleness))
          .when(kAsync),
      real_key("federation.staleness_exponent", "async, polynomial staleness: the exponent a", M(c.federation.staleness_exponent)).in(0, 100)
          .when("federation.mode = \"async\" and federation.staleness = \"polynomial\"", {"federation.mode", "federation.staleness"},
                [](const ExperimentConfig& c) { return c.federation.mode == FederationMode::async && c.federation.staleness == StalenessRule::polynomial; }),
      real_key("federation.server_lr", "async: server learning rate on the buffered mean update", M(c.federation.server_lr)).in(0, kMaxRate).open_lo()
          .when(kAsync),
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
      enum_key("compression.up", "what clients send up: ", "compression", M(c.compression.up)),
      real_key("compression.topk_fraction", "topk: the share of each tensor's update entries sent", M(c.compression.topk_fraction)).in(0, 1).open_lo()
          .when(kTopk),
      bool_key("compression.error_feedback", "topk: keep what was not sent on the client and add it to the next update", M(c.compression.error_feedback))
          .when(kTopk),

      enum_key("strategy.name", "", "strategy", M(c.strategy)),
      real_key("strategy.mu", "FedProx proximal term weight, usable with any strategy (0 = off)", M(c.train.prox_mu)).in(0, kMaxRate),
      {"strategy.trainable", Kind::string_list,
       "full: the modules whose weights and biases clients train and average, e.g. [\"text_model.**\"] for CLIP's whole text encoder (globs allowed as in lora.targets; default: lora.targets)",
       [](ExperimentConfig& c, const toml::node& n, const Where& w) { c.strategy_trainable = read_strings(n, w); },
       [](const ExperimentConfig& c) { return fmt_list(c.strategy_trainable); }},

      int_key("lora.rank", "LoRA rank r", M(c.lora.rank)).in(1, 4096)
          .when(kTrainsLora),
      real_key("lora.alpha", "LoRA alpha (scale = alpha / r)", M(c.lora.alpha)).in(0, 1e6).open_lo()
          .when(kTrainsLora),
      real_key("lora.dropout", "dropout on the LoRA input", M(c.lora.dropout)).in(0, 1).open_hi()
          .when(kTrainsLora),
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
      enum_key("train.optimizer", "", "optimizer", M(c.train.optimizer)),
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
      text_key("scheduler.memory_budget",
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
          .when(kSlowClients),
      real_key("faults.slow_fraction", "each selected client is slow in a round with this probability", M(c.faults.slow_fraction)).in(0, 1),
      enum_key("faults.slow_distribution", "", "distribution", M(c.faults.slow_distribution))
          .when(kSlowClients),
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
      int_key("evaluation.holdout_clients",
              "new clients: the last N clients of the partition never train; each is scored with the global shared "
              "tensors and fresh private factors, before and after evaluation.adapt_steps local steps (0 = off)",
              M(c.evaluation.holdout_clients)).in(0, 100000),
      int_key("evaluation.holdout_every", "score the holdout clients after every N-th round (and round 0 and the last)",
              M(c.evaluation.holdout_every)).in(1, 1e6)
          .when(kHoldout),
      int_key("evaluation.adapt_steps", "holdout clients: local SGD steps on their own training split before the second score "
              "(0 = no adaptation)", M(c.evaluation.adapt_steps)).in(0, 1e6)
          .when(kHoldout),
      bool_key("evaluation.stop_at_target",
               "end the run once evaluation.target_accuracy is reached (global test where on, else mean client accuracy)",
               M(c.evaluation.stop_at_target)),
      int_key("evaluation.clients_sample",
              "each round evaluate the clients that trained plus this many others, drawn from the run's seed; the "
              "others have no metrics row that round (0 = every client)",
              M(c.evaluation.clients_sample)).in(0, kMaxClients, "0 = every client"),

      int_key("checkpoint.every", "write a checkpoint after every N-th round and the last (0 = never); see `resume`",
              M(c.checkpoint.every)).in(0, 1e6),
      int_key("checkpoint.keep", "newest checkpoints kept per run", M(c.checkpoint.keep)).in(1, 1000)
          .when(kCheckpoints),
      int_key("checkpoint.full_every",
              "every N-th checkpoint holds the whole state; those between hold only the clients (and tensors) that "
              "changed since the checkpoint before (1 = every one whole)",
              M(c.checkpoint.full_every)).in(1, 1e6)
          .when(kCheckpoints),

      real_key("privacy.clip_norm", "DP: clip each client's shared update (change from the global) to this L2 norm (0 = off)",
               M(c.privacy.clip_norm)).in(0, 1e6),
      real_key("privacy.noise_multiplier", "DP: Gaussian noise std = noise_multiplier x clip_norm (0 = clipping only)",
               M(c.privacy.noise_multiplier)).in(0, 1000),
      enum_key("privacy.mode", "", "privacy mode", M(c.privacy.mode))
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

std::string range_text(const KeyDef& k) {
  if (std::isinf(k.hi)) return (k.lo_open ? "> " : ">= ") + bound_text(k.kind, k.lo);
  return (k.lo_open ? "(" : "[") + bound_text(k.kind, k.lo) + ", " + bound_text(k.kind, k.hi) + (k.hi_open ? ")" : "]");
}

void assign(const KeyDef& k, ExperimentConfig& c, const toml::node& n, const Where& w) {
  k.set(c, n, w);
  if (!k.has_range()) return;
  if (const toml::array* a = n.as_array())
    for (const auto& e : *a) check_range_of(k, e, w);
  else
    check_range_of(k, n, w);
}


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

} // namespace fedvlm::config_detail
