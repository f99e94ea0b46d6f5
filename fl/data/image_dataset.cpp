// fl/data/image_dataset.cpp — MNIST and Fashion-MNIST (IDX, gzip or plain) and CIFAR-10 (binary) loaders.
#include "fl/data/image_dataset.hpp"
#include "fl/runtime/interrupt.hpp"

#include "model/tensor_map.hpp"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace fedvlm {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// ImageDataset
// ---------------------------------------------------------------------------------------------

std::vector<int64_t> ImageDataset::label_vector() const {
  if (!labels.defined()) return {};
  const at::Tensor l = labels.to(at::kLong).contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + l.numel());
}

at::Tensor ImageDataset::images01() const {
  if (mean.empty()) return images;
  const auto channels = static_cast<int64_t>(mean.size());
  if (images.dim() != 4 || images.size(1) != channels || stdev.size() != mean.size())
    throw std::logic_error("ImageDataset::images01: " + std::to_string(mean.size()) + " channel means and " +
                           std::to_string(stdev.size()) + " deviations for images of shape " +
                           tensor_shape_string(images.sizes()));
  const at::Tensor m = at::tensor(mean).view({1, channels, 1, 1});
  const at::Tensor s = at::tensor(stdev).view({1, channels, 1, 1});
  return (images * s + m).clamp_(0.0, 1.0);
}

ImageDataset ImageDataset::subset(const std::vector<int64_t>& indices) const {
  const int64_t n = size();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= n) {
      throw std::runtime_error("ImageDataset::subset: index " + std::to_string(indices[i]) +
                               " (position " + std::to_string(i) +
                               " in the index list) is out of range for a dataset of " +
                               std::to_string(n) + " samples");
    }
  }
  ImageDataset out;
  out.class_names = class_names;
  out.mean = mean;
  out.stdev = stdev;
  if (!labels.defined()) return out; // only reachable with no indices: nothing to select
  // from_blob borrows the caller's memory; clone so the tensor owns it.
  const at::Tensor idx =
      at::from_blob(const_cast<int64_t*>(indices.data()),
                    {static_cast<int64_t>(indices.size())}, at::kLong)
          .clone();
  out.labels = labels.index_select(0, idx);
  if (images.defined()) out.images = images.index_select(0, idx);
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST
// ---------------------------------------------------------------------------------------------

constexpr uint32_t kIdxImagesMagic = 2051; // 0x00000803: unsigned bytes, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 2049; // 0x00000801: unsigned bytes, 1 dimension
constexpr uint32_t kMnistSide = 28;
// Fashion-MNIST holds 60,000 + 10,000 items (EMNIST's largest split 700,000). A bigger count is
// a corrupt header, and a gzip file can inflate a thousandfold: refused before reading on.
constexpr uint32_t kMaxIdxItems = 1'000'000;
constexpr int64_t kNumClasses = 10;
constexpr float kFashionMean = 0.2860F;
constexpr float kFashionStd = 0.3530F;

const char* const kFashionHint =
    "install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (files land in "
    "/usr/share/datasets/fashion-mnist) or point data.path at a directory holding "
    "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]";

// MNIST's customary normalisation (the train split's pixel mean and std, as torchvision's
// examples use them).
constexpr float kMnistMean = 0.1307F;
constexpr float kMnistStd = 0.3081F;

const char* const kMnistHint =
    "MNIST is not a Debian package: put the four IDX files "
    "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (from LeCun's MNIST page or a mirror of it) in "
    "/usr/share/datasets/mnist or point data.path at the directory holding them";

/// What tells the IDX datasets apart: their name in messages, where to get them, how to
/// normalise, what the classes are called.
struct IdxDatasetSpec {
  const char* name;
  const char* hint;
  float mean;
  float stdev;
  std::vector<std::string> class_names;
};

std::vector<std::string> fashion_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

