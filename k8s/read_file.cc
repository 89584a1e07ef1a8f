#include "k8s/read_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tsk::k8s {

Result<std::string> readFileContents(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return Error{"cannot read " + path + ": " + (err != 0 ? std::strerror(err) : "open failed")};
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return Error{"cannot read " + path + ": read error"};
  return content.str();
}

}  // namespace tsk::k8s
