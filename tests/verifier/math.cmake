rlpost_add_test(math_checker_test unit
  SOURCES
    answer_comparison_test.cc
    answer_extraction_test.cc
    answer_forms_test.cc
    answer_normalization_test.cc
    math_checker_fuzz_test.cc
    math_checker_test.cc
    math_dataset_test.cc
    math_symbolic_fuzz_test.cc
    math_symbolic_test.cc
  LIBS rlpost::verifier_math nlohmann_json::nlohmann_json)
# Forks worker processes: its own binary, so a stray worker cannot disturb
# the pure-function tests.
rlpost_add_test(math_worker_pool_test unit
  SOURCES math_worker_pool_test.cc
  LIBS rlpost::verifier_math)
