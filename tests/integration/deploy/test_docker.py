#!/usr/bin/env python3
"""The Dockerfile and .dockerignore, checked without a container engine: the stages and their
instructions, and that the runtime stage installs the package of every shared library the
built binary loads (`ldd` of the binary, `dpkg -S` of each library).

TSK_AGENT_BINARY is the built ts-kube-agent ($<TARGET_FILE:ts-kube-agent>) or, while the agent
target does not exist, runtime_libs_probe, which links the same libraries
(TSK_AGENT_BINARY_IS_PROBE=1)."""

import os
import re
import subprocess
import unittest

from deploylib import CHART_DIR, SOURCE_DIR, main, read_text, run

DOCKERFILE = os.path.join(SOURCE_DIR, "Dockerfile")


def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in read_text(DOCKERFILE).splitlines():
        s = line.rstrip("\n")
        if not pending and (not s.strip() or s.lstrip().startswith("#")):
            continue
        if s.endswith("\\"):
            pending += s[:-1] + " "
            continue
        s = pending + s
        pending = ""
        word, _, rest = s.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages():
    """{stage name: [(INSTRUCTION, args)]}, in order; ARG defaults substituted in FROM."""
    args, result, current = {}, {}, None
    for ins, rest in dockerfile_instructions():
        if ins == "ARG" and current is None:
            k, _, v = rest.partition("=")
            args[k] = v
            continue
        if ins == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), rest.split()[0])
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            current = m[1] if m else f"stage{len(result)}"
            result[current] = [("FROM", image)]
            continue
        result[current].append((ins, rest))
    return result


def runtime_packages(stage):
    pkgs = set()
    for ins, rest in stage:
        if ins != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            words = cmd.split()
            if "apt-get" in words and "install" in words:
                after = words[words.index("install") + 1:]
                pkgs.update(w for w in after if not w.startswith("-"))
    return pkgs


def ldd_packages(binary):
    """{library path: Debian package} for every library `ldd` resolves."""
    out = run(["ldd", binary]).stdout
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            raise AssertionError(f"ldd: {line} (the binary cannot even run here)")
        m = re.match(r"(\S+) => (/\S+)", line) or re.match(r"(/\S+) \(", line)
        if m:  # else linux-vdso: provided by the kernel
            paths.append(m[m.lastindex])
    return dpkg_owners(paths)


def dpkg_owners(paths):
    """One `dpkg -S` for all paths. With usrmerge a library may be registered under /lib or
    /usr/lib, or only under its real (symlink-resolved) name: every spelling is asked."""
    spellings = {}
    for path in paths:
        for p in {path, os.path.realpath(path)}:
            spellings.setdefault(p, path)
            alt = p[len("/usr"):] if p.startswith("/usr/lib/") else "/usr" + p
            spellings.setdefault(alt, path)
    out = subprocess.run(["dpkg", "-S"] + sorted(spellings), capture_output=True,
                         text=True).stdout
    owners = {}
    for line in out.splitlines():
        pkg, _, file = line.partition(": ")
        if file in spellings:
            owners[spellings[file]] = pkg.split(":")[0].strip()
    missing = [p for p in paths if p not in owners]
    if missing:
        raise AssertionError(f"dpkg -S finds no package owning {missing}")
    return owners


