// fl/data/vqa_dataset.hpp — VQA samples from a Hugging Face ImageFolder (metadata.jsonl + images).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

struct VqaSample {
  std::string image_file; ///< relative to VqaDataset::root, as written in metadata.jsonl
  std::string question;
  std::string answer;
  std::string domain;
};

struct VqaDataset {
  std::filesystem::path root;
  std::vector<VqaSample> samples;
  std::vector<std::string> domains; ///< sorted, distinct

  [[nodiscard]] std::size_t size() const { return samples.size(); }
  /// Index into `domains` of each sample, for partitioning clients by domain.
  [[nodiscard]] std::vector<int64_t> domain_ids() const;
  [[nodiscard]] std::filesystem::path image_path(std::size_t i) const {
    return root / samples.at(i).image_file;
  }
};

/// Reads `dir`/metadata.jsonl: one JSON object per line with "file_name", "question", an answer
/// ("answer", else "chosen" as in RLAIF-V) and `domain_field` (string or integer; an empty
/// domain_field puts every sample in domain "default"). Blank lines are skipped. Every listed
/// image must exist (relative path, no ".."). Throws std::runtime_error naming the file and
/// line: missing folder or metadata.jsonl, malformed JSON, missing or mistyped field, missing
/// image, no samples.
[[nodiscard]] VqaDataset load_vqa_folder(const std::filesystem::path& dir,
                                         const std::string& domain_field = "origin_dataset");

/// The colour names write_synthetic_vqa_folder uses as answers (single tokens of the tiny
/// tokenizer from write_tiny_tokenizer_json).
[[nodiscard]] const std::vector<std::string>& synthetic_vqa_colours();

/// Writes a small learnable VQA set in the layout load_vqa_folder reads: for each domain,
/// `samples_per_domain` 32×32 PNGs (images/NNNNNN.png) of a coloured square on a background of
/// another colour, asked "What color is the square?" or "What color is the background?" with
/// the colour name as answer, and "origin_dataset" = the domain. Each domain favours a
/// different subset of square colours (non-IID across domains). The square never touches the
/// border, so pixel (0, 0) is always background. Deterministic in `seed`.
void write_synthetic_vqa_folder(const std::filesystem::path& dir, int samples_per_domain,
                                const std::vector<std::string>& domains, uint64_t seed);

} // namespace fedvlm
