"""Print a pip constraints file that pins every runtime dependency of pyproject.toml at its
declared floor (`jax>=0.5.3` becomes `jax==0.5.3`).

    python tools/floor_constraints.py > floors.txt
    pip install -e '.[test]' -c floors.txt

The floor job of `.ci/run` installs with these pins, so a floor in pyproject.toml is true only
while the suite passes at it. A runtime dependency without a `>=` floor is an error: it could
not be tested.
"""

from __future__ import annotations

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# A PEP 508 requirement, as written in this project: `name[extras] specifiers ; marker`.
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<specs>[^;]*?)\s*"
    r"(?:;\s*(?P<marker>.+?))?\s*$"
)


def floor_pins(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
    """One `name==floor` line (with the requirement's environment marker, if any) per runtime
    dependency."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        floors = [
            spec.strip()[2:].strip()
            for spec in match["specs"].split(",")
            if spec.strip().startswith(">=")
        ]
        if len(floors) != 1:
            raise ValueError(
                f"runtime dependency {requirement!r} needs exactly one `>=` floor to be tested"
            )
        marker = f" ; {match['marker']}" if match["marker"] else ""
        pins.append(f"{match['name']}=={floors[0]}{marker}")
    return pins


if __name__ == "__main__":
    sys.stdout.write("".join(line + "\n" for line in floor_pins()))
