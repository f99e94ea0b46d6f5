// fl/config/experiment_checks.cpp — checks across keys, section by section, each naming the key at fault.
//
// A single key's range was checked as it was read (the schema's `.in()`); these relate keys to
// each other, to the model and dataset tables, and to the strategy.
#include "fl/config/experiment_checks.hpp"
#include "fl/config/device_trace.hpp"
#include "fl/config/model_family.hpp"
#include "fl/data/dataset_table.hpp"
#include "fl/runtime/compute_device.hpp"

#include <algorithm>
#include <sstream>

namespace fedvlm::config_detail {

std::string dir_name_problem(const std::string& s) {
  if (s.empty()) return "it is empty";
  if (s == "." || s == "..") return "'.' and '..' name no directory of their own";
  if (s.find_first_of("/\\") != std::string::npos) return "it holds a path separator";
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return "it holds a control character";
  if (s.size() > 255) return "it is longer than 255 bytes, the limit of a file name";
  return "";
}

void check_keys_have_effect(const ExperimentConfig& c, const KeyPlaces& where, std::map<std::string, NoEffect>& found) {
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


namespace {

/// A run's configuration under check, and how to name a key at fault.
struct Checking {
  ExperimentConfig& c;
  const KeyPlaces& where;
  const std::string& file;

  [[noreturn]] void fail(const std::string& key, const std::string& reason) const {
    auto it = where.find(key);
    (it != where.end() ? it->second : Where{file, key, {}}).fail(reason);
  }
  [[nodiscard]] bool set(const std::string& key) const { return where.count(key) > 0; }
  void client_ids(const char* key, const std::vector<int>& ids) const {
    for (int id : ids) {
      if (id < 0 || id >= c.federation.clients) fail(key, "client " + std::to_string(id) + " does not exist");
      if (id >= training_clients(c))
        fail(key, "client " + std::to_string(id) + " is a holdout client (evaluation.holdout_clients = " +
                      std::to_string(c.evaluation.holdout_clients) + ": clients " + std::to_string(training_clients(c)) +
                      ".." + std::to_string(c.federation.clients - 1) + "), which never trains");
    }
  }
};

const ModelArch& check_model(const Checking& k) {
  ExperimentConfig& c = k.c;
  if (const std::string why = dir_name_problem(c.name); !why.empty())
    k.fail("name", "must be one directory name inside output_dir, got " + quote(c.name) + " (" + why + ")");
  if (!valid_device_name(c.device))
    k.fail("device", "expected \"cpu\", \"cuda\" or \"cuda:N\", got \"" + c.device + "\"");
  const ModelArch* arch = nullptr;
  try {
    arch = &model_arch(c.model.arch);
  } catch (const std::invalid_argument&) {
    k.fail("model.arch", "expected one of " + model_arch_list(", ") + ", got \"" + c.model.arch + "\"");
  }
  if (c.model.precision != "float32" && c.model.precision != "bfloat16")
    k.fail("model.precision", "expected float32 or bfloat16, got \"" + c.model.precision + "\"" +
                                  (c.model.precision == "float16" ? " (float16 needs CUDA, which the models do not use yet)" : ""));
  if (c.model.precision != "float32" && !arch->bfloat16)
    k.fail("model.precision", "bfloat16 is supported for the florence2_* models only");
  return *arch;
}

void check_data(const Checking& k, const ModelArch& arch) {
  ExperimentConfig& c = k.c;
  const DatasetRow* data = find_dataset(c.data.dataset);
  if (data == nullptr) k.fail("data.dataset", "expected " + dataset_names_text() + ", got \"" + c.data.dataset + "\"");
  if (!k.set("data.path") && *data->default_path != '\0') c.data.path = data->default_path;
  if ((arch.data == ModelData::vqa) != data->vqa)
    k.fail("data.dataset", arch.data == ModelData::vqa
                               ? "model.arch " + c.model.arch + " needs a VQA dataset (vqa_folder or synthetic_vqa)"
                               : "a VQA dataset needs a florence2_* model.arch");
  if (data->vqa) {
    if (c.pretrain.enabled) k.fail("pretrain.enabled", "pretraining is for the image classifiers only");
    // The classifier-head default makes no sense for Florence-2: the paper's placement instead.
    if (!k.set("lora.targets")) c.lora_targets = {"last_decoder_layer"};
    if (!k.set("lora.dropout")) c.lora.dropout = 0.1; // the paper's setting
  } else if (c.partition.scheme == PartitionScheme::by_domain) {
    k.fail("partition.scheme", "by_domain needs a VQA dataset with domains");
  }
  if (strategy_spec(c.strategy).train_head && arch.data == ModelData::vqa)
    k.fail("strategy.name", "linear_probe classifies images; " + c.model.arch + " answers questions (VQA)");
  if (c.evaluation.stop_at_target && c.evaluation.target_accuracy == 0)
    k.fail("evaluation.stop_at_target", "needs evaluation.target_accuracy, the accuracy to stop at");
  if (c.evaluation.global_test) {
    if (data->vqa) k.fail("evaluation.global_test", "needs an image dataset with an official test split (fashion_mnist, mnist, cifar10)");
  } else if (c.data.test_fraction == 0) {
    k.fail("data.test_fraction", "must be in (0, 1); 0 is allowed with evaluation.global_test = true");
  }
}

void check_clip(const Checking& k, const ModelArch& arch) {
  ExperimentConfig& c = k.c;
  if (arch.family == ModelFamily::clip) {
    // FLoRA's placement: the text encoder's attention projections.
    if (!k.set("lora.targets")) c.lora_targets = {"text_model.encoder.layers.*.self_attn.{q,k,v,out}_proj"};
    if (c.clip.templates.empty()) k.fail("clip.templates", "needs at least one template, e.g. [\"a photo of a {}.\"]");
    for (const char* key : {"clip.templates", "clip.pretrain_templates"})
      for (const auto& t : std::string(key) == "clip.templates" ? c.clip.templates : c.clip.pretrain_templates) {
        const auto first = t.find("{}");
        if (first == std::string::npos || t.find("{}", first + 2) != std::string::npos)
          k.fail(key, "each template needs exactly one {} for the class name; got \"" + t + "\"");
      }
    for (const auto& n : c.data.class_names)
      if (n.empty()) k.fail("data.class_names", "a class name is empty");
    return;
  }
  // Set to something else than the default (a resolved config.toml writes every key).
  if (c.clip.templates != ClipSettings{}.templates)
    k.fail("clip.templates", "applies to CLIP models (model.arch = clip_*) only");
  if (!c.data.class_names.empty()) k.fail("data.class_names", "applies to CLIP models (model.arch = clip_*) only");
  if (!c.clip.pretrain_templates.empty()) k.fail("clip.pretrain_templates", "applies to CLIP models (model.arch = clip_*) only");
}

/// partition.scheme = "sampled": every client draws partition.samples_per_client samples of
/// its own from the whole pool, so the bound is on that count, not on the number of clients.
void check_samples_per_client(const Checking& k, int64_t pool, const std::string& what) {
  const ExperimentConfig& c = k.c;
  const int64_t s = c.partition.samples_per_client;
  const std::string key = "partition.samples_per_client";
  if (s < 1)
    k.fail(key, "is required with partition.scheme = \"sampled\": the number of samples each client draws from "
                "the pool, an integer >= 1 (e.g. 20)" + std::string(s == 0 ? "" : ", got " + std::to_string(s)));
  if (pool > 0 && s > pool)
    k.fail(key, "is " + std::to_string(s) + ", more than a client can draw without repeating a sample: " + what);
  const double f = c.data.test_fraction;
  if (f == 0) return;
  if (s < 2)
    k.fail(key, "is 1, but data.test_fraction (" + shortest(f) + ") > 0 gives each client a train and a test split: "
                "it needs at least 2 samples, one for each (or set data.test_fraction = 0 with "
                "evaluation.global_test = true)");
  // The rule the set-up applies to every client (setup_parts.cpp): a side under half a sample
  // would hold one sample that is not the fraction asked for. Here every client has s samples.
  const double smaller = std::min(f, 1 - f) * static_cast<double>(s);
  if (smaller < 0.5) {
    std::ostringstream share; // 6 significant digits: (1 - 0.8) x 2 reads 0.4, not 0.3999999999999999
    share << smaller;
    k.fail(key, "is " + std::to_string(s) + ": with data.test_fraction = " + shortest(f) + " each client's " +
                    (f < 0.5 ? "test" : "training") + " split would hold " + share.str() +
                    " samples, under half a sample; raise partition.samples_per_client or move data.test_fraction "
                    "towards 0.5");
  }
}

/// Every client holds samples of its own: there cannot be more clients than samples in the
/// federated pool (except with partition.scheme = "sampled", where clients may share samples).
/// The pool's size is known here for the built-in datasets (their training splits) and the
/// synthetic one; a vqa_folder's is checked when it is read.
void check_population(const Checking& k) {
  const ExperimentConfig& c = k.c;
  if (c.pretrain.enabled) {
    if (c.pretrain.public_samples < 1) k.fail("pretrain.public_samples", "must be >= 1");
    if (!c.model.weights.empty())
      k.fail("pretrain.enabled", "cannot be combined with model.weights: pretraining starts from random weights");
  }
  const DatasetRow& data = dataset_row(c.data.dataset);
  int64_t pool = data.generated ? int64_t{c.data.synthetic_domains} * c.data.synthetic_per_domain : data.train_samples;
  std::string what = pool > 0 ? "the " + std::to_string(pool) + " training samples of " + c.data.dataset : "";
  if (pool > 0 && c.pretrain.enabled) {
    pool -= c.pretrain.public_samples;
    what += " less pretrain.public_samples (" + std::to_string(c.pretrain.public_samples) + ")";
  }
  if (c.data.max_samples > 0 && (pool <= 0 || c.data.max_samples < pool)) {
    pool = c.data.max_samples;
    what = "data.max_samples (" + std::to_string(pool) + ")";
  }
  if (c.partition.scheme == PartitionScheme::sampled)
    check_samples_per_client(k, pool, what);
  else if (pool > 0 && c.federation.clients > pool)
    k.fail("federation.clients", "is " + std::to_string(c.federation.clients) + ", more clients than samples to give them: " +
                                     what + " (each client needs at least one)");
  const int holdout = c.evaluation.holdout_clients;
  if (holdout >= c.federation.clients)
    k.fail("evaluation.holdout_clients", "is " + std::to_string(holdout) + ", but must be less than federation.clients (" +
                                             std::to_string(c.federation.clients) + "): at least one client must train");
  // The bound both counts share: the clients that train, said as the keys that make it.
  const std::string trainers = "federation.clients (" + std::to_string(c.federation.clients) + ")" +
                               (holdout > 0 ? " less evaluation.holdout_clients (" + std::to_string(holdout) + ") = " +
                                                  std::to_string(training_clients(c))
                                            : std::string());
  if (c.federation.clients_per_round > training_clients(c))
    k.fail("federation.clients_per_round", "must be between 0 (all) and " + trainers);
  if (c.evaluation.clients_sample > training_clients(c))
    k.fail("evaluation.clients_sample", "must be between 0 (every client) and " + trainers);
}

/// evaluation.holdout_clients: new clients scored on their own test split with a fresh private
/// factor of the one rank every client has.
void check_holdout(const Checking& k) {
  const ExperimentConfig& c = k.c;
  if (c.evaluation.holdout_clients == 0) return;
  if (c.data.test_fraction == 0)
    k.fail("evaluation.holdout_clients", "scores each holdout client on its own test split: needs data.test_fraction > 0");
  if (!c.lora_client_ranks.empty())
    k.fail("evaluation.holdout_clients", "needs one rank for every client (a new client takes the global factors as they "
                                         "are); lora.client_ranks is set");
  if (strategy_spec(c.strategy).centralized)
    k.fail("evaluation.holdout_clients", "the centralized strategy has no clients that train on their own; use a "
                                         "federated strategy");
}

void check_partition(const Checking& k) {
  PartitionSpec& p = k.c.partition;
  const int clients = k.c.federation.clients;
  if (p.scheme == PartitionScheme::shards) {
    if (p.shards == 0) p.shards = clients * p.shards_per_client;
    if (p.shards != clients * p.shards_per_client)
      k.fail("partition.shards", "must equal federation.clients (" + std::to_string(clients) +
                                     ") x partition.shards_per_client (" + std::to_string(p.shards_per_client) +
                                     ") = " + std::to_string(clients * p.shards_per_client) + ", got " +
                                     std::to_string(p.shards));
  }
  if (p.scheme == PartitionScheme::by_label_group && p.label_groups.empty())
    k.fail("partition.label_groups", "by_label_group needs at least one group, e.g. [[0, 1], [2, 3]]");
}

void check_adapters(const Checking& k) {
  ExperimentConfig& c = k.c;
  const StrategySpec& spec = strategy_spec(c.strategy);
  if (!c.lora_client_ranks.empty() && !supports_client_ranks(spec))
    k.fail("lora.client_ranks", "strategy '" + to_string(c.strategy) +
                                    "' adds factors of every client, which needs one rank for all; strategies that "
                                    "accept heterogeneous ranks: stacking, flexlora, hetlora, local");
  if (!c.strategy_trainable.empty()) {
    if (!spec.train_base)
      k.fail("strategy.trainable", "names the modules full fine-tuning trains; strategy '" + to_string(c.strategy) +
                                       (spec.train_head ? "' trains a linear probe" : "' trains LoRA adapters on lora.targets"));
    c.lora_targets = c.strategy_trainable; // the modules this run adapts, whatever the strategy
  }
  if (c.lora_targets.empty()) k.fail("lora.targets", "needs at least one module name");
}

void check_monitoring(const Checking& k) {
  const std::string& address = k.c.monitoring.prometheus;
  if (address.empty()) return;
  const auto colon = address.rfind(':');
  const std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
  if (colon == 0 || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stol(port) > 65535)
    k.fail("monitoring.prometheus", "expected host:port, e.g. \"127.0.0.1:9464\", got \"" + address + "\"");
}

void check_faults(const Checking& k) {
  const FaultSettings& f = k.c.faults;
  k.client_ids("faults.failing_clients", f.failing_clients);
  k.client_ids("faults.slow_clients", f.slow_clients);
  k.client_ids("faults.crash_clients", f.crash_clients);
  if (f.slow_fraction > 0 && f.slow_seconds <= 0)
    k.fail("faults.slow_fraction", "needs faults.slow_seconds > 0 (the mean delay)");
  for (int r : f.crash_rounds)
    if (r < 1 || r > k.c.federation.rounds)
      k.fail("faults.crash_rounds", "round " + std::to_string(r) + " is not in 1.." + std::to_string(k.c.federation.rounds));
  if (f.crash_rounds.empty() != f.crash_clients.empty())
    k.fail(f.crash_rounds.empty() ? "faults.crash_clients" : "faults.crash_rounds",
           "faults.crash_clients and faults.crash_rounds go together: which clients crash, and in which rounds");
}

void check_privacy(const Checking& k) {
  const ExperimentConfig& c = k.c;
  if (c.privacy.noise_multiplier > 0 && c.privacy.clip_norm <= 0)
    k.fail("privacy.noise_multiplier", "needs privacy.clip_norm > 0: the noise is calibrated to the clipped update's norm");
  if (c.privacy.target_epsilon > 0 && c.privacy.noise_multiplier <= 0)
    k.fail("privacy.target_epsilon", "needs privacy.noise_multiplier > 0: without noise no epsilon is spent, it is infinite");
  if (!c.privacy.enabled()) return;
  const StrategySpec& spec = strategy_spec(c.strategy);
  if (spec.centralized || !shares_anything(spec))
    k.fail("privacy.clip_norm", "differential privacy protects what clients share; strategy '" + to_string(c.strategy) +
                                    "' shares nothing with a server");
  if (spec.rule != AggregationRule::average)
    k.fail("privacy.clip_norm", "differential privacy is calibrated to an average of the shared tensors; strategy '" +
                                    to_string(c.strategy) + "' aggregates by another rule (use flora, ffa_lora, plora, "
                                    "fedsa_lora or rolora)");
  if (c.privacy.mode == PrivacyMode::central && c.privacy.noise_multiplier > 0 &&
      c.federation.weighting != Weighting::uniform)
    k.fail("privacy.mode", "central noise is calibrated to an average with weights 1/K: set federation.weighting = "
                           "\"uniform\" (sample weights change each client's influence and the accounting)");
}

void check_async(const Checking& k) {
  const ExperimentConfig& c = k.c;
  if (c.federation.mode != FederationMode::async) return;
  const StrategySpec& spec = strategy_spec(c.strategy);
  if (spec.centralized || !shares_anything(spec) || spec.rule != AggregationRule::average || spec.alternating)
    k.fail("federation.mode", "async (FedBuff) averages buffered updates of the shared tensors; strategy '" +
                                  to_string(c.strategy) + "' has no such average (use plora, flora, ffa_lora, fedsa_lora or full)");
  if (c.federation.buffer_size > training_clients(c))
    k.fail("federation.buffer_size", "must be between 0 (half the clients) and the training clients (" +
                                         std::to_string(training_clients(c)) + ")");
  if (c.privacy.enabled())
    k.fail("privacy.clip_norm", "the privacy accountant assumes synchronous rounds with sampled clients; it is not "
                                "available with federation.mode = \"async\"");
  if (!c.faults.failing_clients.empty() || c.faults.dropout_probability > 0 || !c.faults.crash_clients.empty())
    k.fail("federation.mode", "async runs model slow clients (faults.slow_*, federation.speed_sigma) but not failing, "
                              "dropping out or crashing ones");
  if (c.federation.quorum != 1.0) k.fail("federation.quorum", "has no meaning in async mode (no rounds wait for clients)");
  if (c.compression.up != CompressionKind::none)
    k.fail("compression.up", "is for synchronous rounds; async updates travel uncompressed");
}

/// network.trace: read once here, relative to the experiment file (resolved, so the run's
/// config.toml names the same file), each device checked by the trace reader.
void check_network(const Checking& k) {
  NetworkSettings& n = k.c.network;
  if (n.trace.empty()) return;
  if (n.trace.is_relative() && !std::filesystem::path(k.file).parent_path().empty())
    n.trace = std::filesystem::absolute(std::filesystem::path(k.file).parent_path() / n.trace).lexically_normal();
  try {
    n.devices = read_device_trace(n.trace);
  } catch (const std::invalid_argument& e) {
    k.fail("network.trace", e.what());
  }
}

} // namespace

void validate(ExperimentConfig& c, const KeyPlaces& where, const std::string& file) {
  const Checking k{c, where, file};
  const ModelArch& arch = check_model(k);
  check_data(k, arch);
  check_clip(k, arch);
  check_population(k);
  check_holdout(k);
  check_partition(k);
  check_adapters(k);
  check_monitoring(k);
  check_faults(k);
  check_privacy(k);
  check_async(k);
  check_network(k);
  c.partition.clients = c.federation.clients;
  c.partition.seed = c.seed;
}

} // namespace fedvlm::config_detail
