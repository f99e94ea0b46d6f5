// model/florence2_tokens.hpp — Florence-2's added special tokens, and a tiny BART tokenizer for tests and the tiny VQA run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

/// Florence-2's 1024 added special tokens in id order starting at 50265: `<od>`, `</od>`,
/// `<ocr>`, `</ocr>`, `<loc_0>`..`<loc_999>` (50269..51268), then `<cap>` .. `<and>`.
[[nodiscard]] std::vector<std::string> florence2_added_tokens();

/// Writes a small valid tokenizer.json: `<s>`,`<pad>`,`</s>`,`<unk>` at 0..3, the 256 byte
/// symbols at 4..259 (id = 4 + byte value) and 40 merges (ids 260..299, vocab size 300) chosen
/// so that the synthetic VQA text is short: "What", "Ġcolor", "Ġis", "Ġthe", "Ġsquare" and the
/// answers red, green, blue, yellow, white, black are single tokens.
void write_tiny_tokenizer_json(const std::filesystem::path& file);

} // namespace fedvlm
