#pragma once
// Authentication and authorization of the emulated API server.
//
// TokenRegistry maps bearer tokens to users, like kube-apiserver's --token-auth-file (CSV lines
// `token,user[,uid[,"group1,group2"]]`); tokens can be added and revoked while serving
// (rotation tests). RbacPolicy holds per-user/group rules {verbs, resources, resourceNames,
// namespaces}; nothing is allowed unless a rule grants it, except for admin users and the
// system:masters group. Like Kubernetes, a rule with resourceNames never matches a request
// without a name (create, list), so "create" cannot be restricted by name.
//
// RBAC file (JSON or YAML):
//   adminUsers: [admin]
//   rules:
//   - users: ["system:serviceaccount:tailscale:agent"]   # and/or groups: [...]
//     verbs: [get, update, patch]                         # "*" = any
//     resources: [secrets]                                # "*" = any
//     resourceNames: [ts-state]                           # empty/absent = every name
//     namespaces: [tailscale]                             # empty/absent = every namespace
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tsk::kube_emu {

inline constexpr const char* kAnonymousUser = "system:anonymous";

struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
  bool anonymous() const { return name == kAnonymousUser; }
};

UserInfo anonymousUser();

struct TokenEntry {
  std::string token;
  std::string user;
  std::vector<std::string> groups;
};

class TokenRegistry {
 public:
  void add(const TokenEntry& entry);
  bool revoke(const std::string& token);  // false if unknown
  void replaceAll(const std::vector<TokenEntry>& entries);
  std::optional<UserInfo> lookup(const std::string& token) const;
  std::vector<TokenEntry> entries() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, TokenEntry> tokens_;
};

struct RbacRule {
  std::vector<std::string> users;
  std::vector<std::string> groups;
  std::vector<std::string> verbs;
  std::vector<std::string> resources;
  std::vector<std::string> resource_names;
  std::vector<std::string> namespaces;

  bool matches(const UserInfo& user, const std::string& verb, const std::string& resource,
               const std::string& ns, const std::string& name) const;
};

struct RbacPolicy {
  std::vector<RbacRule> rules;
  std::vector<std::string> admin_users;  // may do anything (kubectl, test setup)

  bool isAdmin(const UserInfo& user) const;
  bool allows(const UserInfo& user, const std::string& verb, const std::string& resource,
              const std::string& ns, const std::string& name) const;
  nlohmann::json toJson() const;
  static Result<RbacPolicy> fromJson(const nlohmann::json& j);
  // JSON or YAML text; errors name the field and, for YAML, the line.
  static Result<RbacPolicy> parse(const std::string& text);
};

// Thread-safe holder of the current policy (replaced at run time through the control API).
class Authorizer {
 public:
  explicit Authorizer(RbacPolicy policy = {}) : policy_(std::move(policy)) {}
  void setPolicy(RbacPolicy policy);
  RbacPolicy policy() const;
  bool allows(const UserInfo& user, const std::string& verb, const std::string& resource,
              const std::string& ns, const std::string& name) const;
  bool isAdmin(const UserInfo& user) const;

 private:
  mutable std::mutex mu_;
  RbacPolicy policy_;
};

}  // namespace tsk::kube_emu
