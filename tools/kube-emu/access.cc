#include "tools/kube-emu/access.h"

#include <algorithm>

#include <yaml-cpp/yaml.h>

namespace tsk::kube_emu {

using nlohmann::json;

UserInfo anonymousUser() {
  return UserInfo{kAnonymousUser, {"system:unauthenticated"}};
}

namespace {

bool listMatches(const std::vector<std::string>& allowed, const std::string& value) {
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& a) { return a == "*" || a == value; });
}

json yamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = yamlToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(yamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return node.as<std::string>();
    default:
      return nullptr;
  }
}

Result<std::vector<std::string>> stringList(const json& j, const std::string& where) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (j.is_string()) return std::vector<std::string>{j.get<std::string>()};
  if (!j.is_array()) return Error{where + " must be a list of strings"};
  for (const auto& v : j) {
    if (!v.is_string()) return Error{where + " must be a list of strings, found " + v.dump()};
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

void TokenRegistry::add(const TokenEntry& entry) {
  std::lock_guard lock(mu_);
  tokens_[entry.token] = entry;
}

bool TokenRegistry::revoke(const std::string& token) {
  std::lock_guard lock(mu_);
  return tokens_.erase(token) > 0;
}

void TokenRegistry::replaceAll(const std::vector<TokenEntry>& entries) {
  std::lock_guard lock(mu_);
  tokens_.clear();
  for (const auto& e : entries) tokens_[e.token] = e;
}

std::optional<UserInfo> TokenRegistry::lookup(const std::string& token) const {
  std::lock_guard lock(mu_);
  const auto it = tokens_.find(token);
  if (it == tokens_.end()) return std::nullopt;
  UserInfo u{it->second.user, it->second.groups};
  u.groups.push_back("system:authenticated");
  return u;
}

std::vector<TokenEntry> TokenRegistry::entries() const {
  std::lock_guard lock(mu_);
  std::vector<TokenEntry> out;
  for (const auto& [t, e] : tokens_) out.push_back(e);
  return out;
}

bool RbacRule::matches(const UserInfo& user, const std::string& verb, const std::string& resource,
                       const std::string& ns, const std::string& name) const {
  const bool subject = listMatches(users, user.name) ||
                       std::any_of(user.groups.begin(), user.groups.end(),
                                   [&](const std::string& g) { return listMatches(groups, g); });
  if (!subject || !listMatches(verbs, verb) || !listMatches(resources, resource)) return false;
  if (!namespaces.empty() && !listMatches(namespaces, ns)) return false;
  if (!resource_names.empty() && (name.empty() || !listMatches(resource_names, name))) {
    return false;
  }
  return true;
}

bool RbacPolicy::isAdmin(const UserInfo& user) const {
  return listMatches(admin_users, user.name) ||
         std::find(user.groups.begin(), user.groups.end(), "system:masters") != user.groups.end();
}

bool RbacPolicy::allows(const UserInfo& user, const std::string& verb, const std::string& resource,
                        const std::string& ns, const std::string& name) const {
  if (isAdmin(user)) return true;
  return std::any_of(rules.begin(), rules.end(),
                     [&](const RbacRule& r) { return r.matches(user, verb, resource, ns, name); });
}

json RbacPolicy::toJson() const {
  json jr = json::array();
  for (const auto& r : rules) {
    jr.push_back({{"users", r.users},
                  {"groups", r.groups},
                  {"verbs", r.verbs},
                  {"resources", r.resources},
                  {"resourceNames", r.resource_names},
                  {"namespaces", r.namespaces}});
  }
  return {{"adminUsers", admin_users}, {"rules", jr}};
}

Result<RbacPolicy> RbacPolicy::fromJson(const json& j) {
  RbacPolicy p;
  const json* rules = &j;
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k != "rules" && k != "adminUsers") {
        return Error{"rbac: unknown key \"" + k + "\" (expected \"rules\" and \"adminUsers\")"};
      }
    }
    auto admins = stringList(j.value("adminUsers", json()), "rbac: adminUsers");
    if (!admins) return admins.error();
    p.admin_users = std::move(*admins);
    static const json kEmpty = json::array();
    rules = j.contains("rules") ? &j["rules"] : &kEmpty;
  }
  if (!rules->is_array()) return Error{"rbac: \"rules\" must be a list of rules"};
  int index = 0;
  for (const auto& jr : *rules) {
    const std::string where = "rbac: rules[" + std::to_string(index++) + "]";
    if (!jr.is_object()) return Error{where + " must be a map"};
    RbacRule r;
    for (const auto& [k, v] : jr.items()) {
      std::vector<std::string>* target = nullptr;
      if (k == "users" || k == "user") target = &r.users;
      if (k == "groups" || k == "group") target = &r.groups;
      if (k == "verbs") target = &r.verbs;
      if (k == "resources") target = &r.resources;
      if (k == "resourceNames") target = &r.resource_names;
      if (k == "namespaces" || k == "namespace") target = &r.namespaces;
      if (target == nullptr) {
        return Error{where + ": unknown key \"" + k +
                     "\" (expected users, groups, verbs, resources, resourceNames, namespaces)"};
      }
      auto list = stringList(v, where + "." + k);
      if (!list) return list.error();
      target->insert(target->end(), list->begin(), list->end());
    }
    if (r.users.empty() && r.groups.empty()) return Error{where + ": needs users or groups"};
    if (r.verbs.empty()) return Error{where + ": needs verbs (e.g. [get, patch])"};
    if (r.resources.empty()) return Error{where + ": needs resources (e.g. [secrets])"};
    p.rules.push_back(std::move(r));
  }
  return p;
}

Result<RbacPolicy> RbacPolicy::parse(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    try {
      j = yamlToJson(YAML::Load(text));
    } catch (const YAML::Exception& e) {
      return Error{"rbac: not valid JSON or YAML: line " + std::to_string(e.mark.line + 1) + ": " +
                   e.msg};
    }
  }
  return fromJson(j);
}

void Authorizer::setPolicy(RbacPolicy policy) {
  std::lock_guard lock(mu_);
  policy_ = std::move(policy);
}

RbacPolicy Authorizer::policy() const {
  std::lock_guard lock(mu_);
  return policy_;
}

bool Authorizer::allows(const UserInfo& user, const std::string& verb, const std::string& resource,
                        const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  return policy_.allows(user, verb, resource, ns, name);
}

bool Authorizer::isAdmin(const UserInfo& user) const {
  std::lock_guard lock(mu_);
  return policy_.isAdmin(user);
}

}  // namespace tsk::kube_emu