// gzopen reads non-gzip files transparently, so one reader serves both `.gz` and plain IDX.
class GzReader {
 public:
  explicit GzReader(fs::path path) : path_(std::move(path)) {
    errno = 0;
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) {
      throw std::runtime_error("cannot open " + path_.string() + ": " +
                               (errno != 0 ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(file_, 1U << 18); // larger buffer: the default 8 KiB makes 47 MB reads slow
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Fills up to `n` bytes; fewer only when the data ends. A gzip stream that stops before its
  // trailer (a cut-off download) surfaces here as Z_BUF_ERROR, reported as truncation.
  std::size_t read(uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      // 16 MiB at a time, with Ctrl-C heard in between: a large split takes seconds to inflate.
      throw_if_interrupted();
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1U << 24));
      const int r = gzread(file_, dst + got, chunk);
      if (r < 0) fail();
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    int errnum = Z_OK;
    gzerror(file_, &errnum);
    if (errnum != Z_OK) fail();
    return got;
  }

  // gzclose reports a stream that ended mid-member even if every read looked fine.
  void close() {
    gzFile f = std::exchange(file_, nullptr);
    const int rc = gzclose(f);
    if (rc == Z_BUF_ERROR) {
      throw std::runtime_error(path_.string() +
                               ": truncated gzip stream (file ends before the gzip trailer)");
    }
    if (rc != Z_OK) {
      throw std::runtime_error(path_.string() + ": error closing gzip stream (zlib code " +
                               std::to_string(rc) + ")");
    }
  }

  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  [[noreturn]] void fail() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    std::string what = (msg != nullptr && *msg != '\0') ? msg : "unknown zlib error";
    // zlib prefixes the path itself; drop it since every message here already leads with it.
    const std::string prefix = path_.string() + ": ";
    if (what.compare(0, prefix.size(), prefix) == 0) what.erase(0, prefix.size());
    if (errnum == Z_BUF_ERROR) {
      throw std::runtime_error(path_.string() + ": truncated gzip stream (" + what + ")");
    }
    if (errnum == Z_ERRNO) {
      throw std::runtime_error(path_.string() + ": read error: " + std::strerror(errno));
    }
    throw std::runtime_error(path_.string() + ": corrupt gzip data (" + what + ")");
  }

  fs::path path_;
  gzFile file_ = nullptr;
};

uint32_t read_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

struct IdxFile {
  std::vector<uint32_t> dims;   // from the header: count first
  std::vector<uint8_t> payload; // exactly product(dims) bytes
};

// Reads an unsigned-byte IDX file whose dimensions after the count must equal `item_dims`, and
// checks it holds exactly the bytes its header promises: a short file means a cut-off
// download, a long one the wrong file.
IdxFile read_idx(const fs::path& path, uint32_t magic, const std::vector<uint32_t>& item_dims,
                 const char* what) {
  GzReader in(path);
  const std::size_t ndims = 1 + item_dims.size();
  const std::size_t header_bytes = 4 * (1 + ndims);
  std::array<uint8_t, 16> header{};
  const std::size_t got_header = in.read(header.data(), header_bytes);
  if (got_header < header_bytes) {
    throw std::runtime_error(path.string() + ": truncated: expected a " +
                             std::to_string(header_bytes) + "-byte IDX header, found only " +
                             std::to_string(got_header) + " bytes");
  }
  const uint32_t found_magic = read_be32(header.data());
  if (found_magic != magic) {
    throw std::runtime_error(path.string() + ": bad magic number " +
                             std::to_string(found_magic) + ", expected " +
                             std::to_string(magic) + " (IDX " + what + " file)");
  }
  IdxFile out;
  for (std::size_t d = 0; d < ndims; ++d) out.dims.push_back(read_be32(header.data() + 4 * (d + 1)));
  // Checked before sizing the payload so that garbage dimensions cannot overflow the product.
  if (!std::equal(item_dims.begin(), item_dims.end(), out.dims.begin() + 1)) {
    std::string found;
    std::string want;
    for (std::size_t d = 0; d < item_dims.size(); ++d) {
      found += (d > 0 ? "x" : "") + std::to_string(out.dims[d + 1]);
      want += (d > 0 ? "x" : "") + std::to_string(item_dims[d]);
    }
    throw std::runtime_error(path.string() + ": " + what + " are " + found + ", expected " + want);
  }
  if (out.dims[0] > kMaxIdxItems) {
    throw std::runtime_error(path.string() + ": header claims " + std::to_string(out.dims[0]) + " " + what +
                             "; expected at most " + std::to_string(kMaxIdxItems) +
                             " (Fashion-MNIST has 60000 + 10000): corrupt header or wrong file");
  }
  uint64_t expected = out.dims[0];
  for (const uint32_t d : item_dims) expected *= d;
  // Grow with the data rather than trusting the header for the allocation: a corrupt count
  // must produce a truncation error, not a multi-gigabyte bad_alloc.
  constexpr std::size_t kChunk = std::size_t{1} << 22;
  out.payload.reserve(static_cast<std::size_t>(std::min<uint64_t>(expected, 64U << 20)));
  while (out.payload.size() < expected) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<uint64_t>(kChunk, expected - out.payload.size()));
    const std::size_t old = out.payload.size();
    out.payload.resize(old + want);
    const std::size_t got = in.read(out.payload.data() + old, want);
    out.payload.resize(old + got);
    if (got < want) break;
  }
  if (out.payload.size() < expected) {
    throw std::runtime_error(path.string() + ": truncated: header promises " +
                             std::to_string(out.dims[0]) + " " + what + " (" +
                             std::to_string(expected) +
                             " data bytes after the header), file holds only " +
                             std::to_string(out.payload.size()) + " bytes");
  }
  uint8_t extra = 0;
  if (in.read(&extra, 1) != 0) {
    throw std::runtime_error(path.string() + ": more data than the header promises (" +
                             std::to_string(out.dims[0]) + " " + what + ", " +
                             std::to_string(expected) +
                             " data bytes); wrong or corrupt file");
  }
  in.close();
  return out;
}

