# Code judge (verifier/code). The judge tests start real bubblewrap sandboxes;
# they skip (with the reason) where bwrap cannot create user namespaces,
# unless RLPOST_REQUIRE_SANDBOX=1.
rlpost_add_test(code_compare_test unit
  SOURCES code/output_compare_test.cc
  LIBS rlpost::verifier_code
  TIMEOUT 60)
rlpost_add_test(code_judge_test integration
  SOURCES code/code_judge_test.cc
  LIBS rlpost::verifier_code
  TIMEOUT 120)
rlpost_add_test(code_humaneval_test integration
  SOURCES code/humaneval_test.cc
  LIBS rlpost::verifier_code nlohmann_json::nlohmann_json
  TIMEOUT 180)
rlpost_add_test(code_sandbox_containment_test integration
  SOURCES code/sandbox_containment_test.cc
  LIBS rlpost::verifier_code
  TIMEOUT 180)
rlpost_add_test(code_sandbox_test integration
  SOURCES code/sandbox_test.cc
  LIBS rlpost::verifier_code
  TIMEOUT 120)
