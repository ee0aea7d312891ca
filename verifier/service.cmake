# rlpost::verifier: the VerifierService over the checkers, and rlpost-verifier.
# Kind "code" is judged when verifier/code/ provides rlpost::verifier_code;
# without it code items get an `error` verdict ("code verifier not built").
if(TARGET rlpost::verifier_code)
  set(RLPOST_VERIFIER_CODE_BRIDGE code_items_judge.cc)
else()
  set(RLPOST_VERIFIER_CODE_BRIDGE code_items_unavailable.cc)
endif()
add_library(rlpost_verifier STATIC
  verifier_service.cc judge_pool.cc result_cache.cc verifier_metrics.cc
  ${RLPOST_VERIFIER_CODE_BRIDGE})
add_library(rlpost::verifier ALIAS rlpost_verifier)
target_link_libraries(rlpost_verifier PUBLIC
  rlpost::verifier_math rlpost::proto rlpost::grpc_common
  absl::status absl::statusor absl::strings absl::str_format absl::synchronization
  absl::time absl::flat_hash_map absl::hash Threads::Threads)
if(TARGET rlpost::verifier_code)
  target_link_libraries(rlpost_verifier PUBLIC rlpost::verifier_code)
endif()

add_executable(rlpost-verifier main.cc)
set_target_properties(rlpost-verifier PROPERTIES OUTPUT_NAME rlpost-verifier)
target_link_libraries(rlpost-verifier PRIVATE rlpost::verifier rlpost::membership)
