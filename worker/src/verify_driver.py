# Runs inside the verify sandbox, as the virtualenv's interpreter, in the generated project's
# directory: each step is `python -B -m <args...>` with stdout and stderr together; prints one JSON
# line with each step's exit code, the tail of its output and its duration, and the head of the
# JUnit report pytest wrote to /tmp. The request comes on stdin.
import json
import subprocess
import sys
import time

request = json.load(sys.stdin)
cap = request["output_cap"]
steps = []
for step in request["steps"]:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-B", "-m", *step["args"]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        code, output = done.returncode, done.stdout.decode("utf-8", "replace")
    except OSError as error:
        code, output = -1, f"cannot start {step['name']}: {error}"
    steps.append(
        {
            "name": step["name"],
            "code": code,
            "output": output[-cap:],
            "ms": int((time.monotonic() - started) * 1000),
        }
    )
junit = ""
try:
    with open(request["junit"], encoding="utf-8", errors="replace") as report:
        junit = report.read(cap)
except OSError:
    pass
print(json.dumps({"steps": steps, "junit": junit}))
