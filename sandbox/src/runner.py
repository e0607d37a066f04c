# Runs one piece of user code inside the sandbox. Input on stdin: {"code": str, "input": any,
# "call": bool, "stdout_cap": int}. The user's prints are kept (up to the cap) and the result is the
# last line of the real stdout: {"ok": bool, "output"?: any, "error"?: {type, message, line?},
# "stdout": str, "truncated": bool}.
import json
import os
import sys
import traceback

# Nothing the sandbox's launcher inherited reaches user code: only 0, 1 and 2 stay open.
os.closerange(3, 1 << 20)

FILENAME = "<function>"


class Capped:
    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.truncated = False

    def write(self, text):
        text = str(text)
        room = self.cap - self.size
        if len(text) > room:
            self.truncated = True
            text = text[: max(room, 0)]
        if text:
            self.parts.append(text)
            self.size += len(text)
        return len(text)

    def flush(self):
        pass

    def value(self):
        return "".join(self.parts)


def line_of(error):
    if isinstance(error, SyntaxError) and error.filename == FILENAME:
        return error.lineno
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == FILENAME:
            return frame.lineno
    return None


def main():
    request = json.loads(sys.stdin.read())
    real = sys.stdout
    captured = Capped(int(request.get("stdout_cap", 65536)))
    result = {}
    try:
        code = compile(request["code"], FILENAME, "exec")
        if request.get("compile_only"):
            namespace = None
        else:
            namespace = {"__name__": "__function__"}
            sys.stdout = captured
            exec(code, namespace)
        handler = namespace.get("handler") if namespace is not None else None
        if request.get("call") and not callable(handler):
            raise NameError("the code defines no handler(input)")
        if callable(handler):
            output = handler(request.get("input"))
            json.dumps(output, allow_nan=False)
            result["output"] = output
        elif request.get("compile_only"):
            import ast

            tree = ast.parse(request["code"], FILENAME)
            result["defines_handler"] = any(
                isinstance(node, ast.FunctionDef)
                and node.name == "handler"
                and len(node.args.args) == 1
                for node in tree.body
            )
        result["ok"] = True
    except BaseException as error:  # noqa: BLE001 - every failure of user code is its result
        result["ok"] = False
        message = str(error)
        if isinstance(error, SyntaxError):
            message = error.msg
        result["error"] = {
            "type": type(error).__name__,
            "message": message[:4096],
            "line": line_of(error),
        }
        if isinstance(error, SyntaxError) and error.offset is not None:
            result["error"]["column"] = error.offset
    finally:
        sys.stdout = real
    result["stdout"] = captured.value()
    result["truncated"] = captured.truncated
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        text = json.dumps(
            {
                "ok": False,
                "error": {"type": "TypeError", "message": str(error)[:4096], "line": None},
                "stdout": captured.value(),
                "truncated": captured.truncated,
            }
        )
    real.write("\n" + text + "\n")
    real.flush()


main()
