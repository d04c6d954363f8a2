#include "base/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"

namespace ipt {
namespace {

TEST(TempDirTest, IsCreatedAndRemovedWithWhatItHolds) {
  std::string path;
  {
    TempDir dir("ipt-temp-dir-test");
    path = dir.path();
    EXPECT_EQ(path.rfind("/tmp/ipt-temp-dir-test-", 0), 0u) << path;
    ASSERT_TRUE(std::filesystem::is_directory(path));
    std::filesystem::create_directories(path + "/sub");
    std::ofstream(path + "/sub/file") << "x";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TempDirTest, AFolderThatCannotBeMadeIsAnIoError) {
  try {
    TempDir dir("no-such-parent/x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ipt
