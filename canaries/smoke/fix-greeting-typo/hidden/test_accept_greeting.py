import greeting


def test_constant_is_fixed():
    assert greeting.GREETING == "Hello"


def test_greet_uses_the_constant():
    assert greeting.greet("Grace") == "Hello, Grace!"
