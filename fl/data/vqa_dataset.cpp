// fl/data/vqa_dataset.cpp — ImageFolder metadata.jsonl loader and the synthetic colour VQA generator.
#include "fl/data/vqa_dataset.hpp"

#include "model/image_processor.hpp"
#include "model/json_error.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>

namespace fedvlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Colour {
  const char* name;
  std::array<uint8_t, 3> rgb;
};

// Saturated, far-apart colours so a tiny model can tell them apart after resizing.
constexpr std::array<Colour, 6> kColours{{{"red", {220, 30, 30}},
                                          {"green", {30, 180, 40}},
                                          {"blue", {30, 60, 220}},
                                          {"yellow", {240, 220, 30}},
                                          {"white", {250, 250, 250}},
                                          {"black", {10, 10, 10}}}};

std::string json_type(const json& v) { return v.type_name(); }

class LineContext {
public:
  LineContext(const fs::path& file, std::size_t line) : where_(file.string() + ":" + std::to_string(line)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(where_ + ": " + what);
  }

  std::string string_field(const json& obj, const std::string& key) const {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) fail("missing field \"" + key + "\"");
    if (!it->is_string()) {
      fail("field \"" + key + "\" must be a string, got " + json_type(*it));
    }
    return it->get<std::string>();
  }

private:
  std::string where_;
};

// ImageFolder paths are relative to the folder; anything leaving it is a broken export or
// a hostile file.
bool safe_relative(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  return std::none_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
}

} // namespace

std::vector<int64_t> VqaDataset::domain_ids() const {
  std::vector<int64_t> ids;
  ids.reserve(samples.size());
  for (const auto& s : samples) {
    const auto it = std::lower_bound(domains.begin(), domains.end(), s.domain);
    if (it == domains.end() || *it != s.domain) {
      throw std::logic_error("VqaDataset::domain_ids: sample domain \"" + s.domain +
                             "\" is not in the domain list");
    }
    ids.push_back(it - domains.begin());
  }
  return ids;
}

namespace {

/// One metadata.jsonl line's sample: its image (which must exist inside `dir`), question,
/// answer (or RLAIF-V's "chosen") and domain.
VqaSample sample_from_line(const LineContext& ctx, const json& obj, const fs::path& dir, const std::string& domain_field) {
  std::error_code ec;
VqaSample s;
  s.image_file = ctx.string_field(obj, "file_name");
  s.question = ctx.string_field(obj, "question");
  if (obj.contains("answer") && !obj["answer"].is_null()) {
    s.answer = ctx.string_field(obj, "answer");
  } else if (obj.contains("chosen") && !obj["chosen"].is_null()) {
    s.answer = ctx.string_field(obj, "chosen");
  } else {
    ctx.fail("missing field \"answer\" (or \"chosen\")");
  }
  if (domain_field.empty()) {
    s.domain = "default";
  } else {
    const auto it = obj.find(domain_field);
    if (it == obj.end() || it->is_null()) {
      ctx.fail("missing domain field \"" + domain_field +
               "\" (pass another domain field name, or an empty one for a single domain)");
    }
    if (it->is_string()) {
      s.domain = it->get<std::string>();
    } else if (it->is_number_integer()) {
      s.domain = std::to_string(it->get<int64_t>());
    } else {
      ctx.fail("domain field \"" + domain_field + "\" must be a string or an integer, got " +
               json_type(*it));
    }
  }
  if (!safe_relative(s.image_file)) {
    ctx.fail("file_name \"" + s.image_file +
             "\" must be a relative path inside the folder (no leading '/', no '..')");
  }
  const fs::path image = dir / s.image_file;
  if (!fs::is_regular_file(image, ec)) {
    ctx.fail("image file \"" + s.image_file + "\" does not exist (looked for " +
             image.string() + ")");
  }
  return s;
}

} // namespace

