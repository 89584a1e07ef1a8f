"""A field schema for the Kubernetes objects deploy/ produces: every field we emit, its type,
and the required ones. It catches what no server-less tool here would: a misspelled field
(readOnlyRootFileSystem), an unquoted env value rendered as a bool or number, a label value
that became a float. Fields the manifests do not use are unknown on purpose: adding one to a
template means adding it here, knowingly. Standard library only.

    problems = validate(obj)   # [] when the object is well-formed
"""

STR, INT, BOOL = "string", "integer", "boolean"
ANY = "any"


class MapOf:
    def __init__(self, value):
        self.value = value


class Enum:
    def __init__(self, *values):
        self.values = values


class Required(dict):
    """An object schema whose listed keys must be present."""

    def __init__(self, fields, required=()):
        super().__init__(fields)
        self.required = required


STR_MAP = MapOf(STR)
QUANTITY_MAP = MapOf(STR)  # "10m", "16Mi": quantities are strings in our manifests
LABEL_SELECTOR = {"matchLabels": STR_MAP, "matchExpressions": [ANY]}

OBJECT_META = Required({"name": STR, "namespace": STR, "labels": STR_MAP,
                        "annotations": STR_MAP}, ["name"])

ENV_VAR = Required({
    "name": STR,
    "value": STR,
    "valueFrom": {
        "fieldRef": Required({"fieldPath": STR, "apiVersion": STR}, ["fieldPath"]),
        "secretKeyRef": Required({"name": STR, "key": STR, "optional": BOOL}, ["key"]),
        "configMapKeyRef": Required({"name": STR, "key": STR, "optional": BOOL}, ["key"]),
        "resourceFieldRef": {"resource": STR, "containerName": STR, "divisor": STR},
    },
}, ["name"])

PROBE = {
    "httpGet": Required({"path": STR, "port": (INT, STR), "scheme": Enum("HTTP", "HTTPS"),
                         "host": STR}, ["port"]),
    "initialDelaySeconds": INT, "periodSeconds": INT, "timeoutSeconds": INT,
    "failureThreshold": INT, "successThreshold": INT, "terminationGracePeriodSeconds": INT,
}

SECCOMP = Required({"type": Enum("RuntimeDefault", "Localhost", "Unconfined"),
                    "localhostProfile": STR}, ["type"])

CONTAINER_SECURITY = {
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "privileged": BOOL,
    "allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL,
    "capabilities": {"add": [STR], "drop": [STR]}, "seccompProfile": SECCOMP,
}

