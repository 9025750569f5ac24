"""output.log is live: what the agent prints is there at once, newline or not, at any length."""

import time

from conftest import FRONT_MATTER, wait_for


def test_a_progress_bar_without_newlines_shows_in_the_log_as_it_is_drawn(batch):
    batch.write("# T\n## G\n- [ ] a: draws\n")
    batch.behave(a={"progress": 20})  # 0.3 s a frame, `\r` between frames, one newline at the end
    log = batch.state("g", "a") / "output.log"
    runner = batch.start("run-batch")
    try:
        first = wait_for(lambda: log.exists() and "progress" in log.read_text() and log.read_text())
        assert "progress 20/20" not in first, "the log showed nothing until the bar was done"
        assert runner.wait(timeout=60) == 0
        assert b"\rprogress 20/20\n" in log.read_bytes()
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
