"""The files an item will likely touch (touches.py), on plain data: plan lines shaped as
spec-kit, superpowers and Kiro write them, records as the merge queue leaves them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_tasks.plan import named_files
from batch_tasks.plan.taskfile import parse
from batch_tasks.state import records, touches
from batch_tasks.state.state import BatchState
from batch_tasks.tasks import graph

NAMED = [
    # spec-kit: "in <path>", "at <path>", paths in backticks, two files in one line
    ("T012 [P] [US1] Create the User model in src/models/user.py", ["src/models/user.py"]),
    ("T014 [US1] Implement UserService in src/services/user_service.py (depends on T012)",
     ["src/services/user_service.py"]),
    ("T009 [P] [US1] Create `AlbumGrid` component at `frontend/src/albums/AlbumGrid.tsx` — reads `useAlbums()`",
     ["frontend/src/albums/AlbumGrid.tsx"]),
    ("T091 [P] [US3] Add the sign-in strings to frontend/messages/en.json and de.json",
     ["frontend/messages/en.json", "de.json"]),
    ("T004 [P] [US1] Contract test for `GET /reports/{id}.csv` in tests/contract/test_export.py",
     ["tests/contract/test_export.py"]),
    ("T003 [P] Configure ruff for `export/`", []),
    # superpowers: Create/Modify/Test lines, with the lines to change after a colon
    ("**Files:**\n- Create: `src/utils/access.js`\n- Modify: `src/models/team.js:55`, `:69-71` (the guard)\n"
     "- Test: `tests/access.test.js`", ["src/utils/access.js", "src/models/team.js", "tests/access.test.js"]),
    ("- Modify: `exact/path/to/existing.py:123-145`", ["exact/path/to/existing.py"]),
    ("```bash\ngit add src/models/org.js tests/org.test.js\ngit commit -m \"feat: add Org\"\n```",
     ["src/models/org.js", "tests/org.test.js"]),
    # Kiro: sub-bullets name the files, `_Requirements:` numbers are none
    ("1. Set up the export module skeleton\n  - Create `export/__init__.py` and `export/writer.py`\n"
     "  - _Requirements: 1.1, 2.3_", ["export/__init__.py", "export/writer.py"]),
    ("4. (P) Document the export in README.md.", ["README.md"]),
    # what is not a file
    ("Use Next.js and Node.js, e.g. for the API; see https://example.com/docs/guide.md", []),
    ("Call `np.array` and `json.loads`; `from app.config.schema import Settings`", []),
    ("Read/write the and/or flag; version 1.2.3", []),
    ("Edit the Makefile, .gitignore and pyproject.toml", ["Makefile", ".gitignore", "pyproject.toml"]),
    ("Change ./src/app.py and then src/app.py again", ["src/app.py"]),
]


@pytest.mark.parametrize(("text", "files"), NAMED)
def test_the_files_a_plan_line_names(text, files):
    assert named_files.named(text) == files


SAME = [
    ("src/auth.py", "src/auth.py", True),
    ("auth.py", "src/auth.py", True),  # a bare name: any file of that name
    ("src/auth.py", "app/src/auth.py", True),  # relative to the working folder / to the repository
    ("src/a/index.ts", "src/b/index.ts", False),
    ("oauth.py", "src/auth.py", False),  # an end of a name is no file
    ("src/auth.py", "src/auth.pyc", False),
]


@pytest.mark.parametrize(("one", "other", "same"), SAME)
def test_one_file_is_compared_by_its_end_folder_by_folder(one, other, same):
    assert named_files.same_file(one, other) is same
    assert named_files.same_file(other, one) is same


def test_claims_say_who_holds_a_file_until_they_drop_it():
    claims = touches.Claims()
    claims.hold("g:a", ["src/auth.py", "README.md"])
    assert claims.clash("g:b", ["docs/x.md", "auth.py"]) == ("g:a", "auth.py")
    assert claims.clash("g:a", ["src/auth.py"]) is None  # its own files are no clash
    assert claims.clash("g:b", ["lib/auth.py"]) is None
    claims.drop("g:a", ["src/auth.py", "README.md"])
    assert claims.clash("g:b", ["auth.py", "README.md"]) is None


def merge_attempt(files=(), conflicts=()):
    return {"merge": {"files": [{"path": path, "added": 1, "removed": 0} for path in files],
                      "conflicts": list(conflicts)}}


RECORDS = [
    ({"attempts": [merge_attempt(["app/src/auth.py", "app/tests/test_auth.py"])]},
     ["app/src/auth.py", "app/tests/test_auth.py"]),
    ({"attempts": [merge_attempt(conflicts=["shared.py"]), merge_attempt(["shared.py", "b.py"])]}, ["shared.py", "b.py"]),
    ({"attempts": [{"ok": False, "reason": "check failed"}]}, []),
    ({"attempts": [{"ok": False, "reason": "check failed", "changed": ["src/x.py", "tests/test_x.py"]}]},
     ["src/x.py", "tests/test_x.py"]),  # what it committed, though it never landed
    # what a damaged (or written-over) record holds is skipped, never a crash
    ({"attempts": "lots"}, []),
    ({"attempts": [{"merge": {"files": [{"path": 3}, "x.py"], "conflicts": [None, "y.py"]}}]}, ["y.py"]),
    ({"attempts": [{"changed": "x.py", "merge": "y.py"}, "z.py"]}, []),
    ({}, []),
]


@pytest.mark.parametrize(("record", "files"), RECORDS)
def test_the_files_a_record_says_its_attempts_changed(record, files):
    assert records.files_of(record) == files


def test_an_item_is_predicted_its_named_files_its_own_records_and_its_modules_earlier_items(tmp_path):
    taskfile = tmp_path / "task.md"
    text = ("# Plan\n## Models\n- [ ] user: add the User model in src/models/user.py\n"
                        "- [ ] team: add the Team model\n"
                        "## API\n- [ ] user: add the /users endpoint in src/api/users.py\n"
                        "- [ ] team: add the /teams endpoint\n- [ ] docs: write the API guide\n")
    taskfile.write_text(text)
    plan = parse(text, taskfile)
    state = BatchState(taskfile)
    state.ensure()
    for (group, module), record in {
        ("models", "team"): {"attempts": [merge_attempt(["src/models/team.py", "src/models/__init__.py"])]},
        ("api", "docs"): {"reason": "merge conflict", "attempts": [merge_attempt(conflicts=["docs/api.md"])]},
    }.items():
        folder = state.item(group, module)
        folder.ensure()
        with open(folder.result if "reason" not in record else folder.failure, "w") as stream:
            json.dump(record, stream)

    predicted = touches.predict(plan, state, ["api:user", "api:team", "api:docs", "models:user"])
    assert predicted == {
        "models:user": {"src/models/user.py"},
        "api:user": {"src/api/users.py"},  # models:user has landed nothing yet
        "api:team": {"src/models/team.py", "src/models/__init__.py"},  # what its module's earlier item changed
        "api:docs": {"docs/api.md"},  # what its own last attempt conflicted on
    }
    assert touches.predict(plan, state, ["api:user"]) == {"api:user": {"src/api/users.py"}}

    # Asked once ready, the run's own landings count: models:user landed before api:user was ready.
    predictor = touches.Predictor(plan, state)
    folder = state.item("models", "user")
    folder.ensure()
    with open(folder.result, "w") as stream:
        json.dump({"attempts": [merge_attempt(["src/models/user.py", "src/db.py"])]}, stream)
    api_user = next(item for item in plan.items() if item.key == "api:user")
    assert predictor(api_user) == {"src/api/users.py", "src/models/user.py", "src/db.py"}


PLAN = """---
agent: command
command: [x]
---
# Plan
## Models
- [ ] user: add the User model in src/models/user.py, registered in `src/models/__init__.py`
- [ ] team: add the Team model, registered in `models/__init__.py`
- [ ] role: add the Role model in src/models/role.py
## API
<!-- pipeline: true -->
- [ ] user: the /users endpoint in src/api/users.py, from src/models/user.py
- [ ] role: the /roles endpoint, reading src/models/__init__.py
"""


def test_items_are_kept_apart_where_they_share_a_file_and_neither_waits_for_the_other():
    plan = parse(PLAN, Path("/nowhere/task.md"))
    predicted = {item.key: frozenset(named_files.named(item.instruction)) for item in plan.items()}
    apart = graph.kept_apart(plan, predicted)
    # api:user waits for models:user (pipeline), so their shared user.py keeps nothing apart; api:role
    # waits only for models:role, so it may run beside models:user and models:team.
    assert apart == {"models:team": [("models:user", "models/__init__.py")],
                     "api:role": [("models:user", "src/models/__init__.py"), ("models:team", "src/models/__init__.py")]}
    text = graph.as_text(plan, apart)
    assert ("  models:team  ← nothing\n      kept apart from models:user (both touch models/__init__.py)\n"
            "  models:role") in text
    assert ('"models:user" -> "models:team" [style=dashed, dir=none, constraint=false, label="models/__init__.py"];'
            in graph.as_dot(plan, apart))
    assert graph.kept_apart(parse(PLAN.replace("<!-- pipeline: true -->\n", ""), Path("/nowhere/task.md")),
                            predicted) == {"models:team": [("models:user", "models/__init__.py")]}
