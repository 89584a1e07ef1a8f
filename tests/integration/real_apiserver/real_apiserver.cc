#include "tests/integration/real_apiserver/real_apiserver.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "common/unique_fd.h"

namespace tsk::testing {
namespace {

std::map<std::string, std::string> parseEnvFile(const std::string& text) {
  std::map<std::string, std::string> vars;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos || line.starts_with('#')) continue;
    vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return vars;
}

}  // namespace

Result<RealApiServer> RealApiServer::load(const std::string& default_env_file) {
  const char* from_env = std::getenv("TSK_REAL_APISERVER_ENV");
  const std::string env_file = from_env != nullptr ? from_env : default_env_file;
  std::ifstream in(env_file);
  if (!in) {
    return Error{"no running real API server: " + env_file +
                 " does not exist. Run the suite with ctest (its fixture runs "
                 "scripts/real-apiserver/build.sh and start.sh), or run "
                 "`scripts/real-apiserver/build.sh && scripts/real-apiserver/start.sh DIR` and set "
                 "TSK_REAL_APISERVER_ENV=DIR/env"};
  }
  std::stringstream text;
  text << in.rdbuf();
  auto vars = parseEnvFile(text.str());
  RealApiServer server;
  const std::pair<const char*, std::string*> fields[] = {
      {"TSK_APISERVER_URL", &server.url},
      {"TSK_APISERVER_HOST", &server.host},
      {"TSK_APISERVER_PORT", &server.port},
      {"TSK_APISERVER_CA", &server.ca_file},
      {"TSK_APISERVER_ADMIN_TOKEN_FILE", &server.admin_token_file},
      {"TSK_APISERVER_KUBECONFIG", &server.admin_kubeconfig},
      {"TSK_APISERVER_CERT_KUBECONFIG", &server.admin_cert_kubeconfig},
  };
  for (const auto& [key, target] : fields) {
    if (vars[key].empty()) {
      return Error{env_file + " has no " + key + "; it was not written by a current " +
                   "scripts/real-apiserver/start.sh. Restart the server with start.sh"};
    }
    *target = vars[key];
  }
  if (!vars["TSK_KUBECTL"].empty()) server.kubectl = vars["TSK_KUBECTL"];
  return server;
}

CommandOutput Kubectl::run(const std::vector<std::string>& args,
                           const std::optional<std::string>& stdin_text) const {
  std::vector<std::string> argv = {kubectl_, "--kubeconfig=" + kubeconfig_};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv, stdin_text);
}

CommandOutput runCommand(const std::vector<std::string>& argv_in,
                         const std::optional<std::string>& stdin_text) {
  TempDir io;
  const auto in_path = io.path() / "stdin";
  const auto out_path = io.path() / "stdout";
  const auto err_path = io.path() / "stderr";
  writeFileAtomically(in_path, stdin_text.value_or(""));

  std::vector<std::string> argv_storage = argv_in;
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  UniqueFd in_fd(::open(in_path.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd out_fd(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd err_fd(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  CommandOutput result;
  if (in_fd.get() < 0 || out_fd.get() < 0 || err_fd.get() < 0) {
    result.err = "cannot open the stdio files for " + argv_in[0] + " in " + io.path().string();
    return result;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_fd.get(), 0);
    ::dup2(out_fd.get(), 1);
    ::dup2(err_fd.get(), 2);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  if (pid < 0) {
    result.err = "fork failed";
    return result;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = readFile(out_path);
  result.err = readFile(err_path);
  if (result.exit_code == 127 && result.err.empty()) {
    result.err = argv_in[0] + " not found on PATH; install it (scripts/install-deps.sh)";
  }
  return result;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void writeFileAtomically(const std::filesystem::path& path, const std::string& content) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
  }
  std::filesystem::rename(tmp, path);
}

std::string uniqueNamespace(const std::string& hint) {
  std::string name = "tsk-";
  for (char c : hint) {
    if (name.size() >= 44) break;
    const auto u = static_cast<unsigned char>(c);
    name += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
  }
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  name += '-';
  for (int i = 0; i < 8; ++i) name += kHex[rd() % 16];
  return name;
}

std::string base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  unsigned buffer = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace tsk::testing
