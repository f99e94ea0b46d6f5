// model/safetensors.cpp — .safetensors reader/writer with strict header validation.
#include "model/safetensors.hpp"
#include "model/json_error.hpp"
#include "model/name_affixes.hpp"

#include "support/atomic_file.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

// The format is little-endian and we memcpy raw bytes both ways; a big-endian host would need
// byte swapping, which nothing here does.
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");
#endif

namespace fedvlm {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Same bound as the reference implementation: a header this large is corruption or an attack,
// and refusing it early avoids allocating whatever a damaged length prefix claims.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  std::size_t size;
  int rank; // position in the reference writer's dtype enum; larger = written first
};

// Only the dtypes LibTorch 1.13 can hold; the others are recognised so the error can say
// "unsupported" rather than "unknown".
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", at::kBool, 1, 0},      {"U8", at::kByte, 1, 1},      {"I8", at::kChar, 1, 2},
    {"I16", at::kShort, 2, 3},      {"F16", at::kHalf, 2, 4},     {"BF16", at::kBFloat16, 2, 5},
    {"I32", at::kInt, 4, 6},        {"F32", at::kFloat, 4, 7},    {"F64", at::kDouble, 8, 8},
    {"I64", at::kLong, 8, 9},
};
constexpr const char* kKnownUnsupported[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2",
                                             "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

const DtypeInfo* dtype_by_name(std::string_view name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string supported_dtype_list() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : " ") + std::string(d.name);
  return out;
}

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw SafetensorsError(file.string() + ": " + what);
}

[[noreturn]] void fail_tensor(const fs::path& file, const std::string& name,
                              const std::string& what) {
  fail(file, "tensor '" + name + "': " + what);
}

std::string read_file(const fs::path& file) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) fail(file, "is a directory, expected a .safetensors file");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail(file, "cannot determine file size");
  in.seekg(0, std::ios::beg);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (size > 0 && !in.read(bytes.data(), size)) fail(file, "read failed");
  return bytes;
}

std::uint64_t read_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void append_u64_le(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string json_type(const json& j) { return j.type_name(); }

// nlohmann keeps non-negative integers as number_unsigned; negative or fractional values and
// floats written as 2.0 are all rejected here.
bool as_u64(const json& j, std::uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<std::uint64_t>();
  return true;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

Entry parse_entry(const fs::path& file, const std::string& name, const json& j,
                  std::uint64_t buffer_len) {
  if (!j.is_object()) fail_tensor(file, name, "expected an object, found " + json_type(j));

  const auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string())
    fail_tensor(file, name, "expected string \"dtype\", found " +
                                (dt == j.end() ? std::string("none") : json_type(*dt)));
  const std::string dtype_name = dt->get<std::string>();
  const DtypeInfo* dtype = dtype_by_name(dtype_name);
  if (!dtype) {
    const bool known = std::any_of(std::begin(kKnownUnsupported), std::end(kKnownUnsupported),
                                   [&](const char* n) { return dtype_name == n; });
    fail_tensor(file, name,
                (known ? "unsupported dtype \"" : "unknown dtype \"") + dtype_name +
                    "\", expected one of " + supported_dtype_list());
  }

  const auto sh = j.find("shape");
  if (sh == j.end() || !sh->is_array())
    fail_tensor(file, name, "expected array \"shape\", found " +
                                (sh == j.end() ? std::string("none") : json_type(*sh)));
  std::vector<std::int64_t> shape;
  // numel × size must be computed without overflow, otherwise a crafted shape could make a
  // tiny byte range look like it matches.
  std::uint64_t nbytes = dtype->size;
  bool overflow = false;
  for (const auto& d : *sh) {
    std::uint64_t v = 0;
    if (!as_u64(d, v))
      fail_tensor(file, name, "shape entries must be non-negative integers, found " + d.dump());
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail_tensor(file, name, "shape dimension " + std::to_string(v) + " is too large");
    shape.push_back(static_cast<std::int64_t>(v));
    if (v != 0 && nbytes > std::numeric_limits<std::uint64_t>::max() / v) overflow = true;
    nbytes *= v;
  }
  // A zero dimension makes the tensor empty whatever the other dimensions say.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    overflow = false;
    nbytes = 0;
  }

  const auto off = j.find("data_offsets");
  std::uint64_t b = 0, e = 0;
  if (off == j.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], b) ||
      !as_u64((*off)[1], e))
    fail_tensor(file, name, "expected \"data_offsets\" as [begin, end] of non-negative integers, "
                            "found " +
                                (off == j.end() ? std::string("none") : off->dump()));
  if (b > e)
    fail_tensor(file, name, "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                                "] have begin after end");
  if (e > buffer_len)
    fail_tensor(file, name, "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                                "] out of bounds of the " + std::to_string(buffer_len) +
                                "-byte data buffer");
  if (overflow || e - b != nbytes)
    fail_tensor(file, name, "byte size mismatch: shape " + sh->dump() + " of " + dtype_name +
                                " needs " + (overflow ? std::string("too many") : std::to_string(nbytes)) +
                                " bytes, data_offsets span " + std::to_string(e - b));
  return Entry{name, dtype, std::move(shape), b, e};
}

std::map<std::string, std::string> parse_metadata(const fs::path& file, const json& j) {
  if (!j.is_object()) fail(file, "\"__metadata__\" must be an object, found " + json_type(j));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string())
      fail(file, "\"__metadata__\" value for key '" + k + "' must be a string, found " +
                     json_type(v));
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

TensorMap load_index(const fs::path& index) {
  const std::string text = read_file(index);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& ex) {
    fail(index, "invalid JSON in index: " + json_error_text(ex));
  }
  if (!j.is_object()) fail(index, "index must be a JSON object, found " + json_type(j));
  const auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object())
    fail(index, "expected object \"weight_map\" (tensor name -> shard file), found " +
                    (wm == j.end() ? std::string("none") : json_type(*wm)));
  if (wm->empty()) fail(index, "\"weight_map\" is empty");

  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      fail_tensor(index, name, "weight_map value must be a shard file name, found " +
                                   json_type(shard));
    const fs::path rel(shard.get<std::string>());
    // Index files come from downloads; confine shards to the index's own directory.
    const bool escapes = std::any_of(rel.begin(), rel.end(), [](const fs::path& c) {
      return c == "..";
    });
    if (rel.empty() || rel.is_absolute() || escapes)
      fail_tensor(index, name, "shard path '" + rel.string() +
                                   "' must be relative to the index directory without '..'");
    by_shard[rel.lexically_normal().string()].push_back(name);
  }

  TensorMap out;
  const fs::path dir = index.parent_path();
  for (const auto& [shard, names] : by_shard) {
    const fs::path shard_path = dir / shard;
    SafetensorsFile f = safetensors_load(shard_path);
    // Only the tensors the index assigns to this shard are taken, so a tensor stored twice
    // cannot silently come from whichever shard happens to load last.
    for (const auto& name : names) {
      auto it = f.tensors.find(name);
      if (it == f.tensors.end())
        fail_tensor(index, name, "weight_map names shard '" + shard +
                                     "' but the tensor is missing from " + shard_path.string());
      out.emplace(name, std::move(it->second));
    }
  }
  return out;
}

} // namespace

SafetensorsFile safetensors_load(const fs::path& file) {
  const std::string bytes = read_file(file);
  if (bytes.size() < 8)
    fail(file, "file truncated: " + std::to_string(bytes.size()) +
                   " bytes, expected at least the 8-byte header length");
  const std::uint64_t header_len = read_u64_le(bytes.data());
  const std::uint64_t after_prefix = bytes.size() - 8;
  if (header_len > kMaxHeaderBytes)
    fail(file, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_len > after_prefix)
    fail(file, "header length " + std::to_string(header_len) + " larger than the file (" +
                   std::to_string(after_prefix) + " bytes after the length prefix)");

  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const json::exception& ex) {
    fail(file, "invalid JSON header: " + json_error_text(ex));
  }
  if (!header.is_object()) fail(file, "header must be a JSON object, found " + json_type(header));

  const std::uint64_t buffer_len = after_prefix - header_len;
  const char* buffer = bytes.data() + 8 + header_len;

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey)
      out.metadata = parse_metadata(file, value);
    else
      entries.push_back(parse_entry(file, name, value, buffer_len));
  }

  // Tensors must tile the buffer exactly: an overlap aliases data, a gap or trailing bytes
  // mean the header and the buffer disagree about what was written.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < cursor)
      fail_tensor(file, e.name, "overlapping data_offsets: begins at " + std::to_string(e.begin) +
                                    " but '" + *prev + "' ends at " + std::to_string(cursor));
    if (e.begin > cursor)
      fail_tensor(file, e.name, "gap in data buffer: expected data_offsets to begin at " +
                                    std::to_string(cursor) + ", found " + std::to_string(e.begin));
    cursor = e.end;
    prev = &e.name;
  }
  if (cursor != buffer_len)
    fail(file, "trailing bytes after the data buffer: tensors end at " + std::to_string(cursor) +
                   " but the buffer has " + std::to_string(buffer_len) + " bytes");

  for (const auto& e : entries) {
    const std::size_t n = static_cast<std::size_t>(e.end - e.begin);
    if (e.dtype->type == at::kBool) {
      // Any byte but 0/1 in an at::kBool tensor is undefined behaviour in kernels.
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = static_cast<unsigned char>(buffer[e.begin + i]);
        if (v > 1)
          fail_tensor(file, e.name, "BOOL element " + std::to_string(i) + " has byte value " +
                                        std::to_string(v) + ", expected 0 or 1");
      }
    }
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    if (n > 0) std::memcpy(t.data_ptr(), buffer + e.begin, n);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

