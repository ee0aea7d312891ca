rlpost_add_test(verifier_service_test unit
  SOURCES verifier_service_test.cc
  LIBS rlpost::verifier)
