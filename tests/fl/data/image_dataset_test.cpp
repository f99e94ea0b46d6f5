// tests/fl/data/image_dataset_test.cpp — MNIST / Fashion-MNIST / CIFAR-10 loaders on tiny synthetic files and the real data.
#include "fl/data/image_dataset.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

constexpr float kFashionMean = 0.2860F;
constexpr float kFashionStd = 0.3530F;
constexpr std::array<float, 3> kCifarMean{0.4914F, 0.4822F, 0.4465F};
constexpr std::array<float, 3> kCifarStd{0.2470F, 0.2435F, 0.2616F};
constexpr int kRecord = 3073;

void put_be32(Bytes& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v >> 24));
  b.push_back(static_cast<uint8_t>(v >> 16));
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void write_plain(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good()) << p;
}

void write_gz(const fs::path& p, const Bytes& b) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr) << p;
  if (!b.empty()) {
    ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Deterministic but non-constant, so misplaced pixels and poor compression both show up.
uint8_t fashion_pixel(int image, int k) { return static_cast<uint8_t>((k * 7 + image * 13) % 256); }

Bytes idx_images(uint32_t count_in_header, int images_written, uint32_t rows = 28,
                 uint32_t cols = 28, uint32_t magic = 2051) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count_in_header);
  put_be32(b, rows);
  put_be32(b, cols);
  for (int i = 0; i < images_written; ++i) {
    for (uint32_t k = 0; k < rows * cols; ++k) b.push_back(fashion_pixel(i, static_cast<int>(k)));
  }
  return b;
}

Bytes idx_labels(const std::vector<uint8_t>& labels, uint32_t magic = 2049) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

float fashion_norm(uint8_t v) { return (static_cast<float>(v) / 255.0F - kFashionMean) / kFashionStd; }

uint8_t cifar_byte(int record, int channel, int i) {
  return static_cast<uint8_t>((i * (3 + 2 * channel) + record * 11 + channel * 50) % 256);
}

Bytes cifar_records(const std::vector<uint8_t>& labels) {
  Bytes b;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 1024; ++i) b.push_back(cifar_byte(static_cast<int>(r), c, i));
    }
  }
  return b;
}

// Asserts that `fn` throws std::runtime_error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "message lacks \"" << part << "\": " << msg;
    }
  }
}

class ImageDatasetTest : public ::testing::Test {
 protected:
  // A valid 3-image t10k pair, gzip-compressed.
  void write_fashion_test_split(const std::vector<uint8_t>& labels = {3, 0, 9}) {
    write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(3, 3));
    write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels(labels));
  }

  fedvlm::testing::TempDir tmp_{"fedvlm-imgds"};
  const fs::path dir_ = tmp_.path();
};

void expect_fashion_pixels(const ImageDataset& ds, int n) {
  ASSERT_EQ(ds.images.sizes(), (std::vector<int64_t>{n, 1, 28, 28}));
  ASSERT_EQ(ds.images.scalar_type(), at::kFloat);
  const at::Tensor img = ds.images.contiguous();
  const float* p = img.data_ptr<float>();
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 784; ++k) {
      ASSERT_NEAR(p[i * 784 + k], fashion_norm(fashion_pixel(i, k)), 1e-5)
          << "image " << i << " pixel " << k;
    }
  }
}

// --- Fashion-MNIST -----------------------------------------------------------------------------

