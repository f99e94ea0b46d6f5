// model/safetensors.hpp — read and write Hugging Face .safetensors checkpoints.
#pragma once

#include "model/tensor_map.hpp"

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

namespace fedvlm {

/// A malformed or unreadable checkpoint. what() names the file and, where it applies, the
/// tensor and what was expected.
class SafetensorsError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct SafetensorsFile {
  TensorMap tensors; ///< CPU tensors in their stored dtype (F32, F16, BF16, I64, ...)
  std::map<std::string, std::string> metadata;
};

/// Reads a whole file. Checks: header length within bounds (≤ 100 MB and the file), valid JSON,
/// known dtype, offsets inside the data buffer, non-overlapping, byte count == numel × size,
/// and the buffer ending exactly at end of file.
[[nodiscard]] SafetensorsFile safetensors_load(const std::filesystem::path& file);

/// Reads a sharded checkpoint from its `*.safetensors.index.json` (its "weight_map" names the
/// shard of every tensor), or a single file when given a `.safetensors` path.
[[nodiscard]] TensorMap safetensors_load_any(const std::filesystem::path& path);

/// The bytes of a safetensors file holding `tensors` (made contiguous, CPU); `file` names it in
/// errors.
[[nodiscard]] std::string safetensors_encode(const std::filesystem::path& file, const TensorMap& tensors,
                                             const std::map<std::string, std::string>& metadata = {});

/// Writes `tensors` (made contiguous, CPU) atomically: the file appears complete or not at all.
void safetensors_save(const std::filesystem::path& file, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

} // namespace fedvlm
