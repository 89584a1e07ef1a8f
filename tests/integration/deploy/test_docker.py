#!/usr/bin/env python3
"""The Dockerfile and .dockerignore, checked without a container engine: the stages and their
instructions, and that the FROM-scratch runtime stage's root filesystem, assembled by
scripts/images/runtime-rootfs.sh (the script the builder stage runs), holds every shared library
the built binary loads (`ldd` of the binary) and the copyright file of each library's Debian
package (`dpkg -S`), and that the binary runs from it (chroot, as uid 65532, when root).
The image itself is built and run by the `image` tests (tests/integration/image).

TSK_AGENT_BINARY is the built ts-kube-agent ($<TARGET_FILE:ts-kube-agent>) or, while the agent
target does not exist, runtime_libs_probe, which links the same libraries
(TSK_AGENT_BINARY_IS_PROBE=1)."""

import filecmp
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from deploylib import CHART_DIR, SOURCE_DIR, main, read_text, run

DOCKERFILE = os.path.join(SOURCE_DIR, "Dockerfile")
ROOTFS_SCRIPT = os.path.join(SOURCE_DIR, "scripts", "images", "runtime-rootfs.sh")


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


def ldd_paths(binary):
    """The path of every library `ldd` resolves, as it prints them."""
    out = run(["ldd", binary]).stdout
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            raise AssertionError(f"ldd: {line} (the binary cannot even run here)")
        m = re.match(r"(\S+) => (/\S+)", line) or re.match(r"(/\S+) \(", line)
        if m:  # else linux-vdso: provided by the kernel
            paths.append(m[m.lastindex])
    return paths


def ldd_packages(binary):
    """{library path: Debian package} for every library `ldd` resolves."""
    return dpkg_owners(ldd_paths(binary))


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
        # BASE_IMAGE defaults to debian:bookworm; scripts/images/build.sh passes its
        # debootstrap-made bookworm instead.
        self.assertEqual(self.builder[0], ("FROM", "debian:bookworm"))
        runs = " ".join(a for i, a in self.builder if i == "RUN")
        self.assertIn("scripts/install-deps.sh --build-only", runs)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", runs)
        self.assertRegex(runs, r"cmake --build \S+ --target ts-kube-agent")

    def test_builder_copies_every_top_level_source_the_build_reads(self):
        # CMakeLists.txt adds these directories; a missing COPY fails the image build only.
        copies = " ".join(a for i, a in self.builder if i == "COPY")
        for src in ("CMakeLists.txt", "common", "watcher", "k8s", "agent", "tools", "tests",
                    "scripts/images/runtime-rootfs.sh"):
            self.assertRegex(copies, rf"(^| ){re.escape(src)} ", src)
        top = read_text(os.path.join(SOURCE_DIR, "CMakeLists.txt"))
        for d in re.findall(r"foreach\(dir ([^)]*)\)", top):
            for name in d.split():
                if not name.startswith("$"):
                    self.assertIn(f"{name} {name}/", copies, name)

    def test_builder_assembles_the_runtime_rootfs_with_the_tested_script(self):
        runs = " ".join(a for i, a in self.builder if i == "RUN")
        self.assertIn("strip /out/ts-kube-agent", runs)
        self.assertIn("scripts/images/runtime-rootfs.sh /out/ts-kube-agent /rootfs", runs)
        self.assertLess(runs.index("strip /out/ts-kube-agent"),
                        runs.index("scripts/images/runtime-rootfs.sh"))

    def test_runtime_is_scratch_and_copies_only_the_assembled_rootfs(self):
        self.assertEqual(self.runtime[0], ("FROM", "scratch"))
        copies = [a for i, a in self.runtime if i == "COPY"]
        self.assertEqual(copies, ["--from=builder /rootfs/ /"])
        # No shell in the image: a RUN could not execute.
        self.assertEqual([a for i, a in self.runtime if i == "RUN"], [])

    def test_runtime_runs_as_65532_the_uid_the_chart_expects(self):
        users = [a for i, a in self.runtime if i == "USER"]
        self.assertEqual(users, ["65532:65532"])
        values = read_text(os.path.join(CHART_DIR, "values.yaml"))
        self.assertIn("  runAsUser: 65532\n", values)

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
        for ins, rest in self.builder:
            if ins == "RUN" and "install" in rest:
                self.assertIn("rm -rf /var/lib/apt/lists/*", rest)
                self.assertIn("--no-install-recommends", rest)
        # No pull of a frontend image: the classic builder and a registry-free engine build it.
        self.assertNotIn("# syntax=", read_text(DOCKERFILE))


class RuntimeLibraries(unittest.TestCase):
    """runtime-rootfs.sh on the host's build: the FROM-scratch stage gets exactly this tree."""

    @classmethod
    def setUpClass(cls):
        cls.binary = os.environ.get("TSK_AGENT_BINARY", "")
        if not cls.binary or not os.path.exists(cls.binary):
            raise AssertionError(f"binary {cls.binary!r} not built; build the ts-kube-agent "
                                 "target (or runtime_libs_probe) first")
        cls.is_probe = os.environ.get("TSK_AGENT_BINARY_IS_PROBE") == "1"
        if cls.is_probe:
            print("NOTE: checking runtime_libs_probe, a stand-in linking the agent's libraries; "
                  "the agent target does not exist in this tree")
        cls.tmp = tempfile.mkdtemp(prefix="tsk-rootfs-")
        cls.rootfs = os.path.join(cls.tmp, "rootfs")
        run([ROOTFS_SCRIPT, cls.binary, cls.rootfs])
        cls.name = os.path.basename(cls.binary)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def inside(self, path):
        """`path` as the image sees it: symlinks resolved inside the rootfs, not on the host."""
        parts, cur = [p for p in path.split("/") if p], self.rootfs
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            if os.path.islink(cur):
                target = os.readlink(cur)
                base = self.rootfs if target.startswith("/") else os.path.dirname(cur)
                return self.inside(os.path.relpath(os.path.join(base, target.lstrip("/")),
                                                   self.rootfs) + "/" + "/".join(parts[i + 1:]))
        return cur

    def test_every_library_the_binary_loads_is_in_the_rootfs(self):
        libs = ldd_paths(self.binary)
        self.assertTrue(any("libcpp-httplib" in l for l in libs), libs)
        for lib in libs:
            copy = self.inside(lib)
            self.assertTrue(os.path.isfile(copy), f"{lib} is not in the rootfs at {lib}")
            self.assertTrue(filecmp.cmp(copy, os.path.realpath(lib), shallow=False), lib)
        self.assertTrue(filecmp.cmp(self.inside(f"/usr/local/bin/{self.name}"), self.binary,
                                    shallow=False))

    def test_the_packages_of_those_libraries_are_the_expected_ones_with_copyright(self):
        libs = ldd_packages(self.binary)
        for needed in ("libcpp-httplib0.11", "libssl3", "libyaml-cpp0.7",
                       "libprometheus-cpp-core1.0"):
            self.assertIn(needed, set(libs.values()), f"{self.binary} does not link {needed}?")
        for pkg in set(libs.values()):
            self.assertTrue(os.path.isfile(self.inside(f"/usr/share/doc/{pkg}/copyright")), pkg)

    def test_passwd_group_and_ca_bundle(self):
        passwd = read_text(self.inside("/etc/passwd"))
        self.assertIn("nonroot:x:65532:65532:", passwd)
        self.assertIn("nonroot:x:65532:", read_text(self.inside("/etc/group")))
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            self.assertTrue(os.path.getsize(self.inside("/etc/ssl/certs/ca-certificates.crt")) > 0)
        self.assertEqual(os.stat(self.inside("/tmp")).st_mode & 0o7777, 0o1777)

    def test_the_binary_runs_from_the_rootfs_alone_as_65532(self):
        chroot = shutil.which("chroot")
        if os.geteuid() != 0 or not chroot:
            self.skipTest("chroot needs root; the `image` tests run the built image instead")
        args = [] if self.is_probe else ["--version"]
        r = subprocess.run([chroot, "--userspec=65532:65532", self.rootfs,
                            f"/usr/local/bin/{self.name}"] + args,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        if not self.is_probe:
            self.assertRegex(r.stdout, r"^ts-kube-agent \d+\.\d+\.\d+")


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