VqaDataset load_vqa_folder(const fs::path& dir, const std::string& domain_field) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(dir.string() +
                             ": VQA folder not found (expected a directory with metadata.jsonl "
                             "and the image files)");
  }
  const fs::path meta = dir / "metadata.jsonl";
  if (!fs::is_regular_file(meta, ec)) {
    throw std::runtime_error(
        meta.string() +
        ": missing; expected a Hugging Face ImageFolder layout: metadata.jsonl with one JSON "
        "object per line {\"file_name\", \"question\", \"answer\" (or \"chosen\"), \"" +
        domain_field + "\"} and the image files beside it. scripts/export_rlaif_v.py writes "
        "this from the RLAIF-V parquet shards");
  }
  std::ifstream in(meta, std::ios::binary);
  if (!in) throw std::runtime_error(meta.string() + ": cannot open");

  VqaDataset ds;
  ds.root = dir;
  std::set<std::string> domains;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3); // UTF-8 BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const LineContext ctx(meta, line_no);
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::exception& e) {
      ctx.fail("malformed JSON: " + json_error_text(e));
    }
    if (!obj.is_object()) ctx.fail("expected a JSON object, got " + json_type(obj));

    VqaSample s = sample_from_line(ctx, obj, dir, domain_field);
    domains.insert(s.domain);
    ds.samples.push_back(std::move(s));
  }
  if (in.bad()) throw std::runtime_error(meta.string() + ": read error");
  if (ds.samples.empty()) {
    throw std::runtime_error(meta.string() + ": no samples (the file is empty or blank)");
  }
  ds.domains.assign(domains.begin(), domains.end());
  return ds;
}

const std::vector<std::string>& synthetic_vqa_colours() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& c : kColours) n.emplace_back(c.name);
    return n;
  }();
  return names;
}

void write_synthetic_vqa_folder(const fs::path& dir, int samples_per_domain,
                                const std::vector<std::string>& domains, uint64_t seed) {
  if (samples_per_domain < 1 || domains.empty()) {
    throw std::invalid_argument(dir.string() +
                                ": write_synthetic_vqa_folder needs samples_per_domain ≥ 1 and "
                                "at least one domain");
  }
  if (std::set<std::string>(domains.begin(), domains.end()).size() != domains.size()) {
    throw std::invalid_argument(dir.string() + ": write_synthetic_vqa_folder: duplicate domain");
  }
  std::error_code ec;
  fs::create_directories(dir / "images", ec);
  if (ec) {
    throw std::runtime_error((dir / "images").string() + ": cannot create (" + ec.message() + ")");
  }
  // mt19937_64's output is fixed by the standard; taking it modulo n (rather than a
  // std::*_distribution, whose algorithm varies by library) keeps the data identical everywhere.
  std::mt19937_64 rng(seed);
  const auto pick = [&](uint64_t n) { return static_cast<int>(rng() % n); };
  constexpr int kSide = 32;
  const int n_colours = static_cast<int>(kColours.size());

  std::string metadata;
  int index = 0;
  for (std::size_t d = 0; d < domains.size(); ++d) {
    for (int i = 0; i < samples_per_domain; ++i, ++index) {
      // 3 of 4 squares come from the domain's favoured half of the palette.
      int sq = pick(4) < 3 ? static_cast<int>((d + static_cast<std::size_t>(pick(3))) % n_colours)
                           : pick(n_colours);
      int bg = pick(n_colours - 1);
      if (bg >= sq) ++bg; // any colour but the square's
      const int size = 10 + pick(7);                 // 10..16
      const int x0 = 2 + pick(kSide - 4 - size + 1); // keeps a 2-pixel background border
      const int y0 = 2 + pick(kSide - 4 - size + 1);
      const bool ask_square = pick(2) == 0;

      at::Tensor img = at::empty({kSide, kSide, 3}, at::kByte);
      uint8_t* p = img.data_ptr<uint8_t>();
      for (int y = 0; y < kSide; ++y) {
        for (int x = 0; x < kSide; ++x) {
          const bool in_sq = x >= x0 && x < x0 + size && y >= y0 && y < y0 + size;
          const auto& rgb = kColours[static_cast<std::size_t>(in_sq ? sq : bg)].rgb;
          std::copy(rgb.begin(), rgb.end(), p + (y * kSide + x) * 3);
        }
      }
      std::array<char, 32> name{};
      std::snprintf(name.data(), name.size(), "images/%06d.png", index);
      write_png(dir / name.data(), img);
      const json row = {
          {"file_name", name.data()},
          {"question", ask_square ? "What color is the square?" : "What color is the background?"},
          {"answer", kColours[static_cast<std::size_t>(ask_square ? sq : bg)].name},
          {"origin_dataset", domains[d]}};
      metadata += row.dump() + "\n";
    }
  }
  const fs::path meta = dir / "metadata.jsonl";
  std::ofstream out(meta, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(meta.string() + ": cannot open for writing");
  out << metadata;
  out.close();
  if (!out) throw std::runtime_error(meta.string() + ": write failed");
}

} // namespace fedvlm
