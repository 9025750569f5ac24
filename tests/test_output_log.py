"""output.log is live: what the agent prints is there at once, newline or not, at any length."""

import time

from conftest import FRONT_MATTER, wait_for


def test_a_progress_bar_without_newlines_shows_in_the_log_as_it_is_drawn(batch):
    batch.write("# T\n## G\n- [ ] a: draws\n")
    go = batch.path / "go"  # its last frame waits for it: the bar is drawn, not done, until then
    batch.behave(a={"progress": 4, "until": str(go)})  # 0.3 s a frame, `\r` between frames, one newline at the end
    log = batch.state("g", "a") / "output.log"
    runner = batch.start("run-batch")
    try:
        wait_for(lambda: log.exists() and "progress 3/4" in log.read_text(), timeout=30)
        go.touch()
        assert runner.wait(timeout=60) == 0
        assert b"\rprogress 4/4\n" in log.read_bytes()
    finally:
        runner.kill()


def test_one_huge_line_costs_what_its_bytes_cost(batch):
    size = 128 * 2**20
    batch.write("# T\n## G\n- [ ] a: floods\n", FRONT_MATTER)
    batch.behave(a={"huge_line": size})
    started = time.monotonic()
    result = batch.run("run-batch", timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    log = batch.state("g", "a") / "output.log"
    assert log.stat().st_size > size  # kept whole in the log
    assert elapsed < 60, f"a 128 MB line took {elapsed:.1f}s"
    print(f"128 MB line: {elapsed:.1f}s")
