import os

LIMIT = 10


class Greeter:
    def __init__(self, name):
        self.name = name

    def greet(self):
        return helper(self.name)


def helper(name):
    return "hello " + name
