from harness.methods.prompts import MOA_INSTRUCTION, aggregation_messages, numbered


def test_responses_are_numbered_from_one_in_given_order():
    assert numbered(["alpha", "beta", "gamma"]) == "1. alpha\n\n2. beta\n\n3. gamma"


def test_aggregation_adds_system_message_when_none_exists():
    conv = [{"role": "user", "content": "What is 2+2?"}]
    msgs = aggregation_messages(conv, ["4", "5"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"].startswith(MOA_INSTRUCTION)
    assert msgs[0]["content"].endswith("1. 4\n\n2. 5")
    assert msgs[1] == conv[0]


def test_aggregation_merges_into_existing_system_message_after_its_text():
    conv = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    msgs = aggregation_messages(conv, ["Hello"])
    assert len(msgs) == 2
    assert msgs[0]["content"].startswith("Be terse.\n\n" + MOA_INSTRUCTION)
    assert conv[0]["content"] == "Be terse."  # input not modified


def test_multi_turn_conversation_is_kept_and_last_user_turn_is_answered():
    conv = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    msgs = aggregation_messages(conv, ["x"])
    assert msgs[1:] == conv


def test_aggregation_of_no_responses_is_an_error():
    import pytest

    with pytest.raises(ValueError):
        aggregation_messages([{"role": "user", "content": "q"}], [])


def test_response_whitespace_is_stripped_but_order_preserved():
    assert numbered(["  b \n", "a"]) == "1. b\n\n2. a"


def test_usc_prompt_puts_question_responses_and_request_in_the_last_user_turn():
    from harness.methods.prompts import USC_INSTRUCTION, usc_messages

    conv = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]
    msgs = usc_messages(conv, ["4", "5"])
    assert msgs[0] == conv[0] and msgs[1]["role"] == "user" and len(msgs) == 2
    text = msgs[1]["content"]
    assert (
        text.index("2+2?") < text.index("1. 4") < text.index("2. 5") < text.index(USC_INSTRUCTION)
    )


def test_critical_prompt_is_the_first_prompt_byte_for_byte():
    """Stored aggregations made with it before `method.prompt` existed keep their keys."""
    import hashlib

    from harness.methods.prompts import aggregator_system

    text = aggregator_system(["a", "b"], "critical")
    digest = "98bb5530d9dea3c28c966e02547c82d9e8a86d3653eadec79e8402dc45e4b47b"
    assert hashlib.sha256(text.encode()).hexdigest() == digest


def test_moa_prompt_has_the_moa_structure_without_extra_instructions():
    from harness.methods.prompts import AGGREGATOR_PROMPTS, DEFAULT_PROMPT, aggregator_system

    assert DEFAULT_PROMPT == "moa" and set(AGGREGATOR_PROMPTS) == {"moa", "critical"}
    text = aggregator_system(["x", "y"], "moa")
    for word in ("synthesi", "critical", "wrong", "repeat"):
        assert word in text.lower()
    assert "agree" not in text.lower() and "answer format" not in text.lower()
    assert text.endswith("Responses from the assistants:\n\n1. x\n\n2. y")