TEST_F(ImageDatasetTest, FashionMnistGzipLoadsNormalisedPixelsAndLabels) {
  write_fashion_test_split({3, 0, 9});
  const ImageDataset ds = load_fashion_mnist(dir_, DataSplit::test);
  EXPECT_EQ(ds.size(), 3);
  expect_fashion_pixels(ds, 3);
  // Pixel 0 of image 0 is 0, so it maps to -mean/std exactly.
  EXPECT_NEAR(ds.images[0][0][0][0].item<float>(), -0.2860F / 0.3530F, 1e-6);
  // Image 1, pixel (row 1, col 2) = k 30: (30*7 + 13) % 256 = 223.
  EXPECT_NEAR(ds.images[1][0][1][2].item<float>(), (223.0F / 255.0F - 0.2860F) / 0.3530F, 1e-6);
  ASSERT_EQ(ds.labels.scalar_type(), at::kLong);
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{3, 0, 9}));
  ASSERT_EQ(ds.num_classes(), 10);
  EXPECT_EQ(ds.class_names.front(), "T-shirt/top");
  EXPECT_EQ(ds.class_names[4], "Coat");
  EXPECT_EQ(ds.class_names.back(), "Ankle boot");
  // images01() gives the bytes back as [0, 1] intensities (what CLIP's preprocessing expects),
  // for the dataset and for a subset of it.
  const at::Tensor raw = ds.images01();
  EXPECT_NEAR(raw[0][0][0][0].item<float>(), 0.0F, 1e-6);
  EXPECT_NEAR(raw[1][0][1][2].item<float>(), 223.0F / 255.0F, 1e-6);
  EXPECT_NEAR(ds.subset({1}).images01()[0][0][1][2].item<float>(), 223.0F / 255.0F, 1e-6);
}

TEST_F(ImageDatasetTest, MnistReadsTheSameIdxFilesWithItsOwnNormalisationAndNames) {
  write_fashion_test_split({3, 0, 9});
  const ImageDataset ds = load_mnist(dir_, DataSplit::test);
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{3, 0, 9}));
  // Image 1, pixel k 30 is 223 (as above), normalised with MNIST's constants, not Fashion-MNIST's.
  EXPECT_NEAR(ds.images[1][0][1][2].item<float>(), (223.0F / 255.0F - 0.1307F) / 0.3081F, 1e-6);
  EXPECT_NEAR(ds.images[0][0][0][0].item<float>(), -0.1307F / 0.3081F, 1e-6);
  ASSERT_EQ(ds.mean, (std::vector<float>{0.1307F}));
  ASSERT_EQ(ds.stdev, (std::vector<float>{0.3081F}));
  EXPECT_NEAR(ds.images01()[1][0][1][2].item<float>(), 223.0F / 255.0F, 1e-6);
  ASSERT_EQ(ds.num_classes(), 10);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(ds.class_names[static_cast<std::size_t>(c)], std::to_string(c));
  // Its errors name MNIST and where the files go, not Fashion-MNIST's Debian package.
  expect_error([&] { (void)load_mnist(dir_, DataSplit::train); },
               {"MNIST file not found", "train-images-idx3-ubyte.gz", "/usr/share/datasets/mnist", "data.path"});
  const fs::path nowhere = dir_ / "nowhere";
  try {
    (void)load_mnist(nowhere, DataSplit::test);
    ADD_FAILURE() << "expected an error for a missing directory";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("MNIST directory " + nowhere.string(), 0), 0u) << msg;
    EXPECT_EQ(msg.find("dataset-fashion-mnist"), std::string::npos) << msg;
  }
}

TEST_F(ImageDatasetTest, FashionMnistPlainFilesLoadTrainSplit) {
  write_plain(dir_ / "train-images-idx3-ubyte", idx_images(2, 2));
  write_plain(dir_ / "train-labels-idx1-ubyte", idx_labels({7, 1}));
  const ImageDataset ds = load_fashion_mnist(dir_, DataSplit::train);
  expect_fashion_pixels(ds, 2);
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{7, 1}));
  // The train split must not pick up t10k files and vice versa.
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {"t10k-images-idx3-ubyte.gz"});
}

TEST_F(ImageDatasetTest, FashionMnistPrefersGzipOverPlain) {
  write_fashion_test_split({1, 2, 3});
  write_plain(dir_ / "t10k-labels-idx1-ubyte", idx_labels({4, 5, 6}));
  const ImageDataset ds = load_fashion_mnist(dir_, DataSplit::test);
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(ImageDatasetTest, FashionMnistTruncatedGzipStreamIsReported) {
  write_fashion_test_split();
  const fs::path images = dir_ / "t10k-images-idx3-ubyte.gz";
  Bytes gz = read_all(images);
  ASSERT_GT(gz.size(), 100U);
  gz.resize(gz.size() / 2); // a cut-off download: no gzip trailer, half the deflate data
  write_plain(images, gz);
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {images.string(), "truncated"});
}

