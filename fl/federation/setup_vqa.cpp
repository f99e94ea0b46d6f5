// fl/federation/setup_vqa.cpp — a Florence-2 run's set-up: the VQA folder (or the synthetic one), the model config, tokenizer and weights.
#include "fl/federation/setup_families.hpp"
#include "fl/federation/setup_parts.hpp"
#include "fl/config/model_family.hpp"
#include "fl/data/vqa_dataset.hpp"
#include "fl/tasks/vqa_task.hpp"
#include "model/bart_tokenizer.hpp"
#include "model/florence2.hpp"
#include "model/florence2_hf_config.hpp"
#include "model/florence2_tokens.hpp"
#include "model/safetensors.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <stdlib.h>

namespace fedvlm::setup_detail {
namespace {

/// A directory removed with everything in it when this goes out of scope (empty: none).
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() = default;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

/// A generated folder under output_dir/.cache, made once (in a temp dir renamed into place).
/// A dry run writes nothing anywhere: it reads the cached folder if there is one, and otherwise
/// generates into `scratch`, a temporary directory removed when the plan is made.
std::filesystem::path synthetic_vqa_dir(const ExperimentConfig& c, SetupMode mode, ScratchDir& scratch) {
  const std::filesystem::path dir = c.output_dir / ".cache" /
                                    ("synthetic_vqa-d" + std::to_string(c.data.synthetic_domains) + "-n" +
                                     std::to_string(c.data.synthetic_per_domain) + "-s" + std::to_string(c.seed));
  if (std::filesystem::exists(dir / "metadata.jsonl")) return dir;
  if (mode == SetupMode::plan) {
    std::string templ = (std::filesystem::temp_directory_path() / "fedvlm-dry-run-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory for the dry run");
    scratch.path = templ;
    std::vector<std::string> domains;
    for (int d = 0; d < c.data.synthetic_domains; ++d) domains.push_back("domain_" + std::to_string(d));
    write_synthetic_vqa_folder(scratch.path / "data", c.data.synthetic_per_domain, domains, c.seed);
    write_tiny_tokenizer_json(scratch.path / "data" / "tokenizer.json");
    return scratch.path / "data";
  }
  std::filesystem::path tmp = dir;
  tmp += ".tmp." + std::to_string(std::hash<std::string>{}(dir.string() + std::to_string(std::rand())));
  std::vector<std::string> domains;
  for (int d = 0; d < c.data.synthetic_domains; ++d) domains.push_back("domain_" + std::to_string(d));
  write_synthetic_vqa_folder(tmp, c.data.synthetic_per_domain, domains, c.seed);
  write_tiny_tokenizer_json(tmp / "tokenizer.json");
  std::error_code ec;
  std::filesystem::rename(tmp, dir, ec);
  if (ec) std::filesystem::remove_all(tmp); // another process made it first
  return dir;
}

// The checkpoint's own config.json, when it has one, is the authority on dropout and image
// preprocessing; its architecture must be the one model.arch names, else the run would fail
// later on shapes with a less helpful message.
Florence2Config checkpoint_config(const Florence2Config& named, const ExperimentConfig& c) {
  if (c.model.weights.empty()) return named;
  const std::filesystem::path file = florence2_hf_config_path(c.model.weights);
  if (!std::filesystem::exists(file)) return named;
  Florence2Config own;
  try {
    own = florence2_config_from_hf(file);
  } catch (const std::exception& e) {
    throw std::runtime_error("model.weights: " + std::string(e.what()));
  }
  const std::string diff = florence2_architecture_difference(own, named);
  if (!diff.empty())
    throw std::runtime_error("model.weights: " + file.string() + " describes another model than model.arch = " +
                             c.model.arch + " (" + diff + ", the checkpoint's value first); set model.arch "
                             "to the checkpoint's size");
  own.name = named.name;
  own.precision = named.precision;
  return own;
}

} // namespace

RunSetup prepare_vqa_run(const ExperimentConfig& c, SetupMode mode) {
  RunSetup setup;
  setup.threads = thread_plan_for(c);
  ScratchDir scratch;
  const std::filesystem::path data_dir = dataset_row(c.data.dataset).generated ? synthetic_vqa_dir(c, mode, scratch) : c.data.path;
  VqaDataset data;
  try {
    data = load_vqa_folder(data_dir, c.data.domain_field);
  } catch (const std::exception& e) {
    throw std::runtime_error("data.path: " + std::string(e.what()));
  }
  if (c.data.max_samples > 0 && static_cast<int64_t>(data.samples.size()) > c.data.max_samples)
    data.samples.resize(static_cast<std::size_t>(c.data.max_samples));
  setup.class_names = data.domains;
  setup.pool_samples = static_cast<int64_t>(data.size());
  fill_clients(setup, c, data.domain_ids(), static_cast<int64_t>(data.domains.size()));

  const ModelArch& arch = model_arch(c.model.arch);
  Florence2Config fc = Florence2Config::named(arch.variant);
  fc.precision = c.model.precision == "bfloat16" ? Precision::bfloat16 : Precision::float32;
  fc = checkpoint_config(fc, c);
  setup.targets = resolve_vqa_targets(fc, c.lora_targets);
  fill_bytes(setup, c, nullptr);

  std::filesystem::path tok_path = c.model.tokenizer;
  if (tok_path.empty() && dataset_row(c.data.dataset).generated && arch.self_contained)
    tok_path = data_dir / "tokenizer.json";
  if (tok_path.empty() && !c.model.weights.empty())
    tok_path = std::filesystem::is_directory(c.model.weights) ? c.model.weights : c.model.weights.parent_path();
  if (tok_path.empty())
    throw std::invalid_argument("model.tokenizer: not set; expected the checkpoint's tokenizer.json (or vocab.json + "
                                "merges.txt), e.g. from microsoft/Florence-2-base");
  setup.model_origin = c.model.weights.empty() ? "random init (seed " + std::to_string(c.seed) + ")"
                                               : "weights " + c.model.weights.string();
  if (mode == SetupMode::plan) {
    if (!c.model.weights.empty() && !std::filesystem::exists(c.model.weights))
      throw std::runtime_error("model.weights: " + c.model.weights.string() +
                               " does not exist (expected model.safetensors, its sharded index, or the folder "
                               "holding them, as published for microsoft/Florence-2-" + fc.name + ")");
    return setup;
  }

  auto tokenizer = std::make_shared<BartTokenizer>(BartTokenizer::load(tok_path));
  if (!arch.self_contained && !tokenizer->has_token("<loc_0>"))
    tokenizer->add_special_tokens(florence2_added_tokens()); // as Florence-2's processor does
  auto model = std::make_shared<Florence2>(fc, c.seed);
  if (!c.model.weights.empty()) {
    try {
      model->load(c.model.weights);
    } catch (const std::exception& e) {
      throw std::runtime_error("model.weights: " + std::string(e.what()));
    }
  } else if (!arch.self_contained) {
    spdlog::warn("model.weights is not set: {} starts from random weights", c.model.arch);
  }
  VqaTaskSettings vs;
  vs.prompt_prefix = c.data.prompt_prefix;
  vs.max_answer_tokens = c.data.max_answer_tokens;
  vs.generation.max_new_tokens = c.data.max_new_tokens;
  vs.generation.num_beams = c.data.num_beams;
  vs.generation.no_repeat_ngram_size = c.data.no_repeat_ngram_size;
  vs.device = run_device(c);
  model->mutable_state() = tensor_map_to(model->state(), vs.device);
  setup.task = std::make_shared<const VqaTask>(model, tokenizer, data, c.lora_targets, vs);
  return setup;
}

} // namespace fedvlm::setup_detail