class Stages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = stages()
        names = list(cls.stages)
        cls.builder, cls.runtime = cls.stages[names[0]], cls.stages[names[-1]]

    def test_builder_is_bookworm_and_uses_the_same_dependency_script(self):
        self.assertEqual(self.builder[0], ("FROM", "debian:bookworm"))
        runs = " ".join(a for i, a in self.builder if i == "RUN")
        self.assertIn("scripts/install-deps.sh --build-only", runs)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", runs)
        self.assertRegex(runs, r"cmake --build \S+ --target ts-kube-agent")

    def test_runtime_is_bookworm_slim_and_copies_only_the_binary(self):
        self.assertEqual(self.runtime[0], ("FROM", "debian:bookworm-slim"))
        copies = [a for i, a in self.runtime if i == "COPY"]
        self.assertEqual(copies, ["--from=builder /out/ts-kube-agent /usr/local/bin/ts-kube-agent"])

    def test_runtime_runs_as_65532_the_uid_the_chart_expects(self):
        users = [a for i, a in self.runtime if i == "USER"]
        self.assertEqual(users, ["65532:65532"])
        values = read_text(os.path.join(CHART_DIR, "values.yaml"))
        self.assertIn("  runAsUser: 65532\n", values)
        order = [i for i, _ in self.runtime]
        self.assertGreater(order.index("USER"), max(i for i, x in enumerate(order) if x == "RUN"),
                           "USER comes after every RUN")

    def test_entrypoint_is_the_binary_in_exec_form(self):
        self.assertEqual([a for i, a in self.runtime if i == "ENTRYPOINT"],
                         ['["/usr/local/bin/ts-kube-agent"]'])
        self.assertEqual([a for i, a in self.runtime if i == "CMD"], [])
        self.assertEqual([a for i, a in self.runtime if i == "STOPSIGNAL"], ["SIGTERM"])

    def test_exposes_the_admin_port_of_the_chart(self):
        self.assertEqual([a for i, a in self.runtime if i == "EXPOSE"], ["9002"])
        self.assertIn("\n  port: 9002\n", read_text(os.path.join(CHART_DIR, "values.yaml")))

    def test_oci_labels(self):
        labels = " ".join(a for i, a in self.runtime if i == "LABEL")
        for key in ("title", "description", "version", "revision", "base.name"):
            self.assertIn(f"org.opencontainers.image.{key}=", labels)

    def test_apt_lists_are_removed_in_the_same_layer(self):
        for ins, rest in self.runtime:
            if ins == "RUN" and "apt-get install" in rest:
                self.assertIn("rm -rf /var/lib/apt/lists/*", rest)
                self.assertIn("--no-install-recommends", rest)


class RuntimeLibraries(unittest.TestCase):
    def test_every_library_the_binary_loads_is_installed_by_the_runtime_stage(self):
        binary = os.environ.get("TSK_AGENT_BINARY", "")
        if not binary or not os.path.exists(binary):
            self.fail(f"binary {binary!r} not built; build the ts-kube-agent target "
                      "(or runtime_libs_probe) first")
        if os.environ.get("TSK_AGENT_BINARY_IS_PROBE") == "1":
            print("NOTE: checking runtime_libs_probe, a stand-in linking the agent's libraries; "
                  "the agent target does not exist in this tree")
        libs = ldd_packages(binary)
        named = runtime_packages(list(stages().values())[-1])
        missing = {p: [l for l, q in libs.items() if q == p]
                   for p in set(libs.values()) - named}
        self.assertEqual(missing, {}, f"runtime stage installs {sorted(named)}")
        for needed in ("libcpp-httplib0.11", "libssl3", "libyaml-cpp0.7",
                       "libprometheus-cpp-core1.0"):
            self.assertIn(needed, set(libs.values()), f"{binary} does not link {needed}?")


def glob_regex(pattern):
    """A .dockerignore pattern (Go filepath.Match plus "**") as a regular expression."""
    out = ""
    segments = pattern.strip("/").split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:.*/)?"
            continue
        out += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in seg)
        if not last:
            out += "/"
    return out


class DockerIgnore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        text = read_text(os.path.join(SOURCE_DIR, ".dockerignore"))
        cls.patterns = [l.strip() for l in text.splitlines()
                        if l.strip() and not l.startswith("#")]

    def ignored(self, path):
        """Docker's rule: a pattern matches the path or one of its parent directories."""
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(re.fullmatch(glob_regex(pat), p) for pat in self.patterns for p in prefixes)

    def test_keeps_everything_the_build_needs(self):
        files = run(["git", "ls-files"], cwd=SOURCE_DIR).stdout.split()
        needed = [f for f in files if f.split("/")[0] in (
            "CMakeLists.txt", "common", "watcher", "k8s", "agent", "tools", "tests", "scripts")]
        self.assertIn("scripts/install-deps.sh", needed)
        self.assertEqual([f for f in needed if self.ignored(f)], [])

    def test_drops_vcs_build_trees_and_deploy_files(self):
        for path in (".git/HEAD", "build/CMakeCache.txt", "build-agent/x", "deploy/README.md",
                     "tests/fuzz/corpus-run/a", "docs/BENCHMARKS.md", "x.profraw"):
            self.assertTrue(self.ignored(path), path)


if __name__ == "__main__":
    main()