CONTAINER = Required({
    "name": STR, "image": STR,
    "imagePullPolicy": Enum("Always", "IfNotPresent", "Never"),
    "restartPolicy": Enum("Always"),
    "command": [STR], "args": [STR], "workingDir": STR,
    "env": [ENV_VAR],
    "envFrom": [{"prefix": STR,
                 "configMapRef": Required({"name": STR, "optional": BOOL}, ["name"]),
                 "secretRef": Required({"name": STR, "optional": BOOL}, ["name"])}],
    "ports": [Required({"name": STR, "containerPort": INT, "protocol": Enum("TCP", "UDP", "SCTP")},
                       ["containerPort"])],
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "resources": {"requests": QUANTITY_MAP, "limits": QUANTITY_MAP},
    "securityContext": CONTAINER_SECURITY,
    "volumeMounts": [Required({"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR},
                              ["name", "mountPath"])],
}, ["name", "image"])

VOLUME = Required({
    "name": STR,
    "emptyDir": {"medium": STR, "sizeLimit": STR},
    "configMap": {"name": STR, "optional": BOOL, "defaultMode": INT,
                  "items": [{"key": STR, "path": STR}]},
    "secret": {"secretName": STR, "optional": BOOL, "defaultMode": INT},
}, ["name"])

POD_SPEC = Required({
    "serviceAccountName": STR, "automountServiceAccountToken": BOOL,
    "enableServiceLinks": BOOL, "terminationGracePeriodSeconds": INT, "priorityClassName": STR,
    "imagePullSecrets": [Required({"name": STR}, ["name"])],
    "securityContext": {"runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT,
                        "fsGroup": INT, "supplementalGroups": [INT], "seccompProfile": SECCOMP},
    "initContainers": [CONTAINER], "containers": [CONTAINER], "volumes": [VOLUME],
    "nodeSelector": STR_MAP, "affinity": ANY, "tolerations": [ANY],
    "topologySpreadConstraints": [ANY],
}, ["containers"])

SPEC_BY_KIND = {
    ("apps/v1", "Deployment"): {"spec": Required({
        "replicas": INT,
        "strategy": {"type": Enum("Recreate", "RollingUpdate"), "rollingUpdate": ANY},
        "selector": Required(LABEL_SELECTOR, ["matchLabels"]),
        "template": Required({"metadata": {"labels": STR_MAP, "annotations": STR_MAP},
                              "spec": POD_SPEC}, ["spec"]),
    }, ["selector", "template"])},
    ("v1", "Service"): {"spec": Required({
        "type": Enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
        "selector": STR_MAP,
        "ports": [Required({"name": STR, "port": INT, "targetPort": (INT, STR),
                            "protocol": Enum("TCP", "UDP", "SCTP")}, ["port"])],
    }, ["ports"])},
    ("v1", "ServiceAccount"): {"automountServiceAccountToken": BOOL,
                               "imagePullSecrets": [{"name": STR}]},
    ("v1", "Secret"): {"type": STR, "data": STR_MAP, "stringData": STR_MAP, "immutable": BOOL},
    ("v1", "ConfigMap"): {"data": STR_MAP, "binaryData": STR_MAP, "immutable": BOOL},
    ("rbac.authorization.k8s.io/v1", "Role"): {"rules": [Required({
        "apiGroups": [STR], "resources": [STR], "resourceNames": [STR],
        "verbs": [Enum("get", "list", "watch", "create", "update", "patch", "delete",
                       "deletecollection")],
    }, ["verbs"])]},
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Required({
        "roleRef": Required({"apiGroup": STR, "kind": Enum("Role", "ClusterRole"), "name": STR},
                            ["apiGroup", "kind", "name"]),
        "subjects": [Required({"kind": Enum("ServiceAccount", "User", "Group"), "name": STR,
                               "namespace": STR, "apiGroup": STR}, ["kind", "name"])],
    }, ["roleRef"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {"spec": Required({
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {"matchNames": [STR], "any": BOOL},
        "endpoints": [{"port": STR, "path": STR, "interval": STR, "scrapeTimeout": STR,
                       "honorLabels": BOOL, "scheme": STR, "relabelings": [ANY],
                       "metricRelabelings": [ANY]}],
    }, ["selector", "endpoints"])},
    ("monitoring.coreos.com/v1", "PodMonitor"): {"spec": Required({
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {"matchNames": [STR], "any": BOOL},
        "podMetricsEndpoints": [{"port": STR, "path": STR, "interval": STR,
                                 "scrapeTimeout": STR, "honorLabels": BOOL,
                                 "relabelings": [{"sourceLabels": [STR], "separator": STR,
                                                  "targetLabel": STR, "regex": STR,
                                                  "modulus": INT, "replacement": STR,
                                                  "action": STR}],
                                 "metricRelabelings": [ANY]}],
    }, ["selector", "podMetricsEndpoints"])},
    ("networking.k8s.io/v1", "NetworkPolicy"): {"spec": Required({
        "podSelector": LABEL_SELECTOR,
        "policyTypes": [Enum("Ingress", "Egress")],
        "ingress": [{"from": [{"podSelector": LABEL_SELECTOR,
                               "namespaceSelector": LABEL_SELECTOR,
                               "ipBlock": Required({"cidr": STR, "except": [STR]}, ["cidr"])}],
                     "ports": [Required({"protocol": Enum("TCP", "UDP", "SCTP"),
                                         "port": (INT, STR), "endPort": INT}, [])]}],
        "egress": [ANY],
    }, ["podSelector"])},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {"spec": {"groups": [Required({
        "name": STR, "interval": STR,
        "rules": [{"alert": STR, "record": STR, "expr": STR, "for": STR,
                   "labels": STR_MAP, "annotations": STR_MAP}],
    }, ["name", "rules"])]}},
}

TYPES = {STR: str, INT: int, BOOL: bool}


def check(value, schema, path, problems):
    if schema is ANY:
        return
    if isinstance(schema, tuple):
        if not any(isinstance(value, TYPES[t]) and not (t == INT and isinstance(value, bool))
                   for t in schema):
            problems.append(f"{path}: {value!r} is not one of {schema}")
        return
    if isinstance(schema, str):
        ok = isinstance(value, TYPES[schema]) and not (schema == INT and isinstance(value, bool))
        if not ok:
            problems.append(f"{path}: {value!r} ({type(value).__name__}) is not a {schema}")
        return
    if isinstance(schema, Enum):
        if value not in schema.values:
            problems.append(f"{path}: {value!r} is not one of {list(schema.values)}")
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {value!r}")
            return
        for k, v in value.items():
            check(v, schema.value, f"{path}.{k}", problems)
        return
    if isinstance(schema, list):
        if value is None:
            return  # "initContainers:" with nothing under it is a valid null list
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return
        for i, v in enumerate(value):
            check(v, schema[0], f"{path}[{i}]", problems)
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object, got {value!r}")
        return
    for k, v in value.items():
        if k not in schema:
            problems.append(f"{path}.{k}: unknown field (known: {', '.join(sorted(schema))})")
            continue
        check(v, schema[k], f"{path}.{k}", problems)
    for k in getattr(schema, "required", ()):
        if k not in value:
            problems.append(f"{path}.{k}: required field missing")


def validate(obj):
    """Problems with one object: unknown kind, unknown fields, wrong types, missing fields."""
    problems = []
    key = (obj.get("apiVersion"), obj.get("kind"))
    body = SPEC_BY_KIND.get(key)
    if body is None:
        return [f"{key}: kind not in the schema"]
    where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    schema = Required(dict(body, apiVersion=STR, kind=STR, metadata=OBJECT_META),
                      ["metadata"] + list(getattr(body, "required", ())))
    check(obj, schema, where, problems)
    return problems
