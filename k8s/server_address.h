#pragma once
// ServerAddress: the parts of a cluster `server` URL ("https://host[:port][/prefix]") that the
// HTTP client needs. IPv6 hosts are written in brackets in the URL and kept without them here.
#include <string>

#include "common/result.h"

namespace tsk::k8s {

struct ServerAddress {
  std::string host;  // "10.0.0.1", "::1", "kubernetes.default.svc"
  int port = 443;
  std::string prefix;  // "" or "/k8s/clusters/c-1" (no trailing slash)
};

Result<ServerAddress> parseServerAddress(const std::string& server);

}  // namespace tsk::k8s
