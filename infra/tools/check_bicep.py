"""Static checks of infra/bicep without the Bicep CLI (it cannot be downloaded here).

1. Every .bicep file parses with pycep, the same parser (and version) checkov uses, so a file
   that fails here would be silently skipped by the checkov scan.
2. Every `module` path exists; the params passed to it are declared there, and every param
   without a default is passed; every `<module>.outputs.<name>` used is declared there.
3. Every .bicepparam file: pycep has no grammar for `using` files, so each one is checked by
   rewriting `param x = v` to `var x = v` (bicepparam-only functions such as
   readEnvironmentVariable() become a placeholder) and parsing that; then its `using` target
   must exist, each param must be declared there, every param without a default must be set,
   and literal values must fit the declared type, @allowed, @min/maxValue and @min/maxLength.

Usage: check_bicep.py [ROOT]        (default infra/bicep); exit 1 when any check fails.
       check_bicep.py --self-test   feeds broken inputs and asserts each is reported.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from pycep import BicepParser

PARSER = BicepParser()
USING_RE = re.compile(r"^\s*using\s+'([^']+)'\s*$", re.MULTILINE)
PARAM_LINE_RE = re.compile(r"^(\s*)param(\s+\w+\s*=)", re.MULTILINE)
# Functions that exist only in .bicepparam files; their results are unknown until deployment.
PARAM_ONLY_CALL_RE = re.compile(r"\b(readEnvironmentVariable|getSecret)\([^()]*\)")
PLACEHOLDER = "__set_at_deployment__"
OUTPUT_REF_RE = re.compile(r"\b(\w+)\.outputs\.(\w+)")
TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "int": (int,), "bool": (bool,),
                                      "object": (dict,), "array": (list,)}


def parse(path: Path, text: str | None = None) -> dict[str, Any]:
    """Parses Bicep text (or the file); raises with the parser's line/column on failure."""
    return PARSER.parse(text=text if text is not None else path.read_text())


def unwrap(config: dict[str, Any]) -> dict[str, Any]:
    """A conditional or looped module nests its body one level deeper, under "config"."""
    while "config" in config and isinstance(config["config"], dict):
        config = config["config"]
    return config


def decorators(param: dict[str, Any]) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in param.get("decorators", [])}


def check_module_calls(path: Path, tree: dict[str, Any], parsed: dict[Path, dict]) -> list[str]:
    errors: list[str] = []
    text = path.read_text()
    for symbol, module in tree.get("modules", {}).items():
        target = (path.parent / module["detail"]["path"]).resolve()
        if target not in parsed:
            errors.append(f"{path}: module {symbol}: {module['detail']['path']} not found or not parsed")
            continue
        declared = parsed[target].get("parameters", {})
        passed = unwrap(module["config"]).get("params", {})
        for name in passed:
            if name not in declared:
                errors.append(f"{path}: module {symbol}: param {name} is not declared in {target.name}")
        for name, param in declared.items():
            if param.get("default") is None and name not in passed:
                errors.append(f"{path}: module {symbol}: required param {name} of {target.name} not passed")
        outputs = parsed[target].get("outputs", {})
        for ref_symbol, output in sorted(set(OUTPUT_REF_RE.findall(text))):
            if ref_symbol == symbol and output not in outputs:
                errors.append(f"{path}: {symbol}.outputs.{output} is not an output of {target.name}")
    return errors


def value_problem(name: str, value: Any, param: dict[str, Any]) -> str | None:
    """Why a literal value does not fit the declared param, or None."""
    if value == PLACEHOLDER:
        return None
    expected = TYPES.get(param["type"])
    if expected and (not isinstance(value, expected) or (param["type"] == "int" and isinstance(value, bool))):
        return f"param {name}: {value!r} is not of type {param['type']}"
    rules = decorators(param)
    if "allowed" in rules and value not in rules["allowed"]:
        return f"param {name}: {value!r} is not one of {rules['allowed']}"
    if isinstance(value, int) and not isinstance(value, bool):
        if "min_value" in rules and value < int(rules["min_value"]):
            return f"param {name}: {value} < minValue {rules['min_value']}"
        if "max_value" in rules and value > int(rules["max_value"]):
            return f"param {name}: {value} > maxValue {rules['max_value']}"
    if isinstance(value, (str, list)):
        if "min_length" in rules and len(value) < int(rules["min_length"]):
            return f"param {name}: length {len(value)} < minLength {rules['min_length']}"
        if "max_length" in rules and len(value) > int(rules["max_length"]):
            return f"param {name}: length {len(value)} > maxLength {rules['max_length']}"
    return None


