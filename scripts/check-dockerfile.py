#!/usr/bin/python3
"""Checks the Dockerfile against the repository, since no image can be built here (no registry is reachable).

    /usr/bin/python3 scripts/check-dockerfile.py        (scripts/test.sh runs it as the "dockerfile" suite)

- every path a COPY (without --from) takes from the build context exists, and .dockerignore does not exclude it;
- every project file that src/Nexus.Server references is copied (a new ProjectReference would break the image);
- the stages are the official .NET images (mcr.microsoft.com/dotnet/sdk and aspnet), and the runtime stage runs as
  the image's non-root user;
- the ENTRYPOINT and the HEALTHCHECK run the binary `dotnet publish` makes (the apphost named after the project's
  AssemblyName) from the folder the build stage publishes to and the runtime stage copies: checked on a real
  `dotnet publish` of src/Nexus.Server;
- deploy/compose.yaml builds this Dockerfile from the repository root, and each file it mounts exists.

Ends with "N passed, N failed".
"""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATION = os.environ.get("NEXUS_TEST_CONFIGURATION", "Release")
SERVER_PROJECT = "src/Nexus.Server/Nexus.Server.csproj"

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))


def instructions(path):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            lines.append(current.strip())
            current = ""
    result = []
    for line in lines:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def exec_form(arguments):
    """["a", "b"] -> [a, b]; shell form -> None."""
    try:
        value = json.loads(arguments)
        return value if isinstance(value, list) else None
    except json.JSONDecodeError:
        return None


