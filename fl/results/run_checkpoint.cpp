// fl/results/run_checkpoint.cpp — checkpoint files: framing, checksum, CAF serialization, rotation.
#include "fl/results/run_checkpoint.hpp"

#include "support/atomic_file.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/serializer_impl.hpp>

#include <unistd.h>
#include <caf/deep_to_string.hpp>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fedvlm {

namespace {

constexpr char kMagic[8] = {'F', 'E', 'D', 'V', 'L', 'M', 'C', 'K'};
// 2: a CheckpointDeltaInfo follows the RunCheckpoint; 3: then the clients' top-k residuals;
// 4: then the delta's rules (CheckpointDeltaInfo::same_clients_as_base, left_out_take_global).
constexpr uint32_t kVersion = 4;
constexpr std::size_t kHeaderSize = sizeof kMagic + sizeof(uint32_t) + 2 * sizeof(uint64_t);

template <class T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

template <class T>
T get(std::string_view in, std::size_t offset) {
  T v;
  std::memcpy(&v, in.data() + offset, sizeof(T));
  return v;
}

/// The residuals of `clients` that have one, in order.
std::vector<ClientResidual> residuals_of(const std::vector<ClientCheckpoint>& clients) {
  std::vector<ClientResidual> out;
  for (const auto& cs : clients)
    if (!cs.residual.empty()) out.push_back({cs.id, cs.residual});
  return out;
}

std::string render(const caf::error& err) {
  return caf::to_string(err.category()) + " error " + std::to_string(err.code()) +
         (err.context().empty() ? std::string() : ": " + caf::deep_to_string(err.context()));
}

} // namespace

uint64_t config_hash(std::string_view text, uint64_t start) {
  uint64_t h = start;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {

/// The file's header: magic, version, the payload's size and its FNV-1a hash.
std::string checkpoint_header(std::size_t body_size, uint64_t body_hash) {
  std::string header(kMagic, sizeof kMagic);
  put<uint32_t>(header, kVersion);
  put<uint64_t>(header, body_size);
  put<uint64_t>(header, body_hash);
  return header;
}

/// Version 4's rules of a delta as one byte.
uint8_t delta_rules(const CheckpointDeltaInfo& info) {
  return static_cast<uint8_t>((info.same_clients_as_base ? 1 : 0) | (info.left_out_take_global ? 2 : 0));
}

/// Appends the checkpoint's payload to `bytes` (caf's binary format).
template <class Bytes>
void serialize_checkpoint(const StoredCheckpoint& stored, Bytes& bytes) {
  caf::serializer_impl<Bytes> sink{nullptr, bytes};
  auto copy = stored; // inspect() takes mutable references; tensors are shared, not copied
  // Crash counts without the trailing zeros (a reader pads them back): 4 bytes per client of
  // a large population would be most of a round's delta.
  std::vector<int>& crashes = copy.state.crashes;
  while (!crashes.empty() && crashes.back() == 0) crashes.pop_back();
  std::vector<ClientResidual> residuals = residuals_of(copy.state.clients);
  uint8_t rules = delta_rules(copy.info);
  if (auto err = sink(copy.state, copy.info, residuals, rules)) throw std::runtime_error("cannot serialize checkpoint: " + render(err));
}

/// caf's serializer's byte container over a file: what it appends goes to `fd` in pieces of
/// 1 MiB, hashed on the way (FNV-1a continued), so that a checkpoint of many clients is never
/// whole in memory. The serializer only appends here (it seeks only when asked to).
class FileBytes {
public:
  using value_type = char;
  FileBytes(int fd, const std::filesystem::path& path, std::size_t offset) : fd_(fd), path_(path), flushed_(offset) {}
  [[nodiscard]] std::size_t size() const { return flushed_ + pending_.size(); }
  char* data() { return pending_.data(); } // for a seek, which never comes
  char* end() { return nullptr; }
  void insert(char*, const char* first, const char* last) {
    pending_.insert(pending_.end(), first, last);
    if (pending_.size() >= kPiece) flush();
  }
  void insert(char*, std::size_t n, char value) {
    pending_.insert(pending_.end(), n, value);
    if (pending_.size() >= kPiece) flush();
  }
  void flush() {
    const std::string_view piece(pending_.data(), pending_.size());
    hash_ = config_hash(piece, hash_);
    write_fully(fd_, piece, path_);
    flushed_ += pending_.size();
    pending_.clear();
  }
  [[nodiscard]] uint64_t hash() const { return hash_; }

private:
  static constexpr std::size_t kPiece = std::size_t{1} << 20;
  int fd_;
  std::filesystem::path path_;
  std::size_t flushed_;
  uint64_t hash_ = config_hash("");
  std::vector<char> pending_;
};

} // namespace

std::string checkpoint_encode(const StoredCheckpoint& stored) {
  std::string out(kHeaderSize, '\0');
  serialize_checkpoint(stored, out);
  const std::string_view body(out.data() + kHeaderSize, out.size() - kHeaderSize);
  out.replace(0, kHeaderSize, checkpoint_header(body.size(), config_hash(body)));
  return out;
}

std::size_t checkpoint_write(const std::filesystem::path& file, const StoredCheckpoint& stored) {
  std::size_t total = 0;
  atomic_write_file_with(file, [&](int fd) {
    write_fully(fd, std::string(kHeaderSize, '\0'), file); // the header, once the payload's size and hash are known
    FileBytes body(fd, file, kHeaderSize);
    serialize_checkpoint(stored, body);
    body.flush();
    const std::string header = checkpoint_header(body.size() - kHeaderSize, body.hash());
    if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
      throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
    total = body.size();
  });
  return total;
}

std::string checkpoint_encode(const RunCheckpoint& checkpoint) {
  StoredCheckpoint stored;
  stored.state = checkpoint;
  return checkpoint_encode(stored);
}

StoredCheckpoint stored_checkpoint_decode(std::string_view bytes, const std::string& origin) {
  auto fail = [&](const std::string& why) -> StoredCheckpoint {
    throw std::runtime_error(origin + ": not a usable fedvlm-sim checkpoint: " + why);
  };
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return fail("missing the FEDVLMCK header");
  const auto version = get<uint32_t>(bytes, sizeof kMagic);
  if (version < 1 || version > kVersion)
    return fail("format version " + std::to_string(version) + ", this build reads versions 1 to " +
                std::to_string(kVersion));
  const auto size = get<uint64_t>(bytes, sizeof kMagic + 4);
  const auto sum = get<uint64_t>(bytes, sizeof kMagic + 12);
  if (size != bytes.size() - kHeaderSize)
    return fail("payload is " + std::to_string(bytes.size() - kHeaderSize) + " bytes, header says " +
                std::to_string(size) + " (truncated?)");
  const std::string_view body = bytes.substr(kHeaderSize);
  if (config_hash(body) != sum) return fail("checksum mismatch (the file is corrupt)");
  StoredCheckpoint out;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), body.data(), body.size()};
  if (auto err = source(out.state)) return fail(render(err));
  if (version >= 2)
    if (auto err = source(out.info)) return fail(render(err));
  if (version >= 3) {
    std::vector<ClientResidual> residuals;
    if (auto err = source(residuals)) return fail(render(err));
    std::size_t next = 0; // in the clients' order
    for (const ClientResidual& r : residuals) {
      while (next < out.state.clients.size() && out.state.clients[next].id != r.id) ++next;
      if (next == out.state.clients.size())
        return fail("a top-k residual for client " + std::to_string(r.id) + ", which the checkpoint does not hold");
      out.state.clients[next++].residual = r.residual;
    }
  }
  if (version >= 4) {
    uint8_t rules = 0;
    if (auto err = source(rules)) return fail(render(err));
    if (rules > 3) return fail("unknown delta rules " + std::to_string(rules));
    out.info.same_clients_as_base = (rules & 1) != 0;
    out.info.left_out_take_global = (rules & 2) != 0;
  }
  if (source.remaining() != 0) return fail(std::to_string(source.remaining()) + " trailing bytes");
  return out;
}

