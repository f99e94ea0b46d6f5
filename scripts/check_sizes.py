#!/usr/bin/env python3
"""Fail when a source file outside tests passes 600 lines or a function passes 80 lines.

Declarative tables (a brace-initialised object: `... = {`) are not functions and are not
counted. `--self-test` proves the checker can fail; `--list N` prints every function over N.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ["actors", "bench", "cli", "fl", "model", "monitoring", "support"]
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def strip_comments_and_strings(text):
    """Blank out comments and literals (keeping newlines) so braces inside them do not count."""
    pattern = re.compile(
        r'//[^\n]*|/\*.*?\*/|R"([^(]*)\(.*?\)\1"|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
        re.S)

    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    return pattern.sub(blank, text)


SCOPE_KEYWORDS = re.compile(r"\b(namespace|class|struct|union|enum)\b")


def is_initializer(header):
    """A brace that opens data (`= {`, `f({`, a row after `,`), not code."""
    h = header.strip()
    return h == "" or h.endswith(("=", ",", "(", "{", "return"))


def long_functions(text, limit):
    """(first line, length, header) of each function longer than `limit` lines of code.

    Lines inside a brace-initialised table within a function count as a declarative table,
    not as code: a schema of 200 rows is one list, not a 200-line function.
    """
    code = strip_comments_and_strings(text)
    found = []
    stack = []  # one [kind, start line, header, table lines] per open brace
    header_start = 0
    line = 1
    for i, ch in enumerate(code):
        if ch == "\n":
            line += 1
        elif ch == "{":
            header = code[header_start:i]
            inside_function = any(entry[0] in ("function", "code") for entry in stack)
            if inside_function:
                in_table = stack[-1][0] == "table"
                opens_code = re.search(r"(\)|\bmutable|\belse|\bdo|\btry)\s*$", header) is not None
                if opens_code:
                    kind = "code"
                else:
                    kind = "table" if in_table or is_initializer(header) else "code"
            elif SCOPE_KEYWORDS.search(header) and "(" not in header:
                kind = "scope"
            elif "(" in header and not header.rstrip().endswith("="):
                kind = "function"
            else:
                kind = "data"
            stack.append([kind, line, " ".join(header.split())[-90:], 0])
            header_start = i + 1
        elif ch == "}":
            if stack:
                kind, start, header, table_lines = stack.pop()
                span = line - start + 1
                if kind == "code" and stack and stack[-1][0] == "table":
                    stack[-1][3] += span  # a lambda inside a table is code
                elif kind == "table" and stack and stack[-1][0] == "table":
                    stack[-1][3] += table_lines  # carry nested code up to the outer table
                elif kind == "table":
                    for entry in reversed(stack):
                        if entry[0] == "function":
                            entry[3] += span - table_lines
                            break
                if kind == "function" and span - table_lines > limit:
                    found.append((start, span - table_lines, header))
            header_start = i + 1
        elif ch == ";":
            header_start = i + 1
    return found


def sources():
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".cpp", ".hpp"):
                yield path


def check(limit_functions):
    problems = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        lines = text.count("\n")
        if lines > MAX_FILE_LINES:
            problems.append(f"{rel}: {lines} lines (at most {MAX_FILE_LINES})")
        for start, length, header in long_functions(text, limit_functions):
            problems.append(f"{rel}:{start}: function of {length} lines "
                            f"(at most {limit_functions}): {header}")
    return problems


def self_test():
    short = "int f(int x) {\n" + "  x += 1;\n" * 3 + "  return x;\n}\n"
    long = "namespace n {\nint g() {\n" + "  call();\n" * 90 + "  return 0;\n}\n}\n"
    table = "const std::vector<Row> rows = {\n" + "  {\"a\", 1},\n" * 120 + "};\n"
    braces_in_strings = 'int h() {\n  auto s = "}}}";\n' + "  work();\n" * 85 + "}\n"
    assert long_functions(short, 80) == []
    assert [n for _, n, _ in long_functions(long, 80)] == [93]
    assert long_functions(table, 80) == []
    table_in_function = ("const std::vector<Row>& schema() {\n  static const std::vector<Row> rows = {\n"
                         + "    {\"a\", 1},\n" * 120 + "  };\n  return rows;\n}\n")
    assert long_functions(table_in_function, 80) == []
    code_after_table = table_in_function.replace("  return rows;\n", "  step();\n" * 85)
    assert [n for _, n, _ in long_functions(code_after_table, 80)] == [87]
    assert [n for _, n, _ in long_functions(braces_in_strings, 80)] == [88]
    handlers = ("behavior make() {\n  return {\n    [=](int x) {\n" + "      act(x);\n" * 85
                + "    },\n  };\n}\n")
    assert [n for _, n, _ in long_functions(handlers, 80)] == [89]
    print("check_sizes self-test: ok")


def main(argv):
    if "--self-test" in argv:
        self_test()
        return 0
    limit = MAX_FUNCTION_LINES
    if "--list" in argv:
        limit = int(argv[argv.index("--list") + 1])
    problems = check(limit)
    for p in problems:
        print(p)
    if problems:
        print(f"check_sizes: {len(problems)} problem(s)")
        return 1
    print("check_sizes: no file over 600 lines, no function over 80 lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
