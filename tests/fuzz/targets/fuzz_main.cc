// The libFuzzer entry point of one fuzz_<name> executable: TSK_FUZZ_ENTRY names the target's
// function in tsk::fuzz (set per executable by CMake).
#include "tests/fuzz/targets/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tsk::fuzz::TSK_FUZZ_ENTRY(data, size);
}
