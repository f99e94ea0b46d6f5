// model/clip_tiny_tokenizer.hpp — a small CLIP tokenizer whose Fashion-MNIST caption words are single tokens.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

/// Writes a small valid CLIP tokenizer.json for tests and the tiny Fashion-MNIST CLIP
/// experiment (captions "a photo of a {class}." over the ten class names). Ids, in CLIP's own
/// layout: 0..255 the byte symbols in CLIP's order (printable bytes first: '!' = 0, 'a' = 64),
/// 256..511 the same with `</w>` ("a</w>" = 320, ".</w>" = 269), 512..562 one token per merge
/// (51 merges), then `<|startoftext|>` = 563 and `<|endoftext|>` = 564 (also the pad token);
/// vocabulary size 565 = tiny_clip_vocab_size(). After the merges "a", "photo", "of", "t-shirt/top" (as t - shirt / top), "trouser",
/// "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle", "boot" and "." are
/// one token each.
void write_tiny_clip_tokenizer_json(const std::filesystem::path& file);

/// The class names of Fashion-MNIST in label order ("t-shirt/top" .. "ankle boot").
[[nodiscard]] const std::vector<std::string>& fashion_mnist_class_names();

/// Vocabulary size of write_tiny_clip_tokenizer_json(): 512 + 51 merges + 2 = 565.
[[nodiscard]] int64_t tiny_clip_vocab_size();

} // namespace fedvlm
