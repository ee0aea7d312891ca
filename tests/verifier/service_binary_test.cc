// The rlpost-verifier binary: flag errors, and a graceful SIGTERM with the
// metrics endpoint up.

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/grpc_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlpost/v1/verifier.grpc.pb.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

std::string Verifier() { return testing::BinDir() + "/rlpost-verifier"; }

TEST(VerifierBinaryTest, BadServiceFlagsExitWithUsage) {
  const std::string dir = testing::MakeTempDir("verifier_flags");
  const std::string log = dir + "/log";
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--max-concurrency", "0"}, "--max-concurrency must be an integer in [1, 4096], got '0'"},
      {{"--max-queue", "-1"}, "--max-queue must be an integer in [0, 16777216], got '-1'"},
      {{"--cache-size", "lots"}, "--cache-size must be an integer"},
      {{"--math-workers", "999"}, "--math-workers must be an integer in [0, 256]"},
      {{"--metrics-listen", "nowhere"}, "--metrics-listen must be HOST:PORT"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {Verifier(), "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    testing::ProcessResult r = testing::RunProcess(argv, log, std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 2) << c.flags[0] << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
  }
  std::filesystem::remove_all(dir);
}

TEST(VerifierBinaryTest, ServesThenStopsOnSigterm) {
  const std::string dir = testing::MakeTempDir("verifier_sigterm");
  Subprocess verifier;
  ASSERT_TRUE(verifier
                  .Start({Verifier(), "--listen", "127.0.0.1:0", "--port-file", dir + "/port",
                          "--metrics-listen", "127.0.0.1:0", "--metrics-port-file",
                          dir + "/metrics.port", "--max-queue", "7"},
                         dir + "/log")
                  .ok());
  absl::StatusOr<int> port =
      WaitForPortFile(dir + "/port", &verifier, "rlpost-verifier", std::chrono::seconds(60));
  ASSERT_TRUE(port.ok()) << port.status() << testing::ReadFile(dir + "/log");
  {
    // Closed before SIGTERM: gRPC's shutdown waits (up to ServerHost's 5 s)
    // for connected clients.
    auto stub = v1::VerifierService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(*port)));
    grpc::ClientContext context;
    v1::VerifierInfo info;
    ASSERT_TRUE(stub->GetInfo(&context, v1::GetInfoRequest(), &info).ok());
    EXPECT_EQ(info.kinds(0), "math");
  }
  EXPECT_FALSE(testing::ReadFile(dir + "/metrics.port").empty());

  verifier.Signal(SIGTERM);
  ASSERT_TRUE(verifier.Wait(std::chrono::seconds(30)));
  EXPECT_EQ(verifier.exit_code(), 0) << testing::ReadFile(dir + "/log");
  EXPECT_THAT(testing::ReadFile(dir + "/log"), HasSubstr("max-queue 7"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlpost
