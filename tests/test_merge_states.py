"""What the merge queue needs of git (batch_tasks/landing/merge_states.py): a git too old to make its
states without a worktree is one clear error before anything runs."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("said, refused", [("git version 2.37.1", True), ("git version 2.38.0", False),
                                           ("git version 2.39.5 (Apple Git-154)", False), ("git version 1.9", True)])
def test_a_git_too_old_for_the_queues_merges_is_one_clear_error(monkeypatch, tmp_path, said, refused):
    from batch_tasks.errors import BatchError
    from batch_tasks.landing import merge_states
    from batch_tasks.repository.git import Result

    monkeypatch.setattr(merge_states, "git", lambda *args, cwd: Result(0, said + "\n", ""))
    if refused:
        with pytest.raises(BatchError, match=r"needs git 2\.38 or later .* this is " + said):
            merge_states.require_merge_tree(tmp_path)
    else:
        merge_states.require_merge_tree(tmp_path)