TEST_F(ImageDatasetTest, FashionMnistTruncatedGzipTrailerIsReported) {
  write_fashion_test_split();
  const fs::path labels = dir_ / "t10k-labels-idx1-ubyte.gz";
  Bytes gz = read_all(labels);
  gz.resize(gz.size() - 4); // drops ISIZE only: every payload byte decompresses fine
  write_plain(labels, gz);
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {labels.string(), "truncated"});
}

TEST_F(ImageDatasetTest, FashionMnistFewerImagesThanHeaderPromisesIsTruncation) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(5, 3)); // valid gzip, short payload
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0, 1, 2, 3, 4}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(), "truncated", "5 images",
                std::to_string(5 * 784), std::to_string(3 * 784)});
}

// A gzip file inflates a thousandfold: a count far beyond any IDX data set is refused on the
// header alone, before the payload is read.
TEST_F(ImageDatasetTest, FashionMnistAbsurdItemCountIsRefusedFromTheHeader) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(2'000'000, 1));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(), "header claims 2000000 images", "at most 1000000"});
}

TEST_F(ImageDatasetTest, FashionMnistPlainTruncatedHeaderIsReported) {
  write_fashion_test_split();
  write_plain(dir_ / "t10k-labels-idx1-ubyte.gz", Bytes{0, 0, 8, 1, 0}); // plain, 5 bytes
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-labels-idx1-ubyte.gz").string(), "truncated", "8-byte"});
}

TEST_F(ImageDatasetTest, FashionMnistExtraTrailingDataIsRejected) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(2, 3));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0, 1}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(), "more data"});
}

TEST_F(ImageDatasetTest, FashionMnistWrongMagicIsReported) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(3, 3, 28, 28, /*magic=*/2049));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0, 1, 2}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(), "magic", "2049", "2051"});

  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(3, 3));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0, 1, 2}, /*magic=*/2051));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-labels-idx1-ubyte.gz").string(), "magic", "2051", "2049"});
}

TEST_F(ImageDatasetTest, FashionMnistWrongImageShapeIsReported) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(1, 1, 27, 28));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(), "27x28", "28x28"});
}

TEST_F(ImageDatasetTest, FashionMnistLabelImageCountMismatchNamesBothFiles) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(3, 3));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels({0, 1}));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-images-idx3-ubyte.gz").string(),
                (dir_ / "t10k-labels-idx1-ubyte.gz").string(), "3 images", "2 labels"});
}

TEST_F(ImageDatasetTest, FashionMnistLabelOutOfRangeIsReported) {
  write_fashion_test_split({0, 10, 2});
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-labels-idx1-ubyte.gz").string(), "label 10", "index 1"});
}

TEST_F(ImageDatasetTest, FashionMnistMissingFileSaysHowToGetIt) {
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(3, 3));
  expect_error([&] { (void)load_fashion_mnist(dir_, DataSplit::test); },
               {(dir_ / "t10k-labels-idx1-ubyte.gz").string(),
                "apt-get install dataset-fashion-mnist", "data.path"});
}

TEST_F(ImageDatasetTest, MissingDirectoryIsReportedByBothLoaders) {
  const fs::path nowhere = dir_ / "does-not-exist";
  expect_error([&] { (void)load_fashion_mnist(nowhere, DataSplit::train); },
               {nowhere.string(), "apt-get install dataset-fashion-mnist", "data.path"});
  expect_error([&] { (void)load_cifar10(nowhere, DataSplit::test); },
               {nowhere.string(), "CIFAR-10 binary version (data_batch_1.bin"});
}

// --- CIFAR-10 ----------------------------------------------------------------------------------