TensorMap safetensors_load_any(const fs::path& path) {
  const std::string s = path.string();
  if (ends_with(s, ".index.json")) return load_index(path);
  if (ends_with(s, ".safetensors")) return safetensors_load(path).tensors;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "model.safetensors", ec))
      return safetensors_load(path / "model.safetensors").tensors;
    if (fs::exists(path / "model.safetensors.index.json", ec))
      return load_index(path / "model.safetensors.index.json");
    if (fs::exists(path / "pytorch_model.bin", ec) || fs::exists(path / "pytorch_model.bin.index.json", ec))
      fail(path, "directory has pytorch_model.bin (a pickle, not read here) but no model.safetensors; convert it "
                 "once with: /usr/bin/python3 scripts/convert_to_safetensors.py '" + s + "'");
    fail(path, "directory has neither model.safetensors nor model.safetensors.index.json");
  }
  if (ends_with(s, ".bin"))
    fail(path, "a PyTorch pickle is not read here; convert its folder once with: /usr/bin/python3 "
               "scripts/convert_to_safetensors.py '" + path.parent_path().string() + "'");
  fail(path, "expected a .safetensors file, a *.index.json shard index, or a directory "
             "containing model.safetensors or model.safetensors.index.json");
}

void safetensors_save(const fs::path& file, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  atomic_write_file(file, safetensors_encode(file, tensors, metadata));
}

std::string safetensors_encode(const fs::path& file, const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    const DtypeInfo* dtype;
    at::Tensor t;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) fail_tensor(file, name, "name is reserved for metadata");
    if (!t.defined()) fail_tensor(file, name, "tensor is undefined");
    if (t.layout() != at::kStrided)
      fail_tensor(file, name, "expected a dense (strided) tensor");
    const DtypeInfo* dtype = dtype_by_type(t.scalar_type());
    if (!dtype)
      fail_tensor(file, name, std::string("dtype ") + c10::toString(t.scalar_type()) +
                                  " cannot be stored, expected one of " + supported_dtype_list());
    // resolve_neg: a lazily negated view would otherwise be written with its raw, un-negated bytes.
    items.push_back(Item{&name, dtype, t.detach().to(at::kCPU).resolve_neg().contiguous()});
  }
  // Widest dtype first (then by name), as the reference writer does: with the buffer starting
  // at an 8-aligned file offset, every tensor then starts aligned to its element size.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.dtype->rank > b.dtype->rank;
  });

  // ordered_json keeps the insertion order, so the header lists metadata first and tensors in
  // buffer order, making the output deterministic and easy to read.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  std::uint64_t offset = 0;
  for (const auto& it : items) {
    const std::uint64_t n = static_cast<std::uint64_t>(it.t.numel()) * it.dtype->size;
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = it.dtype->name;
    entry["shape"] = it.t.sizes().vec();
    entry["data_offsets"] = {offset, offset + n};
    header[*it.name] = std::move(entry);
    offset += n;
  }

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& ex) {
    fail(file, std::string("cannot encode header (names and metadata must be UTF-8): ") +
                   ex.what());
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header_text.size() + static_cast<std::size_t>(offset));
  append_u64_le(out, header_text.size());
  out += header_text;
  for (const auto& it : items) {
    const std::size_t n = static_cast<std::size_t>(it.t.numel()) * it.dtype->size;
    if (n > 0) out.append(static_cast<const char*>(it.t.data_ptr()), n);
  }
  return out;
}

} // namespace fedvlm
