from greeting import greet


def test_greet_uses_the_name():
    assert greet("Ada").endswith(", Ada!")


def test_greeting_is_spelled_right():
    assert greet("Ada") == "Hello, Ada!"
