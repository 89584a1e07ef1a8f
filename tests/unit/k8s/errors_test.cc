#include "k8s/errors.h"

#include "k8s/base64.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace tsk::k8s {
namespace {

const ObjectRef kSecret{"secrets", "ns", "ts-state"};

TEST(K8sErrors, ForbiddenNamesVerbResourceNamespaceNameAndRule) {
  const std::string body =
      R"({"kind":"Status","status":"Failure","message":"secrets \"ts-state\" is forbidden: User \"x\" cannot patch resource","reason":"Forbidden","code":403})";
  const Error e = forbiddenError("patch", kSecret, body);
  EXPECT_EQ(e.kind, ErrorKind::Http);
  EXPECT_EQ(e.http_status, 403);
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
  EXPECT_EQ(e.http_status, 404);
  EXPECT_EQ(e.message,
            "secret ns/ts-state does not exist and the agent may not create it: create it, or "
            "allow \"create\" on \"secrets\" in namespace ns");
}

TEST(K8sErrors, UnauthorizedSaysTheTokenWasRejectedAfterRereadingTheFile) {
  const Error e = unauthorizedError("get", kSecret, R"({"message":"Unauthorized"})",
                                    "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(e.http_status, 401);
  EXPECT_NE(e.message.find("rejected the agent's credentials (401)"), std::string::npos);
  EXPECT_NE(e.message.find("even after re-reading the token file "
                           "/var/run/secrets/kubernetes.io/serviceaccount/token"),
            std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("get secrets \"ts-state\" in namespace \"ns\""), std::string::npos);
}

TEST(K8sErrors, OtherStatusesNameTheStatusAndKubernetesMessage) {
  const Error e = httpStatusError("patch", kSecret, 503, R"({"message":"etcd timeout"})");
  EXPECT_EQ(e.kind, ErrorKind::Http);
  EXPECT_EQ(e.http_status, 503);
  EXPECT_NE(e.message.find("cannot patch secrets \"ts-state\" in namespace \"ns\": the API server "
                           "answered 503 Service Unavailable (Kubernetes said: etcd timeout)"),
            std::string::npos)
      << e.message;
}

TEST(K8sErrors, ResponseErrorPicksByStatus) {
  EXPECT_EQ(responseError("patch", kSecret, 403, "", "").http_status, 403);
  EXPECT_NE(responseError("patch", kSecret, 403, "", "").message.find("Role rule"),
            std::string::npos);
  EXPECT_NE(responseError("patch", kSecret, 401, "", "").message.find("401"), std::string::npos);
  EXPECT_EQ(responseError("patch", kSecret, 422, "", "").http_status, 422);
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

TEST(K8sErrors, SanitizedExcerptIsOneShortPrintableLine) {
  EXPECT_EQ(sanitizedExcerpt("  <html>\r\n\t<b>x</b>\x01\xff\xfe y  \n"), "<html> <b>x</b> y");
  EXPECT_EQ(sanitizedExcerpt(std::string(500, 'a'), 10), "aaaaaaaaaa...");
  EXPECT_EQ(sanitizedExcerpt(""), "");
}

TEST(K8sErrors, RedactsATokenAndEveryBase64FormOfIt) {
  const std::string token = "eyJhbGciOiJSUzI1NiJ9.payload-part_0123";
  for (const std::string prefix : {"", "B", "Be", "Bearer ", "Authorization: Bearer "}) {
    const std::string wrapped = prefix + token + "\r\nX: y";
    std::string b64 = base64Encode(wrapped);
    std::string url = b64;
    std::replace(url.begin(), url.end(), '+', '-');
    std::replace(url.begin(), url.end(), '/', '_');
    const std::string text = "raw " + wrapped + " std " + b64 + " url " + url;
    const std::string out = redactCredentials(text, {token});
    EXPECT_EQ(out.find(token), std::string::npos) << out;
    // No run of 8 base64 characters that encodes only token bytes survives.
    const std::string core0 = base64Encode(token).substr(0, 40);
    for (size_t i = 0; i + 8 <= core0.size(); i += 8) {
      EXPECT_EQ(out.find(core0.substr(i, 8)), std::string::npos) << prefix << ": " << out;
    }
    EXPECT_NE(out.find("[REDACTED]"), std::string::npos);
    EXPECT_NE(out.find("raw " + prefix + "[REDACTED]"), std::string::npos) << out;
  }
  EXPECT_EQ(redactCredentials("nothing to see", {token}), "nothing to see");
  EXPECT_EQ(redactCredentials("a short abc", {"abc"}), "a short abc");  // under 4 bytes
}

}  // namespace
}  // namespace tsk::k8s
