#pragma once
// Reads a whole (small) file: service-account token, CA bundle, kubeconfig, client key.
#include <string>

#include "common/result.h"

namespace tsk::k8s {

// Error message: "cannot read <path>: <reason>"; callers add what the file was for.
Result<std::string> readFileContents(const std::string& path);

}  // namespace tsk::k8s
