#!/usr/bin/python3
"""Runs the README's walkthroughs, in order, against fresh Nexus instances, as a reader would copy them.

    /usr/bin/python3 scripts/readme-check.py            (scripts/test.sh runs it as the "readme" suite)

Every ```sh block under the headings in WALKTHROUGHS is run in one bash session (variables carry from one block to
the next, as in a reader's terminal), except a block right after a line `<!-- readme-check: skip … -->`, which says
why it cannot run on one machine (a real Google account, a browser). Each walkthrough is two tests:
- **variables:** every `$VAR` a block uses is assigned earlier in the walkthrough or in one before it that it continues (or
  by the shell: HOME, PATH…);
- **run:** every command exits 0, and where a command is followed by comment lines that show its output (lines
  `# {…`, `# […`, `# http…`), what it printed matches them, `…` standing for any text.

`dotnet run --project P [-- ARGS]` runs the Release build of P that scripts/test.sh made (building P when missing) in
the background and waits until it answers: Nexus with a new data directory each time (a fresh instance) and the
launch profile's `NEXUS_DEFAULT_ENVIRONMENT=Development`. When port 8090 or 9000 is taken, the walkthroughs and their
expected outputs are run with other ports instead. Ends with "N passed, N failed".
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATION = os.environ.get("NEXUS_TEST_CONFIGURATION", "Release")

# The README's walkthroughs, in the order a reader follows them (a heading's blocks run up to the next heading of
# the same or a higher level).
WALKTHROUGHS = [
    "Walkthrough: App Clients and the client credentials flow",
    "Walkthrough: Nexus as your app's identity provider",
    "Your first connection",
    "Try the Bridge on one machine",
]

# Set by the shell or the system, never by a walkthrough.
SHELL_VARIABLES = {"HOME", "PATH", "PWD", "USER", "RANDOM", "?", "!", "$", "#", "@", "*", "0", "1", "2"}

OUTPUT_LINE = re.compile(r"^#\s?(\{|\[|http)")


def free_port(preferred):
    for port in [preferred] + [0] * 20:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def sections(readme):
    """heading text -> list of (skip_reason or None, block text)"""
    lines = readme.splitlines()
    found = {}
    for title in WALKTHROUGHS:
        start = next((i for i, l in enumerate(lines) if re.match(r"^#{2,4} " + re.escape(title) + r"\s*$", l)), None)
        if start is None:
            found[title] = None
            continue
        level = len(lines[start].split(" ")[0])
        blocks, i, skip = [], start + 1, None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"^(#{1,6}) ", line)
            if m and len(m.group(1)) <= level:
                break
            s = re.match(r"^<!-- readme-check: skip (.*?) ?-->", line)
            if s:
                skip = s.group(1) or "skipped"
            if line.strip() == "```sh":
                j = i + 1
                while lines[j].strip() != "```":
                    j += 1
                blocks.append((skip, "\n".join(lines[i + 1:j])))
                skip = None
                i = j
            i += 1
        found[title] = blocks
    return found


def steps(block):
    """Splits a block into (command, expected output or None): a command runs up to the output lines shown after it."""
    result, command, expected = [], [], []
    for line in block.splitlines():
        if OUTPUT_LINE.match(line) or (expected and re.match(r"^#\s{2,}\S", line)):
            expected.append(re.sub(r"^#\s?", "", line))
            continue
        if expected:
            result.append(("\n".join(command), "".join(e.strip() for e in expected)))
            command, expected = [], []
        command.append(line)
    if command or expected:
        result.append(("\n".join(command), "".join(e.strip() for e in expected) if expected else None))
    return [(c, e) for c, e in result if c.strip() or e]


def unassigned_variables(blocks, assigned):
    missing = []
    for _, block in blocks:
        for line in block.splitlines():
            code = re.sub(r"(^|\s)#.*$", "", line) if not line.lstrip().startswith("#") else ""
            code = re.sub(r"'[^']*'", "''", code)  # single quotes: no expansion
            for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code):
                if name not in assigned and name not in SHELL_VARIABLES and name not in missing:
                    missing.append(name)
            for name in re.findall(r"(?:^|[\s;(&|])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", code):
                assigned.add(name)
            for name in re.findall(r"\bread\s+(?:-\w+\s+)*([A-Za-z_][A-Za-z0-9_]*)", code):
                assigned.add(name)
    return missing


# In shown outputs, an example id (conn_01M80YDB84VHHSP9KSJ76G6KY4) stands for any id with its prefix, and an example
# time (1763790000) for any Unix time.
EXAMPLE_ID = re.compile(r"\b((?:conn|ak|wh|nxc|nxs|nxk|user|ws)_)[0-9A-Za-z]{16,}\b")
EXAMPLE_TIME = re.compile(r"\b1[6-9][0-9]{8}\b")


def pattern(expected):
    regex = []
    for part in expected.split("…"):
        text, last = [], 0
        for m in sorted(list(EXAMPLE_ID.finditer(part)) + list(EXAMPLE_TIME.finditer(part)), key=lambda m: m.start()):
            text.append(re.escape(part[last:m.start()]))
            text.append(re.escape(m.group(1)) + r"[0-9A-Za-z]+" if m.re is EXAMPLE_ID else r"[0-9]{10}")
            last = m.end()
        text.append(re.escape(part[last:]))
        regex.append("".join(text))
    return re.compile(r"\s*" + ".*?".join(regex) + r"\s*", re.S)


class Shell:
    """One bash session for every walkthrough; each step's output goes to a file."""

    def __init__(self, work, ports):
        self.work = work
        self.n = 0
        prelude = os.path.join(work, "prelude.sh")
        with open(prelude, "w") as f:
            f.write(PRELUDE.format(root=ROOT, configuration=CONFIGURATION, work=work,
                                   nexus_port=ports[8090], provider_port=ports[9000]))
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, cwd=ROOT,
                                     text=True, env={k: v for k, v in os.environ.items() if k not in (
                                         "API_KEY", "DATABASE_URL", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT")})
        self.send(f"source {prelude}\n")

    def send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def run(self, command, timeout=180):
        self.n += 1
        out, done = os.path.join(self.work, f"out.{self.n}"), os.path.join(self.work, f"rc.{self.n}")
        script = os.path.join(self.work, f"step.{self.n}.sh")
        with open(script, "w") as f:
            f.write(rewrite(command) + "\n")
        self.send(f"source {script} > {out} 2> {out}.err < /dev/null; echo $? > {done}.tmp; mv {done}.tmp {done}\n")
        deadline = time.time() + timeout
        while not os.path.exists(done):
            if time.time() > deadline or self.proc.poll() is not None:
                return None, read(out), read(out + ".err")
            time.sleep(0.05)
        return int(read(done).strip() or "1"), read(out), read(out + ".err")

    def close(self):
        try:
            self.send("stop_all\nexit\n")
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def rewrite(command):
    # `dotnet run --project P [-- ARGS] [&]` → run_project P ARGS (backgrounded and awaited by run_project itself).
    def repl(m):
        args = m.group(2) or ""
        return f"run_project {m.group(1)} {args}".rstrip()
    return re.sub(r"dotnet run --project (\S+)(?: -- ([^&\n]*?))?\s*&?\s*$", repl, command, flags=re.M)


PRELUDE = r"""
readme_pids=()
readme_nexus=""
readme_n=0
stop_pid() {{ kill "$1" 2>/dev/null; for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; kill -9 "$1" 2>/dev/null; }}
stop_all() {{ for p in "${{readme_pids[@]}}"; do stop_pid "$p"; done; readme_pids=(); }}
wait_for() {{ # url pid log
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || {{ echo "readme-check: $3 exited before answering" >&2; tail -n 20 "$3" >&2; return 1; }}
    sleep 0.1
  done
  echo "readme-check: $1 did not answer" >&2; return 1
}}
run_project() {{ # project dir, args...
  local project="$1"; shift
  local name dll log
  name="$(basename "$project")"
  dll="{root}/$project/bin/{configuration}/net10.0/$name.dll"
  if [ ! -f "$dll" ]; then dotnet build "{root}/$project" -c {configuration} -nologo -v quiet > "{work}/build-$name.log" 2>&1 || {{ tail -n 20 "{work}/build-$name.log" >&2; return 1; }}; fi
  readme_n=$((readme_n + 1))
  log="{work}/$name.$readme_n.log"
  if [ "$name" = "Nexus.Server" ]; then
    [ -n "$readme_nexus" ] && stop_pid "$readme_nexus"
    NEXUS_DEFAULT_ENVIRONMENT=Development Nexus__DataDirectory="{work}/data.$readme_n" \
      BASE_URL="http://localhost:{nexus_port}" ASPNETCORE_URLS="http://localhost:{nexus_port}" \
      dotnet "$dll" "$@" > "$log" 2>&1 &
    readme_nexus=$!; readme_pids+=($!)
    wait_for "http://localhost:{nexus_port}/readyz" $! "$log"
  else
    dotnet "$dll" "$@" > "$log" 2>&1 &
    readme_pids+=($!)
    local url; url="$(printf '%s\n' "$@" | grep -m1 -E '^https?://' || true)"
    if [ -n "$url" ]; then wait_for "$url/healthz" $! "$log"; else sleep 1; fi
  fi
}}
"""


def main():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    ports = {8090: free_port(8090), 9000: free_port(9000)}

    def localize(text):
        for default, port in ports.items():
            if port != default:
                text = re.sub(r"(:|%3A)" + str(default) + r"\b", lambda m: m.group(1) + str(port), text)
        return text

    work = tempfile.mkdtemp(prefix="nexus-readme.")
    shell = Shell(work, ports)
    passed = failed = skipped = 0
    assigned = set()  # a walkthrough may continue an earlier one, as the README says where it does
    try:
        for title, blocks in sections(readme).items():
            if blocks is None:
                print(f"FAIL {title}: heading not found in README.md")
                failed += 2
                continue
            runnable = [(s, localize(b)) for s, b in blocks if s is None]
            missing = unassigned_variables(runnable, assigned)
            if missing:
                print(f"FAIL {title} (variables): used before the walkthrough assigns them: {', '.join('$' + m for m in missing)}")
                failed += 1
            else:
                print(f"ok   {title} (variables)")
                passed += 1
            for s, _ in blocks:
                if s is not None:
                    print(f"skip {title}: a block is not run: {s.strip('()')}")
                    skipped += 1
            problem = None
            for _, block in runnable:
                for command, expected in steps(block):
                    if not command.strip():
                        problem = f"output shown without a command: {expected}"
                        break
                    rc, out, err = shell.run(command)
                    if rc != 0:
                        problem = f"exit {rc} from:\n{command}\n{err.strip()[-2000:]}"
                        break
                    if expected is not None and not pattern(expected).fullmatch(out):
                        problem = f"output differs from the README for:\n{command}\n  README: {expected}\n  actual: {out.strip()[:2000]}"
                        break
                if problem:
                    break
            if problem:
                print(f"FAIL {title} (run): {problem}")
                failed += 1
            else:
                print(f"ok   {title} (run)")
                passed += 1
    finally:
        shell.close()
        if os.environ.get("NEXUS_README_KEEP"):
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