// Prefers the `.gz` the Debian package ships; the plain file is a fallback for hand-unpacked
// copies.
fs::path find_idx(const fs::path& dir, const std::string& stem, const IdxDatasetSpec& spec) {
  const fs::path gz = dir / (stem + ".gz");
  const fs::path plain = dir / stem;
  std::error_code ec;
  if (fs::is_regular_file(gz, ec)) return gz;
  if (fs::is_regular_file(plain, ec)) return plain;
  throw std::runtime_error(std::string(spec.name) + " file not found: " + gz.string() + " (nor uncompressed " +
                           plain.string() + "); " + spec.hint);
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10
// ---------------------------------------------------------------------------------------------

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;
constexpr int64_t kCifarRecord = 1 + kCifarPixels; // 3073

const char* const kCifarExpected =
    "expected the CIFAR-10 binary version (data_batch_1.bin ... data_batch_5.bin, "
    "test_batch.bin, optionally batches.meta.txt)";

std::vector<std::string> cifar_default_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer",
          "dog",      "frog",       "horse", "ship", "truck"};
}

std::vector<std::string> cifar_class_names(const fs::path& dir) {
  const fs::path meta = dir / "batches.meta.txt";
  std::error_code ec;
  if (!fs::exists(meta, ec)) return cifar_default_class_names();
  std::ifstream in(meta);
  if (!in) throw std::runtime_error("cannot open " + meta.string() + ": " + std::strerror(errno));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    // The official file pads with blank lines and may carry CRLF endings.
    const auto first = line.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r\n");
    names.push_back(line.substr(first, last - first + 1));
  }
  if (in.bad()) throw std::runtime_error("error reading " + meta.string());
  if (static_cast<int64_t>(names.size()) != kNumClasses) {
    throw std::runtime_error(meta.string() + ": found " + std::to_string(names.size()) +
                             " class names, expected " + std::to_string(kNumClasses));
  }
  return names;
}

} // namespace

namespace {

ImageDataset load_idx_dataset(const fs::path& dir, DataSplit split, const IdxDatasetSpec& spec) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(std::string(spec.name) + " directory " + dir.string() +
                             " does not exist or is not a directory; " + spec.hint);
  }
  const std::string prefix = split == DataSplit::train ? "train" : "t10k";
  const fs::path images_path = find_idx(dir, prefix + "-images-idx3-ubyte", spec);
  const fs::path labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte", spec);

  // Labels first: they are small, so a bad labels file fails before 47 MB are decompressed.
  const IdxFile labels = read_idx(labels_path, kIdxLabelsMagic, {}, "labels");
  const IdxFile images = read_idx(images_path, kIdxImagesMagic, {kMnistSide, kMnistSide}, "images");
  if (images.dims[0] != labels.dims[0]) {
    throw std::runtime_error(images_path.string() + " holds " + std::to_string(images.dims[0]) +
                             " images but " + labels_path.string() + " holds " +
                             std::to_string(labels.dims[0]) + " labels; expected equal counts");
  }
  for (std::size_t i = 0; i < labels.payload.size(); ++i) {
    if (labels.payload[i] >= kNumClasses) {
      throw std::runtime_error(labels_path.string() + ": label " +
                               std::to_string(labels.payload[i]) + " at index " +
                               std::to_string(i) + " is outside 0..9");
    }
  }

  const auto n = static_cast<int64_t>(labels.dims[0]);
  ImageDataset ds;
  // from_blob borrows the vectors; the dtype conversions below copy into owned tensors.
  ds.images = at::from_blob(const_cast<uint8_t*>(images.payload.data()),
                            {n, 1, int64_t{kMnistSide}, int64_t{kMnistSide}}, at::kByte)
                  .to(at::kFloat);
  ds.images.div_(255.0F).sub_(spec.mean).div_(spec.stdev);
  ds.mean = {spec.mean};
  ds.stdev = {spec.stdev};
  ds.labels =
      at::from_blob(const_cast<uint8_t*>(labels.payload.data()), {n}, at::kByte).to(at::kLong);
  ds.class_names = spec.class_names;
  return ds;
}

} // namespace

