#include "k8s/server_address.h"

namespace tsk::k8s {
namespace {

Error badServer(const std::string& server, const std::string& why) {
  return Error{"API server URL \"" + server + "\" " + why +
               "; expected https://HOST[:PORT][/PATH] (IPv6 hosts in brackets)"};
}

}  // namespace

Result<ServerAddress> parseServerAddress(const std::string& server) {
  constexpr std::string_view kScheme = "https://";
  if (server.rfind(kScheme, 0) != 0) return badServer(server, "is not https://");
  std::string rest = server.substr(kScheme.size());
  ServerAddress addr;
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    addr.prefix = rest.substr(slash);
    rest.resize(slash);
    while (!addr.prefix.empty() && addr.prefix.back() == '/') addr.prefix.pop_back();
  }
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return badServer(server, "has an unclosed '['");
    addr.host = rest.substr(1, close - 1);
    const std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return badServer(server, "has junk after the IPv6 host");
      port = after.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    if (colon != std::string::npos && rest.find(':', colon + 1) != std::string::npos) {
      return badServer(server, "has an IPv6 host without brackets");
    }
    addr.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (addr.host.empty()) return badServer(server, "has no host");
  if (port.empty()) return addr;
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return badServer(server, "has an invalid port");
  }
  addr.port = std::stoi(port);
  if (addr.port < 1 || addr.port > 65535) return badServer(server, "has an invalid port");
  return addr;
}

}  // namespace tsk::k8s