def check_bicepparam(path: Path, parsed: dict[Path, dict]) -> list[str]:
    text = path.read_text()
    using = USING_RE.findall(text)
    if len(using) != 1:
        return [f"{path}: expected exactly one `using '<file>.bicep'` line, found {len(using)}"]
    target = (path.parent / using[0]).resolve()
    if target not in parsed:
        return [f"{path}: using target {using[0]} not found or not parsed"]
    as_bicep = USING_RE.sub("", text)
    as_bicep = PARAM_ONLY_CALL_RE.sub(f"'{PLACEHOLDER}'", as_bicep)
    as_bicep = PARAM_LINE_RE.sub(r"\1var\2", as_bicep)
    try:
        values = parse(path, as_bicep).get("variables", {})
    except Exception as error:  # noqa: BLE001 - report any parser failure with its position
        return [f"{path}: does not parse (as var declarations): {error}"]
    declared = parsed[target].get("parameters", {})
    errors = []
    for name, entry in values.items():
        if name not in declared:
            errors.append(f"{path}: param {name} is not declared in {target.name}")
            continue
        problem = value_problem(name, entry["value"], declared[name])
        if problem:
            errors.append(f"{path}: {problem}")
    for name, param in declared.items():
        if param.get("default") is None and name not in values:
            errors.append(f"{path}: required param {name} of {target.name} is not set")
    return errors


def check_tree(root: Path) -> tuple[list[str], int, int]:
    """Returns (errors, bicep files parsed, bicepparam files checked)."""
    errors: list[str] = []
    parsed: dict[Path, dict] = {}
    bicep_files = sorted(root.rglob("*.bicep"))
    for path in bicep_files:
        try:
            parsed[path.resolve()] = parse(path)
        except Exception as error:  # noqa: BLE001 - report any parser failure with its position
            errors.append(f"{path}: does not parse: {error}")
    for path in bicep_files:
        if path.resolve() in parsed:
            errors += check_module_calls(path, parsed[path.resolve()], parsed)
    param_files = sorted(root.rglob("*.bicepparam"))
    for path in param_files:
        errors += check_bicepparam(path, parsed)
    return errors, len(bicep_files), len(param_files)


SELF_TEST_FILES = {
    "main.bicep": (
        "@allowed([\n  'a'\n  'b'\n])\nparam mode string\n@minValue(1)\nparam count int = 1\n"
        "module m 'mod.bicep' = {\n  name: 'm'\n  params: {\n    unknown: 1\n  }\n}\n"
        "output x string = m.outputs.missing\n"
    ),
    "mod.bicep": "param required string\noutput present string = required\n",
    "broken.bicep": "resource r 'a@b' = {\n  name: 'x'\n",
    "main.bicepparam": "using './main.bicep'\nparam mode = 'c'\nparam count = 0\nparam typo = 1\n",
    "missing.bicepparam": "using './main.bicep'\nparam count = readEnvironmentVariable('N')\n",
}
SELF_TEST_EXPECTED = [
    "broken.bicep: does not parse",
    "module m: param unknown is not declared",
    "module m: required param required of mod.bicep not passed",
    "m.outputs.missing is not an output",
    "param mode: 'c' is not one of",
    "param count: 0 < minValue 1",
    "param typo is not declared",
    "missing.bicepparam: required param mode of main.bicep is not set",
]


def self_test() -> int:
    """Proves the checks can fail: each broken input above must be reported."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SELF_TEST_FILES.items():
            (Path(tmp) / name).write_text(text)
        errors, _, _ = check_tree(Path(tmp))
    report = "\n".join(errors)
    missed = [expected for expected in SELF_TEST_EXPECTED if expected not in report]
    for expected in missed:
        print(f"self-test: expected an error containing {expected!r}", file=sys.stderr)
    if missed:
        print(f"self-test: errors reported were:\n{report}", file=sys.stderr)
        return 1
    print(f"check_bicep self-test: {len(SELF_TEST_EXPECTED)} broken inputs all reported")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(argv[1]) if len(argv) > 1 else Path("infra/bicep")
    errors, bicep_count, param_count = check_tree(root)
    for error in errors:
        print(error, file=sys.stderr)
    print(f"bicep parse: {bicep_count} .bicep + {param_count} .bicepparam files, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
