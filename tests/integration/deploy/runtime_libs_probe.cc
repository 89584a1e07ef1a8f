// Stands in for the ts-kube-agent binary in deploy.docker_runtime_libraries while the agent
// target does not exist (a tree without agent/): it links the shared libraries the agent
// links (cpp-httplib, OpenSSL, yaml-cpp, prometheus-cpp core, threads) and uses each, so the
// linker keeps every one of them as a NEEDED entry. It is never installed or shipped.
#include <httplib.h>
#include <openssl/ssl.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <yaml-cpp/yaml.h>

#include <iostream>
#include <thread>

int main() {
  httplib::Server server;  // cpp-httplib (built with OpenSSL)
  server.Get("/", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());  // libssl
  if (ctx != nullptr) SSL_CTX_free(ctx);

  const YAML::Node node = YAML::Load("probe: 1");  // yaml-cpp

  prometheus::Registry registry;  // prometheus-cpp core
  prometheus::BuildCounter()
      .Name("probe_total")
      .Help("probe")
      .Register(registry)
      .Add({})
      .Increment();
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());

  std::thread worker([] {});  // threads
  worker.join();
  std::cout << node["probe"].as<int>() << " " << text.size() << "\n";
  return 0;
}
