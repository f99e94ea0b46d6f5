// tests/support/atomic_file_test.cpp — files replaced whole: one at a time, with a writer callback, and in batches.
#include "support/atomic_file.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace {

using namespace fedvlm;
using fedvlm::testing::TempDir;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t entries(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(FileBatch, CommitReplacesEveryFileAndLeavesNoTemporaryFile) {
  TempDir dir("file_batch");
  atomic_write_file(dir.path() / "a", "old a");
  {
    FileBatch batch;
    batch.add(dir.path() / "a", "new a");
    batch.add(dir.path() / "sub" / "b", std::string(100000, 'b'));
    EXPECT_EQ(read(dir.path() / "a"), "old a"); // nothing replaced before the commit
    batch.commit();
  }
  EXPECT_EQ(read(dir.path() / "a"), "new a");
  EXPECT_EQ(read(dir.path() / "sub" / "b"), std::string(100000, 'b'));
  EXPECT_EQ(entries(dir.path()), 2u); // a and sub/
  EXPECT_EQ(entries(dir.path() / "sub"), 1u);
}

TEST(FileBatch, WithoutACommitNothingIsReplacedAndTheTemporaryFilesGo) {
  TempDir dir("file_batch_abandoned");
  atomic_write_file(dir.path() / "a", "old a");
  {
    FileBatch batch;
    batch.add(dir.path() / "a", "new a");
    batch.add(dir.path() / "c", "new c");
    EXPECT_EQ(entries(dir.path()), 3u); // a and two temporary files
  }
  EXPECT_EQ(read(dir.path() / "a"), "old a");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicWriteFileWith, AWriterThatThrowsLeavesTheOldFile) {
  TempDir dir("atomic_with");
  atomic_write_file(dir.path() / "a", "old a");
  EXPECT_THROW(atomic_write_file_with(dir.path() / "a",
                                      [&](int fd) {
                                        write_fully(fd, "half of the new", dir.path() / "a");
                                        throw std::runtime_error("serialization failed");
                                      }),
               std::runtime_error);
  EXPECT_EQ(read(dir.path() / "a"), "old a");
  EXPECT_EQ(entries(dir.path()), 1u);
}

} // namespace