ImageDataset load_fashion_mnist(const fs::path& dir, DataSplit split) {
  return load_idx_dataset(dir, split, {"Fashion-MNIST", kFashionHint, kFashionMean, kFashionStd, fashion_class_names()});
}

ImageDataset load_mnist(const fs::path& dir, DataSplit split) {
  return load_idx_dataset(dir, split,
                          {"MNIST", kMnistHint, kMnistMean, kMnistStd, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}});
}

ImageDataset load_cifar10(const fs::path& dir, DataSplit split) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error("CIFAR-10 directory " + dir.string() +
                             " does not exist or is not a directory; " + kCifarExpected +
                             " in that directory");
  }
  std::vector<fs::path> files;
  if (split == DataSplit::train) {
    for (int b = 1; b <= 5; ++b) files.push_back(dir / ("data_batch_" + std::to_string(b) + ".bin"));
  } else {
    files.push_back(dir / "test_batch.bin");
  }

  // Size every file up front so all records land in one buffer, avoiding a concatenation copy.
  std::vector<int64_t> records;
  int64_t total = 0;
  for (const fs::path& f : files) {
    if (!fs::is_regular_file(f, ec)) {
      throw std::runtime_error("CIFAR-10 file not found: " + f.string() + "; " + kCifarExpected +
                               " in " + dir.string());
    }
    const auto bytes = fs::file_size(f, ec);
    if (ec) throw std::runtime_error("cannot stat " + f.string() + ": " + ec.message());
    if (bytes == 0 || bytes % kCifarRecord != 0) {
      throw std::runtime_error(f.string() + ": size " + std::to_string(bytes) +
                               " bytes is not a positive multiple of the " +
                               std::to_string(kCifarRecord) +
                               "-byte CIFAR-10 record (1 label + 3072 pixels; a full batch is "
                               "10000 records = 30730000 bytes)");
    }
    records.push_back(static_cast<int64_t>(bytes / kCifarRecord));
    total += records.back();
  }

  at::Tensor raw = at::empty({total, kCifarRecord}, at::kByte);
  uint8_t* base = raw.data_ptr<uint8_t>();
  int64_t offset = 0;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const fs::path& f = files[fi];
    const int64_t want = records[fi] * kCifarRecord;
    std::ifstream in(f, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + f.string() + ": " + std::strerror(errno));
    uint8_t* dst = base + offset * kCifarRecord;
    in.read(reinterpret_cast<char*>(dst), want);
    if (in.gcount() != want) {
      throw std::runtime_error(f.string() + ": truncated: read " + std::to_string(in.gcount()) +
                               " of " + std::to_string(want) + " bytes (file changed while loading?)");
    }
    for (int64_t r = 0; r < records[fi]; ++r) {
      const uint8_t label = dst[r * kCifarRecord];
      if (label >= kNumClasses) {
        throw std::runtime_error(f.string() + ": record " + std::to_string(r) + " has label " +
                                 std::to_string(label) + ", expected 0..9");
      }
    }
    offset += records[fi];
  }

  ImageDataset ds;
  ds.class_names = cifar_class_names(dir);
  // Each record is label then R, G, B planes, so the pixel bytes are already CHW.
  ds.images = raw.narrow(1, 1, kCifarPixels)
                  .reshape({total, 3, kCifarSide, kCifarSide})
                  .to(at::kFloat)
                  .contiguous();
  ds.mean = {0.4914F, 0.4822F, 0.4465F};
  ds.stdev = {0.2470F, 0.2435F, 0.2616F};
  ds.images.div_(255.0F).sub_(at::tensor(ds.mean).view({1, 3, 1, 1})).div_(at::tensor(ds.stdev).view({1, 3, 1, 1}));
  ds.labels = raw.select(1, 0).to(at::kLong).contiguous();
  return ds;
}

} // namespace fedvlm
