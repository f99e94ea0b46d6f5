// fl/data/dataset_table.hpp — the table of datasets: one row per `data.dataset`, what it holds and how it is read.
//
// The experiment schema validates against it (names, VQA or images, the pool's size) and the run
// set-up reads through it, so a new dataset is one row here plus its loader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

struct ImageDataset;
enum class DataSplit;

struct DatasetRow {
  const char* name;
  bool vqa;          ///< questions about images (Florence-2) rather than labelled images
  bool generated;    ///< made here from the seed: reads no files
  /// Where Debian (or the README) puts the files; "" = data.path as set.
  const char* default_path;
  int64_t train_samples; ///< the official training split's size; 0 = known only once read
  /// Reads an image dataset's split from a folder; null for VQA datasets (fl/data/vqa_dataset).
  ImageDataset (*load)(const std::filesystem::path& dir, DataSplit split);
  const char* summary;
};

/// Every dataset, in table order.
[[nodiscard]] const std::vector<DatasetRow>& dataset_rows();
/// The row named `name`, or nullptr.
[[nodiscard]] const DatasetRow* find_dataset(const std::string& name);
/// The row named `name`. Throws std::invalid_argument listing every name.
[[nodiscard]] const DatasetRow& dataset_row(const std::string& name);
/// "a (summary) | b": for the `data.dataset` help text.
[[nodiscard]] std::string dataset_help();
/// "a, b or c": for errors.
[[nodiscard]] std::string dataset_names_text();

} // namespace fedvlm
