"""run-batch's command line on plain data: make's and GNU parallel's spellings, the
suggestion for a mistake, and the values -n takes (no process runs)."""

import pytest

from batch_tasks.commands.cli import UsageError, normalise
from batch_tasks.commands.commands import RunBatch

RUN_BATCH = RunBatch()


def parsed(*args: str) -> list[str]:
    return normalise(list(args), RUN_BATCH.cmdparser.options, RUN_BATCH.aliases)[0]


def refused(*args: str) -> str:
    with pytest.raises(UsageError) as error:
        parsed(*args)
    return str(error.value)


@pytest.mark.parametrize("made", [["-B"], ["--always-make"]])
def test_makes_always_make_is_always_execute(made):
    params, names = RUN_BATCH.cmdparser.parse(parsed(*made, "review:auth"))
    assert params["always"] is True and names == ["review:auth"]


@pytest.mark.parametrize("keep_going", ["-k", "--keep-going", "--continue", "-c"])
def test_every_spelling_of_keep_going_is_continue(keep_going):
    # test_first_contact runs one of them through a real batch.
    params, names = RUN_BATCH.cmdparser.parse(parsed("inventory", keep_going, "-j1"))
    assert params["continue"] is True and params["num_process"] == 1 and names == ["inventory"]
    assert RUN_BATCH.cmdparser.parse(parsed("inventory"))[0]["continue"] is False


@pytest.mark.parametrize("question", ["-q", "--question"])
def test_both_spellings_of_question_ask_it_wherever_they_stand(question):
    # test_first_contact runs one of them through real batches.
    for args in ((question,), (question, "inventory"), ("review", question)):
        params, names = RUN_BATCH.cmdparser.parse(parsed(*args))
        assert params["question"] is True and names == [arg for arg in args if arg != question]
    assert RUN_BATCH.cmdparser.parse(parsed("review"))[0]["question"] is False


@pytest.mark.parametrize("letter", ["-v", "-x", "-Z"])
def test_an_unknown_letter_gets_no_suggestion_a_letter_is_no_misspelling(letter):
    assert refused(letter) == f"unknown option {letter}"


@pytest.mark.parametrize(
    "option, message",
    [
        ("--keepgoing", "unknown option --keepgoing; did you mean --keep-going?"),
        ("--dryrun", "unknown option --dryrun; did you mean --dry-run?"),
        ("--eta", "unknown option --eta; progress and the ETA are in the live panel (in a terminal), "
                  "or `doit batch-status --watch`"),
        ("--bar", "unknown option --bar; progress and the ETA are in the live panel (in a terminal), "
                  "or `doit batch-status --watch`"),
        ("--version", "unknown option --version; `batch-tasks --version` says the version"),
        ("--verbose", "unknown option --verbose"),
    ],
)
def test_a_long_option_is_suggested_only_when_it_is_spelled_like_one(option, message):
    assert refused(option) == message


def test_an_option_without_its_value_says_so():
    assert refused("inventory", "-n") == "option -n needs a value"


@pytest.mark.parametrize("value", ["--dry-run", "0", "-1", "two", "1.5"])
def test_minus_n_takes_a_number_of_items_at_once_and_nothing_else(value):
    for spelled in ("-n", "-j", "--parallel"):
        assert refused(spelled, value) == f"option {spelled} takes how many items run at once, 1 or more, not {value}"
    assert parsed("-j3") == ["-n", "3"] and parsed("--jobs=2") == ["--parallel", "2"]
