# Runs one piece of user code inside the sandbox. Input on stdin: {"code": str, "input": any,
# "call": bool, "stdout_cap": int}. The user's prints are kept (up to the cap) and the result is the
# last line of the real stdout: {"ok": bool, "output"?: any, "error"?: {type, message, line?},
# "stdout": str, "truncated": bool}.
import os
import sys

# The JSON codec of `json` itself (its C parts, configured exactly as `json.loads` and
# `json.dumps(allow_nan=False)` configure them), without importing `json`, whose pure-Python
# half imports `re` (a third of the runner's start-up). `traceback` is imported only when a run
# failed.
from _json import encode_basestring_ascii, make_encoder, make_scanner

# The interpreter runs without `site` (`-S`: only the standard library is available); what
# `site` would have added for user code is `exit` and `quit`.
import builtins


def _exit(code=None):
    raise SystemExit(code)


builtins.exit = builtins.quit = _exit

# Nothing the sandbox's launcher inherited reaches user code: only 0, 1 and 2 stay open.
os.closerange(3, 1 << 20)

FILENAME = "<function>"


class Decoder:
    # The attributes the C scanner reads, as `json.JSONDecoder()` sets them.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def loads(text):
    scan = make_scanner(Decoder())
    try:
        value, end = scan(text, 0)
    except StopIteration as error:
        raise ValueError(f"invalid JSON at {error.value}") from None
    if text[end:].strip(" \t\n\r"):
        raise ValueError(f"extra data at {end}")
    return value


def no_default(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value):
    # `json.dumps(value, allow_nan=False)`: ", " and ": " separators, ASCII, circular check.
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    encode = make_encoder({}, no_default, encode_basestring_ascii, None, ": ", ", ", False, False, False)
    return "".join(encode(value, 0))


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
    import traceback

    if isinstance(error, SyntaxError) and error.filename == FILENAME:
        return error.lineno
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == FILENAME:
            return frame.lineno
    return None


def main():
    request = loads(sys.stdin.read())
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
            dumps(output)
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
        text = dumps(result)
    except (TypeError, ValueError) as error:
        text = dumps(
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