TEST_F(ImageDatasetTest, Cifar10TestBatchChannelOrderAndNormalisation) {
  write_plain(dir_ / "test_batch.bin", cifar_records({6, 0, 9}));
  const ImageDataset ds = load_cifar10(dir_, DataSplit::test);
  ASSERT_EQ(ds.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  ASSERT_EQ(ds.images.scalar_type(), at::kFloat);
  ASSERT_EQ(ds.labels.scalar_type(), at::kLong);
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{6, 0, 9}));
  const at::Tensor img = ds.images.contiguous();
  const float* p = img.data_ptr<float>();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 1024; ++i) {
        const float want =
            (static_cast<float>(cifar_byte(r, c, i)) / 255.0F - kCifarMean[c]) / kCifarStd[c];
        ASSERT_NEAR(p[(r * 3 + c) * 1024 + i], want, 1e-5) << "record " << r << " ch " << c << " i " << i;
      }
    }
  }
  // Record 1, first byte of each plane: R = 11, G = 61, B = 111 — R must come first.
  EXPECT_NEAR(ds.images[1][0][0][0].item<float>(), (11.0F / 255.0F - 0.4914F) / 0.2470F, 1e-6);
  EXPECT_NEAR(ds.images[1][1][0][0].item<float>(), (61.0F / 255.0F - 0.4822F) / 0.2435F, 1e-6);
  EXPECT_NEAR(ds.images[1][2][0][0].item<float>(), (111.0F / 255.0F - 0.4465F) / 0.2616F, 1e-6);
  // Row-major: (row 2, col 5) is plane index 69; record 0 G = (69*5 + 50) % 256 = 139.
  EXPECT_NEAR(ds.images[0][1][2][5].item<float>(), (139.0F / 255.0F - 0.4822F) / 0.2435F, 1e-6);
  EXPECT_NEAR(ds.images01()[0][1][2][5].item<float>(), 139.0F / 255.0F, 1e-6);
  EXPECT_NEAR(ds.images01()[1][2][0][0].item<float>(), 111.0F / 255.0F, 1e-6);
  ASSERT_EQ(ds.num_classes(), 10);
  EXPECT_EQ(ds.class_names.front(), "airplane");
  EXPECT_EQ(ds.class_names[6], "frog");
  EXPECT_EQ(ds.class_names.back(), "truck");
}

TEST_F(ImageDatasetTest, Cifar10TrainConcatenatesBatchesInOrderAndReadsMeta) {
  std::vector<int64_t> want;
  for (int b = 1; b <= 5; ++b) {
    std::vector<uint8_t> labels;
    for (int r = 0; r < 3; ++r) {
      labels.push_back(static_cast<uint8_t>((b * 3 + r) % 10));
      want.push_back((b * 3 + r) % 10);
    }
    write_plain(dir_ / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(labels));
  }
  {
    std::ofstream meta(dir_ / "batches.meta.txt", std::ios::binary);
    meta << "plane\r\nauto\r\n\r\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n\n";
  }
  const ImageDataset ds = load_cifar10(dir_, DataSplit::train);
  EXPECT_EQ(ds.size(), 15);
  EXPECT_EQ(ds.images.size(0), 15);
  EXPECT_EQ(ds.label_vector(), want);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"plane", "auto", "bird", "cat", "deer", "dog",
                                                      "frog", "horse", "ship", "truck"}));
  // Record 0 of batch 2 sits at index 3 and restarts the per-file byte pattern.
  EXPECT_TRUE(at::equal(ds.images[3], ds.images[0]));
  EXPECT_FALSE(at::equal(ds.images[1], ds.images[0]));
}

TEST_F(ImageDatasetTest, Cifar10MetaWithWrongClassCountIsRejected) {
  write_plain(dir_ / "test_batch.bin", cifar_records({0}));
  {
    std::ofstream meta(dir_ / "batches.meta.txt");
    meta << "a\nb\n";
  }
  expect_error([&] { (void)load_cifar10(dir_, DataSplit::test); },
               {(dir_ / "batches.meta.txt").string(), "2 class names", "expected 10"});
}

TEST_F(ImageDatasetTest, Cifar10BadFileSizeIsReported) {
  Bytes b = cifar_records({1, 2});
  b.resize(b.size() + 5);
  write_plain(dir_ / "test_batch.bin", b);
  expect_error([&] { (void)load_cifar10(dir_, DataSplit::test); },
               {(dir_ / "test_batch.bin").string(), std::to_string(2 * kRecord + 5), "3073"});

  write_plain(dir_ / "test_batch.bin", Bytes{});
  expect_error([&] { (void)load_cifar10(dir_, DataSplit::test); },
               {(dir_ / "test_batch.bin").string(), "size 0", "3073"});
}

TEST_F(ImageDatasetTest, Cifar10BadLabelNamesFileAndRecord) {
  write_plain(dir_ / "test_batch.bin", cifar_records({4, 12, 0}));
  expect_error([&] { (void)load_cifar10(dir_, DataSplit::test); },
               {(dir_ / "test_batch.bin").string(), "record 1", "label 12"});
}

TEST_F(ImageDatasetTest, Cifar10MissingBatchFileIsReported) {
  for (int b = 1; b <= 4; ++b) {
    write_plain(dir_ / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records({0}));
  }
  expect_error([&] { (void)load_cifar10(dir_, DataSplit::train); },
               {(dir_ / "data_batch_5.bin").string(), "CIFAR-10 binary version (data_batch_1.bin"});
}

// --- ImageDataset ------------------------------------------------------------------------------

ImageDataset small_dataset() {
  ImageDataset ds;
  ds.images = at::arange(4 * 2 * 2, at::kFloat).reshape({4, 1, 2, 2});
  ds.labels = at::tensor(std::vector<int64_t>{5, 6, 7, 8});
  ds.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  return ds;
}

TEST(ImageDatasetSubset, SelectsInGivenOrderWithRepeats) {
  const ImageDataset ds = small_dataset();
  EXPECT_EQ(ds.label_vector(), (std::vector<int64_t>{5, 6, 7, 8}));
  const ImageDataset sub = ds.subset({2, 0, 2});
  EXPECT_EQ(sub.size(), 3);
  EXPECT_EQ(sub.label_vector(), (std::vector<int64_t>{7, 5, 7}));
  ASSERT_EQ(sub.images.sizes(), (std::vector<int64_t>{3, 1, 2, 2}));
  EXPECT_TRUE(at::equal(sub.images[0], ds.images[2]));
  EXPECT_TRUE(at::equal(sub.images[1], ds.images[0]));
  EXPECT_TRUE(at::equal(sub.images[2], ds.images[2]));
  EXPECT_EQ(sub.class_names, ds.class_names);

  const ImageDataset none = ds.subset({});
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.images.size(0), 0);
  EXPECT_EQ(none.num_classes(), 10);
}

TEST(ImageDatasetSubset, OutOfRangeIndexIsAClearError) {
  const ImageDataset ds = small_dataset();
  expect_error([&] { (void)ds.subset({0, 4}); }, {"index 4", "out of range", "4 samples"});
  expect_error([&] { (void)ds.subset({-1}); }, {"index -1", "out of range"});
  EXPECT_TRUE(ImageDataset{}.label_vector().empty());
}

// --- Real data ---------------------------------------------------------------------------------

