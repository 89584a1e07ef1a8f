#include "k8s/errors.h"

#include <gtest/gtest.h>

namespace tsk::k8s {
namespace {

const ObjectRef kSecret{"secrets", "ns", "ts-state"};

TEST(K8sErrors, ForbiddenNamesVerbResourceNamespaceNameAndRule) {
  const std::string body =
      R"({"kind":"Status","status":"Failure","message":"secrets \"ts-state\" is forbidden: User \"x\" cannot patch resource","reason":"Forbidden","code":403})";
  const Error e = forbiddenError("patch", kSecret, body);
  EXPECT_EQ(e.code, 403);
  EXPECT_EQ(e.message,
            "forbidden: cannot patch secrets \"ts-state\" in namespace \"ns\" (Kubernetes said: "
            "secrets \"ts-state\" is forbidden: User \"x\" cannot patch resource). Grant it with a "
            "Role rule: {apiGroups: [\"\"], resources: [\"secrets\"], resourceNames: "
            "[\"ts-state\"], verbs: [\"patch\"]}");
}

TEST(K8sErrors, CreateRuleHasNoResourceNamesBecauseRbacCannotRestrictCreateByName) {
  EXPECT_EQ(roleRuleFor("create", kSecret),
            "{apiGroups: [\"\"], resources: [\"secrets\"], verbs: [\"create\"]}");
  EXPECT_EQ(roleRuleFor("get", ObjectRef{"configmaps", "ns", "cm"}),
            "{apiGroups: [\"\"], resources: [\"configmaps\"], resourceNames: [\"cm\"], verbs: "
            "[\"get\"]}");
}

TEST(K8sErrors, MissingObjectSaysHowToFixIt) {
  const Error e = missingObjectError(kSecret);
  EXPECT_EQ(e.code, 404);
  EXPECT_EQ(e.message,
            "secret ns/ts-state does not exist and the agent may not create it: create it, or "
            "allow \"create\" on \"secrets\" in namespace ns");
}

TEST(K8sErrors, UnauthorizedSaysTheTokenWasRejectedAfterRereadingTheFile) {
  const Error e = unauthorizedError("get", kSecret, R"({"message":"Unauthorized"})",
                                    "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(e.code, 401);
  EXPECT_NE(e.message.find("rejected the agent's credentials (401)"), std::string::npos);
  EXPECT_NE(e.message.find("even after re-reading the token file "
                           "/var/run/secrets/kubernetes.io/serviceaccount/token"),
            std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("get secrets \"ts-state\" in namespace \"ns\""), std::string::npos);
}

TEST(K8sErrors, OtherStatusesNameTheStatusAttemptsAndKubernetesMessage) {
  const Error e = httpStatusError("patch", kSecret, 503, R"({"message":"etcd timeout"})", 5);
  EXPECT_EQ(e.code, 503);
  EXPECT_NE(e.message.find("cannot patch secrets \"ts-state\" in namespace \"ns\": the API server "
                           "answered 503 Service Unavailable after 5 attempts (Kubernetes said: "
                           "etcd timeout)"),
            std::string::npos)
      << e.message;
}

TEST(K8sErrors, ResponseErrorPicksByStatus) {
  EXPECT_EQ(responseError("patch", kSecret, 403, "", 1, "").code, 403);
  EXPECT_NE(responseError("patch", kSecret, 403, "", 1, "").message.find("Role rule"),
            std::string::npos);
  EXPECT_NE(responseError("patch", kSecret, 401, "", 1, "").message.find("401"), std::string::npos);
  EXPECT_EQ(responseError("patch", kSecret, 422, "", 1, "").code, 422);
}

TEST(K8sErrors, KubernetesMessageFallsBackToAPrintableExcerpt) {
  EXPECT_EQ(kubernetesMessage(""), "");
  EXPECT_EQ(kubernetesMessage(R"({"message":"boom"})"), "boom");
  EXPECT_EQ(kubernetesMessage("<html>bad\ngateway</html>"), "<html>bad gateway</html>");
  const std::string longBody(1000, 'x');
  EXPECT_EQ(kubernetesMessage(longBody).size(), 203u);  // 200 characters and "..."
}

TEST(K8sErrors, SingularKind) {
  EXPECT_EQ(singularKind("secrets"), "secret");
  EXPECT_EQ(singularKind("configmaps"), "configmap");
}

}  // namespace
}  // namespace tsk::k8s