RunCheckpoint checkpoint_decode(std::string_view bytes, const std::string& origin) {
  StoredCheckpoint stored = stored_checkpoint_decode(bytes, origin);
  if (stored.info.base_round != 0)
    throw std::runtime_error(origin + ": a delta over the checkpoint of round " + std::to_string(stored.info.base_round) +
                             ": read it with checkpoint_load, which loads that one too");
  return std::move(stored.state);
}

std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int round) {
  char name[32];
  std::snprintf(name, sizeof name, "round_%06d.ckpt", round);
  return run_dir / "checkpoints" / name;
}

std::vector<std::filesystem::path> checkpoint_files(const std::filesystem::path& run_dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  const auto dir = run_dir / "checkpoints";
  if (!std::filesystem::is_directory(dir, ec)) return files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 17 && name.rfind("round_", 0) == 0 && e.path().extension() == ".ckpt")
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end()); // zero-padded: name order is round order
  return files;
}

void checkpoint_save(const std::filesystem::path& run_dir, const RunCheckpoint& checkpoint, int keep) {
  const auto file = checkpoint_path(run_dir, checkpoint.round);
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) throw std::runtime_error("cannot create " + file.parent_path().string() + ": " + ec.message());
  StoredCheckpoint stored;
  stored.state = checkpoint;
  (void)checkpoint_write(file, stored);
  auto files = checkpoint_files(run_dir);
  const std::size_t keep_n = static_cast<std::size_t>(std::max(1, keep));
  for (std::size_t i = 0; i + keep_n < files.size(); ++i) std::filesystem::remove(files[i], ec);
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir) {
  auto files = checkpoint_files(run_dir);
  if (files.empty()) return std::nullopt;
  return files.back();
}

} // namespace fedvlm
