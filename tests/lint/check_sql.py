"""SQL only through parameters: fails when C code formats SQL text with printf-style conversions
(the way injection gets in) or runs text queries outside common/wasl_pg.c. `make lint` runs it;
`make test` runs `make lint`. Prints each offence as file:line and exits 1 when there is one."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("common", "services") for p in (ROOT / d).rglob("*.c")]
SQL_WORD = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WHERE|VALUES)\b")
FORMAT_CALL = re.compile(r"\b(v?s?n?printf|asprintf|zsys_sprintf|g_strdup_printf)\s*\(")
CONVERSION = re.compile(r"%[-+ #0-9.]*[sdiuxlzq]")
RAW_QUERY = re.compile(r"\b(PQexec|PQsendQuery)\s*\(")


def string_literals(text):
    """The concatenated string literals of a call's argument text."""
    return "".join(m.group(1) for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text))


def check(path):
    problems = []
    src = path.read_text(encoding="utf-8", errors="replace")
    for m in FORMAT_CALL.finditer(src):
        # The call's text up to its closing parenthesis (good enough for our code style).
        depth, i = 0, m.end() - 1
        while i < len(src):
            depth += src[i] == "("
            depth -= src[i] == ")"
            if depth == 0:
                break
            i += 1
        lits = string_literals(src[m.end():i])
        if SQL_WORD.search(lits) and CONVERSION.search(lits):
            line = src.count("\n", 0, m.start()) + 1
            problems.append(f"{path.relative_to(ROOT)}:{line}: SQL built with a format string; "
                            "pass values as $n parameters")
    if path.name != "wasl_pg.c":
        for m in RAW_QUERY.finditer(src):
            line = src.count("\n", 0, m.start()) + 1
            problems.append(f"{path.relative_to(ROOT)}:{line}: raw {m.group(1)}; use wasl_pg "
                            "(parameterized) instead")
    return problems


def main():
    problems = [p for path in sorted(SOURCES) for p in check(path)]
    for p in problems:
        print(p)
    print(f"sql lint: {len(SOURCES)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
