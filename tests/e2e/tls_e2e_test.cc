// TLS on every gRPC hop: certificates made with the openssl CLI for
// 127.0.0.1; an idle controller refuses plaintext callers and answers rlctl
// with --tls-ca; with a CA on the server too, rlctl needs a client
// certificate (mutual TLS); and a short job runs with every process on
// mutual TLS.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::BinDir;
using ::rlpost::testing::RunProcess;
using ::rlpost::testing::SourceDir;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::rlpost::testing::MakeTempDir("rlpost_tls_e2e");
    if (RunProcess({"/bin/sh", "-c", "command -v openssl"}, dir_ + "/which.log").exit_code != 0) {
      GTEST_SKIP() << "the openssl command is not installed (scripts/install_deps.sh installs it)";
    }
    const std::string script = absl::StrCat(
        "set -e; cd ", dir_, "\n",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj '/CN=rlpost test CA' 2>/dev/null\n",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,"
        "clientAuth\\n' > ext.cnf\n",
        "for n in node other; do\n",
        "  openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj \"/CN=$n\" "
        "2>/dev/null\n",
        "done\n",
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem "
        "-days 2 -extfile ext.cnf 2>/dev/null\n",
        // Signed by nobody the servers trust.
        "openssl req -x509 -key other.key -in other.csr -out other.pem -days 2 2>/dev/null\n");
    auto made = RunProcess({"/bin/sh", "-c", script}, dir_ + "/openssl.log", 120s);
    ASSERT_EQ(made.exit_code, 0) << made.output;
  }
  void TearDown() override {
    for (auto& p : processes_) p->Stop(2000ms);
    std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> NodeTls(bool mutual) const {
    std::vector<std::string> f = {"--tls-cert", dir_ + "/node.pem", "--tls-key", dir_ + "/node.key"};
    if (mutual) f.insert(f.end(), {"--tls-ca", dir_ + "/ca.pem"});
    return f;
  }

  // Starts `binary` on a free port; returns the port.
  int Serve(const std::string& name, const std::string& binary, std::vector<std::string> extra) {
    const std::string port_file = dir_ + "/" + name + ".port";
    std::vector<std::string> argv = {BinDir() + "/" + binary, "--listen", "127.0.0.1:0",
                                     "--port-file", port_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<Subprocess>());
    EXPECT_TRUE(processes_.back()->Start(argv, dir_ + "/" + name + ".log").ok());
    absl::StatusOr<int> port = WaitForPortFile(port_file, processes_.back().get(), name, 60s);
    EXPECT_TRUE(port.ok()) << port.status() << ::rlpost::testing::ReadFile(dir_ + "/" + name + ".log");
    return port.ok() ? *port : 0;
  }

  testing::ProcessResult Rlctl(int port, std::vector<std::string> extra) {
    std::vector<std::string> argv = {BinDir() + "/rlctl", "--addr", absl::StrCat("127.0.0.1:", port),
                                     "--timeout", "5"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("status");
    return RunProcess(argv, dir_ + "/rlctl.log", 60s);
  }

  std::string dir_;
  std::vector<std::unique_ptr<Subprocess>> processes_;
};

TEST_F(TlsTest, ServerTlsRefusesPlaintextAndMutualTlsNeedsAClientCertificate) {
  const int one_way = Serve("controller_tls", "rlpost-controller", NodeTls(false));
  EXPECT_EQ(Rlctl(one_way, {}).exit_code, 3);  // plaintext against TLS: no answer
  auto ok = Rlctl(one_way, {"--tls-ca", dir_ + "/ca.pem"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("IDLE"));

  const int mutual = Serve("controller_mtls", "rlpost-controller", NodeTls(true));
  EXPECT_EQ(Rlctl(mutual, {"--tls-ca", dir_ + "/ca.pem"}).exit_code, 3);  // no client cert
  EXPECT_EQ(Rlctl(mutual, {"--tls-ca", dir_ + "/ca.pem", "--tls-cert", dir_ + "/other.pem",
                           "--tls-key", dir_ + "/other.key"})
                .exit_code,
            3);  // a certificate the server's CA did not sign
  auto signed_ok = Rlctl(mutual, {"--tls-ca", dir_ + "/ca.pem", "--tls-cert", dir_ + "/node.pem",
                                  "--tls-key", dir_ + "/node.key"});
  EXPECT_EQ(signed_ok.exit_code, 0) << signed_ok.output;
}

// `rlctl health`, the probe for servers that require TLS: SERVING with the
// client certificate, no answer (3) without it or over plaintext.
TEST_F(TlsTest, RlctlHealthProbesAMutualTlsServer) {
  const int verifier = Serve("verifier_mtls", "rlpost-verifier", NodeTls(true));
  auto health = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {BinDir() + "/rlctl", "health", "--addr",
                                     absl::StrCat("127.0.0.1:", verifier), "--timeout", "3"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(argv, dir_ + "/health.log", 60s);
  };
  auto serving = health({"--tls-ca", dir_ + "/ca.pem", "--tls-cert", dir_ + "/node.pem",
                         "--tls-key", dir_ + "/node.key"});
  EXPECT_EQ(serving.exit_code, 0) << serving.output;
  EXPECT_THAT(serving.output, HasSubstr("SERVING"));
  EXPECT_EQ(health({"--tls-ca", dir_ + "/ca.pem"}).exit_code, 3);  // no client certificate
  EXPECT_EQ(health({}).exit_code, 3);                              // plaintext
  auto usage = health({"--timeout", "soon"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.output, HasSubstr("--timeout must be a positive number of seconds"));
}

TEST_F(TlsTest, BadTlsFlagsAreUsageErrors) {
  auto r = RunProcess({BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0", "--tls-cert",
                       dir_ + "/node.pem"},
                      dir_ + "/bad.log", 60s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--tls-cert needs --tls-key"));
  r = RunProcess({BinDir() + "/rlpost-verifier", "--listen", "127.0.0.1:0", "--tls-ca",
                  dir_ + "/ext.cnf"},
                 dir_ + "/bad.log", 60s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--tls-ca '" + dir_ + "/ext.cnf' holds no PEM block"));
  r = RunProcess({BinDir() + "/rlctl", "--addr", "127.0.0.1:1", "--tls-ca", dir_ + "/nope.pem",
                  "status"},
                 dir_ + "/bad.log", 60s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--tls-ca '" + dir_ + "/nope.pem' cannot be read"));
}

TEST_F(TlsTest, AJobRunsWithEveryProcessOnMutualTls) {
  const std::vector<std::string> config = {
      "--config", SourceDir() + "/configs/arith_grpo_quick.yaml", "run.output_dir=" + dir_,
      "sft.steps=2", "rl.steps=1", "eval.size=4"};
  auto with = [&](std::vector<std::string> a) {
    for (const std::string& f : NodeTls(true)) a.push_back(f);
    return a;
  };
  const int verifier = Serve("verifier", "rlpost-verifier", with({}));
  std::vector<std::string> learner_args = with({});
  learner_args.insert(learner_args.end(), config.begin(), config.end());
  const int learner = Serve("learner", "rlpost-learner", learner_args);
  const int rollout = Serve("rollout", "rlpost-rollout", learner_args);
  std::vector<std::string> controller =
      with({BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0", "--rollout",
            absl::StrCat("127.0.0.1:", rollout), "--verifier", absl::StrCat("127.0.0.1:", verifier),
            "--learner", absl::StrCat("127.0.0.1:", learner)});
  controller.insert(controller.end(), config.begin(), config.end());
  auto run = RunProcess(controller, dir_ + "/controller.log", 300s);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("step 1/1"));

  // The same job without the controller's certificate cannot reach anyone.
  std::vector<std::string> plain = {BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0",
                                    "--rollout", absl::StrCat("127.0.0.1:", rollout),
                                    "--verifier", absl::StrCat("127.0.0.1:", verifier),
                                    "--learner", absl::StrCat("127.0.0.1:", learner),
                                    "net.connect_retries=2", "net.connect_backoff_ms=10"};
  plain.insert(plain.end(), config.begin() + 2, config.end());
  plain.insert(plain.end(), {"--config", SourceDir() + "/configs/arith_grpo_quick.yaml"});
  run = RunProcess(plain, dir_ + "/plain.log", 120s);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("unreachable after 2 attempts"));
}

}  // namespace
}  // namespace rlpost