def ignore_patterns():
    path = os.path.join(ROOT, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def ignored(relative, patterns):
    """Docker's rule, simplified: the last matching pattern wins; a pattern also excludes what is below a match."""
    result = False
    parts = relative.strip("/").split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        p = p.strip("/")
        regex = "^" + re.escape(p).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"
        for i in range(1, len(parts) + 1):
            if re.match(regex, "/".join(parts[:i])):
                result = not negate
                break
    return result


def main():
    dockerfile = os.path.join(ROOT, "Dockerfile")
    check("Dockerfile exists at the repository root", os.path.exists(dockerfile))
    if not os.path.exists(dockerfile):
        return
    steps = instructions(dockerfile)
    patterns = ignore_patterns()
    check(".dockerignore keeps build output and local data out of the context",
          all(ignored(p, patterns) for p in ["src/Nexus.Server/bin", "src/Nexus.Server/obj", "src/Nexus.Server/data", "x/encryption.key", "tests"]))

    # Stages.
    stages = [(i, a) for i, (w, a) in enumerate(steps) if w == "FROM"]
    images = [a.split()[0] for _, a in stages]
    check("the build stage is the official .NET SDK image", images and images[0].startswith("mcr.microsoft.com/dotnet/sdk:10.0"), str(images))
    check("the runtime stage is the official ASP.NET Core runtime image", images and images[-1].startswith("mcr.microsoft.com/dotnet/aspnet:10.0"), str(images))
    runtime = steps[stages[-1][0]:] if stages else []
    build = steps[stages[0][0]:stages[-1][0]] if len(stages) > 1 else []
    users = [a for w, a in runtime if w == "USER"]
    check("the runtime stage runs as the image's non-root user", users and users[-1] in ("$APP_UID", "${APP_UID}", "app", "1654"), str(users))

    # COPY sources.
    copied = []
    for word, arguments in steps:
        if word != "COPY" or "--from=" in arguments:
            continue
        form = exec_form(arguments)
        tokens = form if form is not None else [t for t in arguments.split() if not t.startswith("--")]
        for source in tokens[:-1]:
            copied.append(source)
            path = os.path.join(ROOT, source)
            check(f"COPY {source} exists", os.path.exists(path), "no such file or folder in the repository")
            check(f"COPY {source} is not excluded by .dockerignore", not ignored(source, patterns))
    for reference in project_references(os.path.join(ROOT, SERVER_PROJECT)):
        directory = os.path.dirname(reference) + "/"
        check(f"the project {reference} (referenced by the server) is copied",
              reference in copied and any(c.rstrip("/") + "/" == directory for c in copied), str(copied))

    # The published binary: publish output folder, ENTRYPOINT, HEALTHCHECK.
    publish = [a for w, a in build if w == "RUN" and "dotnet publish" in a]
    out = re.search(r"(?:-o|--output)\s+(\S+)", publish[0]).group(1) if publish else None
    check("the build stage publishes src/Nexus.Server to one folder", bool(publish) and SERVER_PROJECT in publish[0] and out, str(publish))
    copies_out = [a for w, a in runtime if w == "COPY" and "--from=build" in a and a.split()[-2] == out]
    workdir = [a for w, a in runtime if w == "WORKDIR"]
    app_dir = os.path.normpath(os.path.join(workdir[-1] if workdir else "/", copies_out[0].split()[-1])) if copies_out else None
    check("the runtime stage copies the publish folder", bool(copies_out), f"no COPY --from=build {out} …")

    assembly = assembly_name(os.path.join(ROOT, SERVER_PROJECT))
    entry = [exec_form(a) for w, a in runtime if w == "ENTRYPOINT"]
    entry = entry[-1] if entry else None
    check("ENTRYPOINT is in exec form", entry is not None)
    expected = f"{app_dir}/{assembly}" if app_dir else None
    check("ENTRYPOINT runs the published binary", entry is not None and entry[0] == expected, f"{entry} vs {expected}")
    health = [a for w, a in runtime if w == "HEALTHCHECK"]
    health_cmd = exec_form(health[-1].split(" CMD ", 1)[1]) if health and " CMD " in health[-1] else None
    check("HEALTHCHECK runs the published binary's healthcheck command (the image has no curl)",
          health_cmd is not None and health_cmd[:2] == [expected, "healthcheck"], str(health_cmd))

    published = publish_server()
    check(f"dotnet publish makes the apphost '{assembly}' the ENTRYPOINT names",
          published is not None and os.access(os.path.join(published, assembly), os.X_OK),
          "dotnet publish failed" if published is None else f"not in {sorted(os.listdir(published))[:10]}…")
    if published is not None:
        result = subprocess.run([os.path.join(published, assembly), "healthcheck", "--help"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DOTNET_ROOT": os.environ.get("DOTNET_ROOT", dotnet_root())})
        check("the published binary knows the healthcheck command", result.returncode == 0 and "healthcheck" in result.stdout, result.stdout + result.stderr)
        result = subprocess.run([os.path.join(published, assembly), "healthcheck", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DOTNET_ROOT": os.environ.get("DOTNET_ROOT", dotnet_root())})
        check("healthcheck exits 1 when nothing answers", result.returncode == 1, f"exit {result.returncode}: {result.stdout}{result.stderr}")
        shutil.rmtree(os.path.dirname(published), ignore_errors=True)

    # The compose file builds this Dockerfile and mounts files that exist.
    compose = os.path.join(ROOT, "deploy", "compose.yaml")
    check("deploy/compose.yaml exists", os.path.exists(compose))
    if os.path.exists(compose):
        text = open(compose, encoding="utf-8").read()
        context = re.search(r"^\s+context:\s*(\S+)", text, re.M)
        dockerfile_name = re.search(r"^\s+dockerfile:\s*(\S+)", text, re.M)
        check("compose builds the Dockerfile from the repository root",
              context and os.path.normpath(os.path.join(ROOT, "deploy", context.group(1))) == ROOT
              and dockerfile_name and os.path.exists(os.path.join(ROOT, dockerfile_name.group(1))))
        for mount in re.findall(r"^\s+-\s+(\./[^:\s]+):", text, re.M):
            check(f"compose mounts {mount}, which exists", os.path.exists(os.path.join(ROOT, "deploy", mount)))


def project_references(csproj):
    text = open(csproj, encoding="utf-8").read()
    base = os.path.dirname(csproj)
    return [os.path.relpath(os.path.normpath(os.path.join(base, r.replace("\\", "/"))), ROOT).replace(os.sep, "/")
            for r in re.findall(r'<ProjectReference\s+Include="([^"]+)"', text)]


def assembly_name(csproj):
    match = re.search(r"<AssemblyName>([^<]+)</AssemblyName>", open(csproj, encoding="utf-8").read())
    return match.group(1) if match else os.path.splitext(os.path.basename(csproj))[0]


def dotnet_root():
    dotnet = shutil.which("dotnet")
    return os.path.dirname(os.path.realpath(dotnet)) if dotnet else ""


def publish_server():
    """dotnet publish of the server into a temporary folder: from the existing build when there is one."""
    temp = tempfile.mkdtemp(prefix="nexus-publish-")
    out = os.path.join(temp, "app")
    for extra in (["--no-build"], []):
        result = subprocess.run(["dotnet", "publish", SERVER_PROJECT, "-c", CONFIGURATION, "-o", out, "-nologo", "-v", "quiet", *extra],
                                cwd=ROOT, capture_output=True, text=True, timeout=900)
        if result.returncode == 0:
            return out
    print(result.stdout[-3000:] + result.stderr[-3000:])
    shutil.rmtree(temp, ignore_errors=True)
    return None


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