TEST(ImageDatasetReal, FashionMnistTestSplitHasThousandPerClass) {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    GTEST_SKIP() << dir << " absent; install with `apt-get install dataset-fashion-mnist`";
  }
  const ImageDataset ds = load_fashion_mnist(dir, DataSplit::test);
  ASSERT_EQ(ds.size(), 10000);
  ASSERT_EQ(ds.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  ASSERT_EQ(ds.labels.sizes(), (std::vector<int64_t>{10000}));
  std::array<int, 10> histogram{};
  for (const int64_t l : ds.label_vector()) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++histogram[static_cast<std::size_t>(l)];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(histogram[static_cast<std::size_t>(c)], 1000) << "class " << c;
  // The normalisation constants come from the train split; the test split is close to it.
  EXPECT_NEAR(ds.images.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(ds.images.std().item<double>(), 1.0, 0.05);
  EXPECT_NEAR(ds.images.min().item<double>(), -0.2860 / 0.3530, 1e-5);
  EXPECT_NEAR(ds.images.max().item<double>(), (1.0 - 0.2860) / 0.3530, 1e-5);
}

// The four files of ../shared/datasets/mnist read here with zlib alone: the header's counts and
// the raw bytes, to hold the loader against.
Bytes gunzip_all(const fs::path& p) {
  Bytes out;
  gzFile f = gzopen(p.c_str(), "rb");
  if (f == nullptr) return out;
  std::array<uint8_t, 1 << 16> buf{};
  int n = 0;
  while ((n = gzread(f, buf.data(), buf.size())) > 0) out.insert(out.end(), buf.begin(), buf.begin() + n);
  gzclose(f);
  return out;
}

uint32_t be32_at(const Bytes& b, std::size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | uint32_t{b[at + 3]};
}

TEST(ImageDatasetReal, MnistLoadsTheSharedIdxFiles) {
  const fs::path dir = fs::path(FEDVLM_SOURCE_DIR) / ".." / "shared" / "datasets" / "mnist";
  if (!fs::exists(dir / "train-labels-idx1-ubyte.gz") || !fs::exists(dir / "t10k-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << dir << " does not hold the MNIST IDX files (../shared/datasets/mnist beside the repository)";
  for (const auto& [split, prefix, count] :
       {std::tuple{DataSplit::train, "train", 60000}, std::tuple{DataSplit::test, "t10k", 10000}}) {
    SCOPED_TRACE(prefix);
    const Bytes labels = gunzip_all(dir / (std::string(prefix) + "-labels-idx1-ubyte.gz"));
    const Bytes images = gunzip_all(dir / (std::string(prefix) + "-images-idx3-ubyte.gz"));
    ASSERT_EQ(labels.size(), 8u + count);
    ASSERT_EQ(images.size(), 16u + 784u * count);
    ASSERT_EQ(be32_at(labels, 0), 2049u);
    ASSERT_EQ(be32_at(labels, 4), static_cast<uint32_t>(count));
    ASSERT_EQ(be32_at(images, 4), static_cast<uint32_t>(count));

    const ImageDataset ds = load_mnist(dir, split);
    ASSERT_EQ(ds.size(), count);
    ASSERT_EQ(ds.images.sizes(), (std::vector<int64_t>{count, 1, 28, 28}));
    const std::vector<int64_t> got = ds.label_vector();
    for (int i = 0; i < count; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], labels[8 + i]) << "label " << i;
    // Every pixel of the first and the last image, back to bytes.
    const at::Tensor raw = (ds.images01() * 255.0).round().to(at::kInt).contiguous();
    const int32_t* px = raw.data_ptr<int32_t>();
    for (const int64_t i : {int64_t{0}, int64_t{count - 1}})
      for (int k = 0; k < 784; ++k)
        ASSERT_EQ(px[i * 784 + k], images[16 + i * 784 + k]) << "image " << i << " pixel " << k;
  }
  // MNIST's famous first labels: 5 0 4 1 9 2 (train) and 7 2 1 0 4 (test), and each split's
  // normalised pixels are near mean 0, std 1 (the constants are the train split's).
  const ImageDataset train = load_mnist(dir, DataSplit::train);
  const std::vector<int64_t> first = train.label_vector();
  EXPECT_EQ(std::vector<int64_t>(first.begin(), first.begin() + 6), (std::vector<int64_t>{5, 0, 4, 1, 9, 2}));
  EXPECT_NEAR(train.images.mean().item<double>(), 0.0, 1e-3);
  EXPECT_NEAR(train.images.std().item<double>(), 1.0, 1e-3);
  const std::vector<int64_t> test_first = load_mnist(dir, DataSplit::test).label_vector();
  EXPECT_EQ(std::vector<int64_t>(test_first.begin(), test_first.begin() + 5), (std::vector<int64_t>{7, 2, 1, 0, 4}));
}

} // namespace
} // namespace fedvlm
